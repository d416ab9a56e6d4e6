//! The live projector worker: applies new events to the read models, in
//! batches, each in one transaction with the checkpoint.
//!
//! It consumes the published events through a durable JetStream consumer and
//! uses their payloads when they continue exactly from its checkpoint; the
//! event log is the source of truth for everything else (catching up, gaps,
//! NATS being down). One process applies at a time (a MySQL named lock); each
//! batch also holds the "apply" lock, which a rebuild takes to swap tables.

use std::time::Duration;

use async_nats::jetstream::{self, consumer::pull, consumer::AckPolicy, consumer::DeliverPolicy};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::Deserialize;
use sqlx::{Connection, MySqlConnection, MySqlPool};
use tokio::sync::{oneshot, watch};
use tokio_util::sync::CancellationToken;

use super::{apply_batch, checkpoint, save_checkpoint, ProjectedEvent, ProjectionError, ProjectionEvent, Tables, CHECKPOINT};
use crate::event_store::{decode_payload, EventReader};

/// Events applied per transaction, at most, when following the write side.
pub const LIVE_BATCH: u32 = 2000;
/// Events applied per transaction when catching up from the log: larger
/// batches write more rows once, complete (see `Batch`).
const CATCH_UP_BATCH: u32 = 20_000;
/// How long a batch keeps gathering published events after the first one
/// arrived (in all, not per event: a steady stream must not hold a batch open).
const GATHER: Duration = Duration::from_millis(1);
/// How long the worker waits for a published event before it checks the log.
const WAIT: Duration = Duration::from_millis(100);
/// Bound on making the JetStream subscription: while NATS is unreachable its
/// requests wait for their timeout, and the log must not wait with them.
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(1);
/// Pause between attempts to (re)subscribe; meanwhile events come from the log.
const RESUBSCRIBE_EVERY: Duration = Duration::from_secs(1);
/// The named lock of the process that applies events.
const LEADER_LOCK: &str = "CONCAT('chat-projections:', DATABASE())";
/// The named lock held while a batch is applied (and by a rebuild's swap).
pub const APPLY_LOCK: &str = "CONCAT('chat-projections-apply:', DATABASE())";

/// Where the worker finds published events.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub stream: String,
}

/// The live projector.
pub struct ProjectionWorker {
    pool: MySqlPool,
    reader: EventReader,
    nats: async_nats::Client,
    js: jetstream::Context,
    config: WorkerConfig,
    applied: watch::Sender<u64>,
}

/// An event as published on JetStream (the fields the projector needs).
#[derive(Deserialize)]
struct Published {
    position: u64,
    stream_type: String,
    #[serde(rename = "type")]
    event_type: String,
    schema_version: u16,
    data: serde_json::Value,
    recorded_at: DateTime<Utc>,
}

impl Published {
    fn decode(self) -> Result<ProjectedEvent, ProjectionError> {
        let data = self.data.to_string();
        let error = |e: serde_json::Error| ProjectionError::Decode { position: self.position, reason: e.to_string() };
        let event = match self.stream_type.as_str() {
            "conversation" => ProjectionEvent::Conversation(decode_payload(&self.event_type, self.schema_version, &data).map_err(error)?),
            "user" => ProjectionEvent::User(decode_payload(&self.event_type, self.schema_version, &data).map_err(error)?),
            "posting" => ProjectionEvent::Posting(decode_payload(&self.event_type, self.schema_version, &data).map_err(error)?),
            other => return Err(ProjectionError::Decode { position: self.position, reason: format!("unknown stream type {other}") }),
        };
        Ok(ProjectedEvent { position: self.position, recorded_at: self.recorded_at, event })
    }
}

/// Where the worker connects when it runs on a thread of its own.
#[derive(Debug, Clone)]
pub struct Connections {
    pub database_url: String,
    pub nats_url: String,
}

/// Pause between attempts to connect the worker's own thread.
const RECONNECT_EVERY: Duration = Duration::from_secs(1);

impl ProjectionWorker {
    /// Runs a worker on a thread of its own, with its own runtime, database
    /// pool and NATS connection, so that its round trips and JetStream
    /// deliveries never wait behind the API's HTTP and WebSocket tasks. This
    /// matters under load: sharing the API's runtime, the projector fell
    /// behind at 4,000 sends/s with a quarter of the CPU idle. It runs until
    /// `shutdown`; the receiver resolves when it has stopped.
    pub fn start_on_own_thread(
        connections: Connections,
        config: WorkerConfig,
        applied: watch::Sender<u64>,
        shutdown: CancellationToken,
    ) -> std::io::Result<oneshot::Receiver<()>> {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let (done_tx, done) = oneshot::channel();
        std::thread::Builder::new().name("projector".into()).spawn(move || {
            runtime.block_on(async move {
                let connected = tokio::select! {
                    connected = connect(&connections, &shutdown) => connected,
                    _ = shutdown.cancelled() => None,
                };
                if let Some((pool, nats)) = connected {
                    Self::new(pool.clone(), nats, config, applied).run(shutdown).await;
                    pool.close().await;
                }
            });
            let _ = done_tx.send(());
        })?;
        Ok(done)
    }

