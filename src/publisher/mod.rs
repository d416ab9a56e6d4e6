//! The outbox publisher: publishes the event log on NATS JetStream, each event
//! exactly once, in position order.
//!
//! The event log is the outbox: the publisher reads events after its cursor
//! (`publication_cursor`), publishes them, and moves the cursor. One process
//! publishes at a time (a MySQL named lock). Each message carries
//! `Nats-Msg-Id` = event id and `Nats-Expected-Last-Sequence`, so a message
//! is stored only directly after its predecessor: order holds through any
//! failure, and after one the publisher resumes after the last event the
//! stream actually holds (read from its `Chat-Position` header).

mod leader;
mod subjects;

use std::time::Duration;

use async_nats::jetstream::{self, context::Publish, stream};
use sqlx::MySqlPool;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::event_store::{EventReader, StoredEvent};
pub use subjects::{subject_for, HEADER_EVENT_TYPE, HEADER_POSITION, HEADER_SCHEMA_VERSION};

/// Events published per round trip of acknowledgements.
const BATCH: u32 = 512;
/// How often, at most, the publisher checks it still holds the lead and
/// stores its cursor while events flow: two round trips per batch put
/// milliseconds on every event's way to subscribers. Neither is needed per
/// batch: the stream's expected last sequence refuses a second publisher's
/// writes, and the stored cursor is only where a restart starts looking (it
/// takes the stream's own last position when that is further).
const HOUSEKEEPING_EVERY: Duration = Duration::from_millis(100);
/// Bound on the stream's lookup and info requests (retried after a pause).
const STREAM_REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// A publishing attempt that lasted this long was working: the retry pause starts small again.
const BACKOFF_RESET_AFTER: Duration = Duration::from_secs(10);
/// Name of this publisher's row in `publication_cursor`.
pub const CURSOR_NAME: &str = "jetstream";

/// Where events are published.
#[derive(Debug, Clone)]
pub struct PublisherConfig {
    /// Stream name (`CHAT_EVENTS`).
    pub stream: String,
    /// Subject prefix (`chat.events`); subjects are `<prefix>.<stream type>.<stream id>.<event type>`.
    pub subject_prefix: String,
    /// Copies of the stream a NATS cluster keeps (1 on a single server, 3 on a cluster of three).
    pub replicas: usize,
}

/// Why a publishing round stopped; the publisher resynchronises and retries.
#[derive(Debug, thiserror::Error)]
enum PublishFailure {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("event store: {0}")]
    Store(#[from] crate::event_store::StoreError),
    #[error("jetstream: {0}")]
    JetStream(String),
    #[error("lost the publisher lock")]
    LostLeadership,
}

/// Publishes the log on JetStream until cancelled.
pub struct Publisher {
    pool: MySqlPool,
    reader: EventReader,
    js: jetstream::Context,
    config: PublisherConfig,
    head: watch::Receiver<u64>,
}

impl Publisher {
    pub fn new(pool: MySqlPool, nats: async_nats::Client, config: PublisherConfig, head: watch::Receiver<u64>) -> Self {
        let mut js = jetstream::new(nats);
        js.set_timeout(Duration::from_secs(3));
        Self { reader: EventReader::new(pool.clone()), pool, js, config, head }
    }