    pub fn new(pool: MySqlPool, nats: async_nats::Client, config: WorkerConfig, applied: watch::Sender<u64>) -> Self {
        Self { reader: EventReader::new(pool.clone()), pool, js: jetstream::new(nats.clone()), nats, config, applied }
    }

    /// Runs until `shutdown`.
    #[tracing::instrument(name = "projections", skip_all)]
    pub async fn run(self, shutdown: CancellationToken) {
        loop {
            let outcome = tokio::select! {
                outcome = self.lead(&shutdown) => outcome,
                _ = shutdown.cancelled() => return,
            };
            if let Err(error) = outcome {
                tracing::warn!(%error, "projections interrupted; restarting");
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                _ = shutdown.cancelled() => return,
            }
        }
    }

    /// Takes the leader lock and applies batches while holding it.
    async fn lead(&self, shutdown: &CancellationToken) -> Result<(), ProjectionError> {
        let mut conn = self.pool.acquire().await?.detach();
        let leader: Option<i64> = sqlx::query_scalar(&format!("SELECT GET_LOCK({LEADER_LOCK}, 0)")).fetch_one(&mut conn).await?;
        if leader != Some(1) {
            // Another process applies; follow its progress for this process's readers.
            let position = checkpoint(&mut conn, CHECKPOINT).await?;
            self.applied.send_replace(position);
            return Ok(());
        }
        let mut position = checkpoint(&mut conn, CHECKPOINT).await?;
        self.applied.send_replace(position);
        tracing::info!(position, "projecting");
        let mut messages: Option<pull::Stream> = None;
        let mut subscribe_at = tokio::time::Instant::now();
        // Behind the log (the last batch read from it was full): read on, without waiting for JetStream.
        let mut behind = false;
        while !shutdown.is_cancelled() {
            if messages.is_none() && tokio::time::Instant::now() >= subscribe_at {
                // While NATS is down, follow the log without trying: a JetStream
                // request would only wait for its timeout.
                if self.nats.connection_state() == async_nats::connection::State::Connected {
                    messages = tokio::time::timeout(SUBSCRIBE_TIMEOUT, self.subscribe()).await.ok().flatten();
                }
                subscribe_at = tokio::time::Instant::now() + RESUBSCRIBE_EVERY;
            }
            let (published, ack) = match messages.as_mut() {
                _ if behind => (Vec::new(), None),
                Some(stream) => match next_messages(stream).await {
                    Ok(received) => received,
                    Err(error) => {
                        tracing::debug!(%error, "JetStream consumer failed; reading the event log");
                        messages = None;
                        (Vec::new(), None)
                    }
                },
                None => {
                    tokio::time::sleep(WAIT).await;
                    (Vec::new(), None)
                }
            };
            let (batch, from_log) = self.next_batch(position, published, behind).await?;
            behind = from_log && batch.len() >= LIVE_BATCH as usize;
            if let Some(last) = batch.last().map(|e| e.position) {
                match self.apply(&mut conn, position, &batch).await? {
                    Applied::Done => position = last,
                    Applied::Moved(now) => position = now,
                }
                self.applied.send_replace(position);
                metrics::counter!("chat_projected_events_total").increment(batch.len() as u64);
                crate::telemetry::record_delay("chat_projection_delay_seconds", batch.iter().map(|e| e.recorded_at));
            }
            if let Some(ack) = ack {
                let _ = ack.ack().await;
            }
        }
        Ok(())
    }

    /// The events after `position`: the fetched payloads if they continue
    /// exactly from it, otherwise (a gap, a duplicate, nothing) the event
    /// log; answers whether they came from the log.
    async fn next_batch(
        &self,
        position: u64,
        published: Vec<Published>,
        behind: bool,
    ) -> Result<(Vec<ProjectedEvent>, bool), ProjectionError> {
        let fresh: Vec<Published> = published.into_iter().filter(|p| p.position > position).collect();
        let contiguous = !fresh.is_empty() && fresh.iter().enumerate().all(|(i, p)| p.position == position + 1 + i as u64);
        if contiguous {
            return Ok((fresh.into_iter().map(Published::decode).collect::<Result<_, _>>()?, false));
        }
        let limit = if behind { CATCH_UP_BATCH } else { LIVE_BATCH };
        let stored = self.reader.events_after_without_metadata(position, limit).await?;
        Ok((stored.iter().map(ProjectedEvent::from_stored).collect::<Result<_, _>>()?, true))
    }