    /// Runs until `shutdown`; then publishes what is left and returns. A
    /// failure near shutdown is retried a few times (a stop must not leave
    /// committed events unpublished because of one transient error); only a
    /// dependency that stays down, or another process holding the lead,
    /// leaves the rest to the next start.
    #[tracing::instrument(name = "publisher", skip_all, fields(stream = %self.config.stream))]
    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut backoff = Duration::from_millis(100);
        let mut tries_after_shutdown = 0;
        loop {
            if shutdown.is_cancelled() {
                tries_after_shutdown += 1;
                if tries_after_shutdown > TRIES_AFTER_SHUTDOWN {
                    tracing::warn!("publication did not finish at shutdown; the rest is published at next start");
                    return;
                }
            }
            let leader = match leader::Leader::acquire(&self.pool).await {
                Ok(Some(leader)) => leader,
                Ok(None) => {
                    // Another process publishes; stand by (at shutdown, it publishes the rest).
                    if sleep_or_cancel(Duration::from_secs(1), &shutdown).await {
                        return;
                    }
                    continue;
                }
                Err(error) => {
                    tracing::warn!(%error, "cannot reach the database for the publisher lock");
                    metrics::counter!("chat_publication_interruptions_total").increment(1);
                    pause(&mut backoff, &shutdown).await;
                    continue;
                }
            };
            let attempt_started = tokio::time::Instant::now();
            match self.publish_while_leader(leader, &shutdown).await {
                Ok(()) => return,
                Err(error) => {
                    if attempt_started.elapsed() > BACKOFF_RESET_AFTER {
                        // It had been publishing: this is a new failure, not the same one again.
                        backoff = Duration::from_millis(100);
                    }
                    tracing::warn!(%error, "publication interrupted; resynchronising");
                    metrics::counter!("chat_publication_interruptions_total").increment(1);
                    pause(&mut backoff, &shutdown).await;
                }
            }
        }
    }

    /// Publishes from the stream's true position on; returns Ok at shutdown
    /// once everything committed is published.
    async fn publish_while_leader(&mut self, mut leader: leader::Leader, shutdown: &CancellationToken) -> Result<(), PublishFailure> {
        let mut stream = self.ensure_stream().await?;
        let info = tokio::time::timeout(STREAM_REQUEST_TIMEOUT, stream.info())
            .await
            .map_err(|_| PublishFailure::JetStream("stream info timed out".into()))?
            .map_err(|e| PublishFailure::JetStream(e.to_string()))?;
        let mut last_sequence = info.state.last_sequence;
        let in_stream = if info.state.messages > 0 { self.position_at(&stream, last_sequence).await? } else { None };
        let mut cursor = self.stored_cursor().await?.max(in_stream.unwrap_or(0));
        tracing::info!(cursor, last_sequence, "publishing");
        let mut stored = cursor;
        let mut checked_at = tokio::time::Instant::now();
        loop {
            if checked_at.elapsed() >= HOUSEKEEPING_EVERY {
                leader.check().await.map_err(|_| PublishFailure::LostLeadership)?;
                if cursor > stored {
                    self.store_cursor(cursor).await?;
                    stored = cursor;
                }
                checked_at = tokio::time::Instant::now();
            }
            let events = self.reader.events_after(cursor, BATCH).await?;
            if events.is_empty() {
                if shutdown.is_cancelled() {
                    if cursor > stored {
                        self.store_cursor(cursor).await?;
                    }
                    return Ok(());
                }
                tokio::select! {
                    _ = self.head.changed() => {}
                    _ = tokio::time::sleep(HOUSEKEEPING_EVERY) => {}
                    _ = shutdown.cancelled() => {}
                }
                continue;
            }
            last_sequence = self.publish_batch(&events, last_sequence).await?;
            cursor = events.last().map(|e| e.position).unwrap_or(cursor);
            metrics::counter!("chat_events_published_total").increment(events.len() as u64);
            crate::telemetry::record_delay("chat_publication_delay_seconds", events.iter().map(|e| e.recorded_at));
            metrics::gauge!("chat_publication_cursor").set(cursor as f64);
        }
    }

    /// Sends every event, then waits for the acknowledgements; answers the
    /// stream's new last sequence.
    async fn publish_batch(&self, events: &[StoredEvent], last_sequence: u64) -> Result<u64, PublishFailure> {
        let mut acks = Vec::with_capacity(events.len());
        for (i, event) in events.iter().enumerate() {
            let publish = Publish::build()
                .payload(event.to_json().into())
                .message_id(&event.event_id)
                .header(HEADER_POSITION, event.position.to_string().as_str())
                .header(HEADER_EVENT_TYPE, event.event_type.as_str())
                .header(HEADER_SCHEMA_VERSION, event.schema_version.to_string().as_str())
                .expected_last_sequence(last_sequence + i as u64);
            let subject = subject_for(&self.config.subject_prefix, event);
            let ack = self.js.send_publish(subject, publish).await.map_err(|e| PublishFailure::JetStream(e.to_string()))?;
            acks.push(ack);
        }
        let mut sequence = last_sequence;
        for ack in acks {
            let ack = ack.await.map_err(|e| PublishFailure::JetStream(e.to_string()))?;
            if ack.duplicate {
                return Err(PublishFailure::JetStream("the stream already held an event thought unpublished".into()));
            }
            sequence = ack.sequence;
        }
        Ok(sequence)
    }

    async fn ensure_stream(&self) -> Result<stream::Stream, PublishFailure> {
        let request = self.js.get_or_create_stream(stream::Config {
            name: self.config.stream.clone(),
            subjects: vec![format!("{}.>", self.config.subject_prefix)],
            storage: stream::StorageType::File,
            retention: stream::RetentionPolicy::Limits,
            duplicate_window: Duration::from_secs(120),
            num_replicas: self.config.replicas.max(1),
            ..Default::default()
        });
        // A request sent while a cluster elects the stream's leader may never be
        // answered; waiting the client's 10 s for it held publication that long.
        tokio::time::timeout(STREAM_REQUEST_TIMEOUT, request)
            .await
            .map_err(|_| PublishFailure::JetStream("stream lookup timed out".into()))?
            .map_err(|e| PublishFailure::JetStream(e.to_string()))
    }

    /// The `Chat-Position` of the stream's message at `sequence`.
    async fn position_at(&self, stream: &stream::Stream, sequence: u64) -> Result<Option<u64>, PublishFailure> {
        match stream.get_raw_message(sequence).await {
            Ok(message) => Ok(message.headers.get(HEADER_POSITION).and_then(|v| v.as_str().parse().ok())),
            Err(error) => {
                tracing::warn!(%error, sequence, "cannot read the stream's last message; using the stored cursor");
                Ok(None)
            }
        }
    }

    async fn stored_cursor(&self) -> Result<u64, PublishFailure> {
        let cursor: Option<u64> = sqlx::query_scalar("SELECT last_position FROM publication_cursor WHERE name = ?")
            .bind(CURSOR_NAME)
            .fetch_optional(&self.pool)
            .await?;
        Ok(cursor.unwrap_or(0))
    }

    async fn store_cursor(&self, position: u64) -> Result<(), PublishFailure> {
        sqlx::query(
            "INSERT INTO publication_cursor (name, last_position) VALUES (?, ?) \
             ON DUPLICATE KEY UPDATE last_position = GREATEST(last_position, VALUES(last_position))",
        )
        .bind(CURSOR_NAME)
        .bind(position)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

/// How many times publication is tried again once shutdown has begun.
const TRIES_AFTER_SHUTDOWN: u32 = 3;

/// Waits before a retry: `backoff` (doubling up to 5 s) while running, a
/// short fixed pause once shutdown has begun (the stop has a deadline).
async fn pause(backoff: &mut Duration, shutdown: &CancellationToken) {
    if shutdown.is_cancelled() || sleep_or_cancel(*backoff, shutdown).await {
        tokio::time::sleep(Duration::from_millis(200)).await;
    } else {
        *backoff = (*backoff * 2).min(Duration::from_secs(5));
    }
}

/// Sleeps; answers true if cancelled meanwhile.
async fn sleep_or_cancel(duration: Duration, shutdown: &CancellationToken) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(duration) => false,
        _ = shutdown.cancelled() => true,
    }
}