    /// Applies one batch in one transaction with the checkpoint, under the
    /// apply lock; if the checkpoint moved meanwhile (a rebuild swapped the
    /// tables), applies nothing and answers where it is now.
    async fn apply(&self, conn: &mut MySqlConnection, position: u64, batch: &[ProjectedEvent]) -> Result<Applied, ProjectionError> {
        let started = std::time::Instant::now();
        sqlx::query(&format!("SELECT GET_LOCK({APPLY_LOCK}, 60)")).execute(&mut *conn).await?;
        let outcome = async {
            let mut tx = conn.begin().await?;
            let current: Option<u64> = sqlx::query_scalar("SELECT position FROM projection_checkpoints WHERE name = ? FOR UPDATE")
                .bind(CHECKPOINT)
                .fetch_optional(&mut *tx)
                .await?;
            let current = current.unwrap_or(0);
            if current != position {
                tx.rollback().await?;
                return Ok(Applied::Moved(current));
            }
            apply_batch(&mut tx, &Tables::live(), batch).await?;
            let last = batch.last().map(|e| e.position).unwrap_or(position);
            save_checkpoint(&mut tx, CHECKPOINT, last).await?;
            tx.commit().await?;
            Ok::<_, ProjectionError>(Applied::Done)
        }
        .await;
        let _ = sqlx::query(&format!("SELECT RELEASE_LOCK({APPLY_LOCK})")).execute(&mut *conn).await;
        metrics::histogram!("chat_projection_batch_seconds").record(started.elapsed().as_secs_f64());
        outcome
    }

    /// The message stream of the read models' durable consumer on the events stream.
    async fn subscribe(&self) -> Option<pull::Stream> {
        let stream = self.js.get_stream(&self.config.stream).await.ok()?;
        let consumer: jetstream::consumer::PullConsumer = stream
            .get_or_create_consumer(
                "read-models",
                pull::Config {
                    durable_name: Some("read-models".into()),
                    deliver_policy: DeliverPolicy::All,
                    ack_policy: AckPolicy::All,
                    max_ack_pending: 100_000,
                    ..Default::default()
                },
            )
            .await
            .ok()?;
        // Pull up to a live batch at a time: when the write side outpaces the
        // projector, the next batch is already here and as large as allowed.
        consumer.stream().max_messages_per_batch(LIVE_BATCH as usize).messages().await.ok()
    }
}

/// The worker's own database pool and NATS connection, retried until they
/// connect (or `shutdown`).
async fn connect(connections: &Connections, shutdown: &CancellationToken) -> Option<(MySqlPool, async_nats::Client)> {
    let pool = loop {
        match crate::db::connect(&connections.database_url, 2).await {
            Ok(pool) => break pool,
            Err(error) => tracing::warn!(%error, "projector cannot reach the database; retrying"),
        }
        tokio::select! {
            _ = tokio::time::sleep(RECONNECT_EVERY) => {}
            _ = shutdown.cancelled() => return None,
        }
    };
    match crate::nats::connect(&connections.nats_url).await {
        Ok(nats) => Some((pool, nats)),
        Err(error) => {
            tracing::error!(%error, "projector cannot connect to NATS");
            None
        }
    }
}

enum Applied {
    Done,
    Moved(u64),
}

/// Waits up to `WAIT` for a published event, then takes whatever else has
/// already arrived (up to a batch); answers the decoded payloads and the last
/// message, whose acknowledgement covers them all.
async fn next_messages(stream: &mut pull::Stream) -> Result<(Vec<Published>, Option<jetstream::Message>), async_nats::Error> {
    let mut published = Vec::new();
    let mut last = None;
    let first = match tokio::time::timeout(WAIT, stream.next()).await {
        Err(_) => return Ok((published, last)), // quiet: the caller checks the log
        Ok(None) => return Err("the consumer's message stream ended".into()),
        Ok(Some(message)) => message?,
    };
    let gathered_until = tokio::time::Instant::now() + GATHER;
    let mut next = Some(first);
    while let Some(message) = next.take() {
        if let Ok(event) = serde_json::from_slice::<Published>(&message.payload) {
            published.push(event);
        }
        last = Some(message);
        if published.len() >= LIVE_BATCH as usize {
            break;
        }
        // Gather what arrives within a few milliseconds into the same batch:
        // one transaction for many events when the write side is busy.
        next = match tokio::time::timeout_at(gathered_until, stream.next()).await {
            Ok(Some(message)) => Some(message?),
            _ => None,
        };
    }
    Ok((published, last))
}
