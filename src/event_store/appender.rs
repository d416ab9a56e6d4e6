//! Group commit: one task per process takes every append request waiting in
//! its queue and commits them in a single transaction.
//!
//! Each transaction first locks the one row of `event_log_head`, so appenders
//! in every process are serialised and positions are assigned in commit order:
//! a reader that has seen position N never later finds a new event below N.
//! Inside the lock, each request's expected stream version and unique lookups
//! are checked; requests that fail a check are answered with an error and left
//! out, the others commit together.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use sqlx::mysql::{MySqlConnectOptions, MySqlConnection};
use sqlx::{ConnectOptions, Connection, MySql, MySqlPool, QueryBuilder, Transaction};
use tokio::sync::{mpsc, oneshot, watch};
use tracing::Instrument;

use super::{AppendError, NewEvent, StreamRef};

/// Most requests in one transaction.
const MAX_BATCH_REQUESTS: usize = 512;
/// Most bytes of event data in one transaction (well under max_allowed_packet).
const MAX_BATCH_BYTES: usize = 4 * 1024 * 1024;
/// Requests waiting for the appender before callers are pushed back.
const QUEUE_CAPACITY: usize = 8192;
/// How long the appender waits for a database connection.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

/// A unique key written with the events, pointing at their stream: which
/// conversation a message is in, or the DIRECT conversation of a pair.
#[derive(Debug, Clone)]
pub struct Lookup {
    pub kind: &'static str,
    pub key: String,
    /// If true, the key is checked first and must not exist yet (otherwise
    /// `LookupTaken`). Keys that cannot collide (a new UUIDv7) skip the check;
    /// a collision would fail the batch on the primary key.
    pub unique: bool,
}

/// The idempotency record to complete in the same transaction as the events,
/// so a key is answered from its first response if and only if the events exist.
#[derive(Debug, Clone)]
pub struct IdempotencyCompletion {
    pub user_id: i32,
    pub key: String,
    pub status: u16,
    /// The response body without `position`, which the appender fills in.
    pub body: serde_json::Map<String, serde_json::Value>,
}

/// Events to append to one stream, if it is still at `expected_version`.
#[derive(Debug)]
pub struct AppendRequest {
    pub stream: StreamRef,
    pub expected_version: u64,
    pub events: Vec<NewEvent>,
    pub lookups: Vec<Lookup>,
    pub idempotency: Option<IdempotencyCompletion>,
}

/// Where the request's events landed.
#[derive(Debug, Clone, Copy)]
pub struct Appended {
    pub first_position: u64,
    pub last_position: u64,
    pub recorded_at: DateTime<Utc>,
}

type Reply = oneshot::Sender<Result<Appended, AppendError>>;

/// Handle to the group-commit task. Cloning it is cheap.
#[derive(Clone)]
pub struct Appender {
    queue: mpsc::Sender<(AppendRequest, Reply)>,
    head: watch::Receiver<u64>,
}

impl Appender {
    /// Starts the appender on a thread of its own, with its own runtime and
    /// database connection, so that its round trips are never queued behind
    /// the HTTP tasks. It ends when every handle is dropped and the queue is
    /// drained; the returned receiver resolves then.
    pub fn start(pool: &MySqlPool) -> std::io::Result<(Self, oneshot::Receiver<()>)> {
        let options = pool.connect_options().as_ref().clone();
        let (queue, rx) = mpsc::channel(QUEUE_CAPACITY);
        let (head_tx, head) = watch::channel(0);
        let (done_tx, done) = oneshot::channel();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        std::thread::Builder::new().name("appender".into()).spawn(move || {
            runtime.block_on(run(options, rx, head_tx).instrument(tracing::info_span!("appender")));
            let _ = done_tx.send(());
        })?;
        Ok((Self { queue, head }, done))
    }

    /// Queues `request` for the next transaction and waits for its outcome.
    pub async fn append(&self, request: AppendRequest) -> Result<Appended, AppendError> {
        let (tx, rx) = oneshot::channel();
        self.queue.send((request, tx)).await.map_err(|_| AppendError::Closed)?;
        rx.await.map_err(|_| AppendError::Closed)?
    }

    /// Queues `request` now and returns a future for its outcome, so the
    /// caller can release its stream lock before the commit (pipelining).
    pub async fn submit(&self, request: AppendRequest) -> Result<oneshot::Receiver<Result<Appended, AppendError>>, AppendError> {
        let (tx, rx) = oneshot::channel();
        self.queue.send((request, tx)).await.map_err(|_| AppendError::Closed)?;
        Ok(rx)
    }

    /// The last position this process committed; changes wake the publisher.
    pub fn head(&self) -> watch::Receiver<u64> {
        self.head.clone()
    }
}

async fn run(options: MySqlConnectOptions, mut rx: mpsc::Receiver<(AppendRequest, Reply)>, head: watch::Sender<u64>) {
    let mut connection: Option<MySqlConnection> = None;
    let mut batch = Vec::with_capacity(MAX_BATCH_REQUESTS);
    while let Some(first) = rx.recv().await {
        let mut bytes = first.0.events.iter().map(NewEvent::size).sum::<usize>();
        batch.push(first);
        while batch.len() < MAX_BATCH_REQUESTS && bytes < MAX_BATCH_BYTES {
            match rx.try_recv() {
                Ok(next) => {
                    bytes += next.0.events.iter().map(NewEvent::size).sum::<usize>();
                    batch.push(next);
                }
                Err(_) => break,
            }
        }
        let started = Instant::now();
        let size = batch.len();
        let (requests, replies): (Vec<_>, Vec<_>) = batch.drain(..).unzip();
        match commit_on(&mut connection, &options, &requests).await {
            Ok(outcomes) => {
                if let Some(last) = outcomes.iter().filter_map(|o| o.as_ref().ok()).map(|a| a.last_position).max() {
                    head.send_replace(last);
                }
                for (reply, outcome) in replies.into_iter().zip(outcomes) {
                    let _ = reply.send(outcome);
                }
            }
            Err(error) => {
                tracing::warn!(%error, requests = size, "append transaction failed");
                let error = Arc::new(error);
                for reply in replies {
                    let _ = reply.send(Err(AppendError::Database(error.clone())));
                }
            }
        }
        metrics::histogram!("chat_append_batch_requests").record(size as f64);
        metrics::histogram!("chat_append_batch_seconds").record(started.elapsed().as_secs_f64());
    }
}

/// Commits a batch on the appender's connection, (re)connecting if needed;
/// after a failure the connection is dropped, to start clean next time.
async fn commit_on(
    connection: &mut Option<MySqlConnection>,
    options: &MySqlConnectOptions,
    requests: &[AppendRequest],
) -> Result<Vec<Result<Appended, AppendError>>, sqlx::Error> {
    if connection.is_none() {
        let connect = tokio::time::timeout(CONNECT_TIMEOUT, options.connect());
        *connection = Some(connect.await.map_err(|_| sqlx::Error::PoolTimedOut)??);
    }
    let Some(conn) = connection.as_mut() else {
        return Err(sqlx::Error::PoolClosed);
    };
    let outcome = commit(conn, requests).await;
    if outcome.is_err() {
        *connection = None;
    }
    outcome
}

/// Checks and writes one batch in one transaction; answers per request.
async fn commit(connection: &mut MySqlConnection, requests: &[AppendRequest]) -> Result<Vec<Result<Appended, AppendError>>, sqlx::Error> {
    let mut tx = connection.begin().await?;
    let last_position: u64 =
        sqlx::query_scalar("SELECT last_position FROM event_log_head WHERE id = 1 FOR UPDATE").fetch_one(&mut *tx).await?;
    let mut versions = current_versions(&mut tx, requests).await?;
    let mut taken = taken_lookups(&mut tx, requests).await?;
    let recorded_at = crate::time::now_millis();

    let mut position = last_position;
    let mut outcomes = Vec::with_capacity(requests.len());
    let mut accepted = Vec::with_capacity(requests.len());
    for request in requests {
        let key = (request.stream.stream_type, request.stream.stream_id.clone());
        let current = versions.get(&key).copied().unwrap_or(0);
        if current != request.expected_version {
            outcomes.push(Err(AppendError::VersionConflict(request.stream.to_string())));
            continue;
        }
        if let Some((lookup, existing)) = request
            .lookups
            .iter()
            .filter(|l| l.unique)
            .find_map(|l| taken.get(&(l.kind, l.key.clone())).map(|existing| (l, existing.clone())))
        {
            outcomes.push(Err(AppendError::LookupTaken { kind: lookup.kind, key: lookup.key.clone(), existing_stream_id: existing }));
            continue;
        }
        for lookup in &request.lookups {
            taken.insert((lookup.kind, lookup.key.clone()), request.stream.stream_id.clone());
        }
        versions.insert(key, current + request.events.len() as u64);
        let first_position = position + 1;
        position += request.events.len() as u64;
        outcomes.push(Ok(Appended { first_position, last_position: position, recorded_at }));
        accepted.push((request, first_position));
    }
    if accepted.is_empty() {
        tx.rollback().await?;
        return Ok(outcomes);
    }

    insert_events(&mut tx, &accepted, recorded_at).await?;
    upsert_stream_versions(&mut tx, &accepted).await?;
    insert_lookups(&mut tx, &accepted).await?;
    complete_idempotency_keys(&mut tx, &accepted).await?;
    sqlx::query("UPDATE event_log_head SET last_position = ? WHERE id = 1").bind(position).execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(outcomes)
}

type StreamKey = (&'static str, String);

async fn current_versions(tx: &mut Transaction<'_, MySql>, requests: &[AppendRequest]) -> Result<HashMap<StreamKey, u64>, sqlx::Error> {
    let mut by_type: HashMap<&'static str, HashSet<&str>> = HashMap::new();
    for r in requests {
        by_type.entry(r.stream.stream_type).or_default().insert(&r.stream.stream_id);
    }
    let mut versions = HashMap::new();
    for (stream_type, ids) in by_type {
        let mut q = QueryBuilder::<MySql>::new("SELECT stream_id, version FROM event_streams WHERE stream_type = ");
        q.push_bind(stream_type).push(" AND stream_id IN (");
        let mut list = q.separated(", ");
        for id in &ids {
            list.push_bind(*id);
        }
        q.push(")");
        let rows: Vec<(String, u32)> = q.build_query_as().fetch_all(&mut **tx).await?;
        versions.extend(rows.into_iter().map(|(id, v)| ((stream_type, id), u64::from(v))));
    }
    Ok(versions)
}

async fn taken_lookups(
    tx: &mut Transaction<'_, MySql>,
    requests: &[AppendRequest],
) -> Result<HashMap<(&'static str, String), String>, sqlx::Error> {
    let mut by_kind: HashMap<&'static str, Vec<&str>> = HashMap::new();
    for lookup in requests.iter().flat_map(|r| r.lookups.iter().filter(|l| l.unique)) {
        by_kind.entry(lookup.kind).or_default().push(&lookup.key);
    }
    let mut taken = HashMap::new();
    for (kind, keys) in by_kind {
        let mut q = QueryBuilder::<MySql>::new("SELECT lookup_key, stream_id FROM stream_lookups WHERE lookup_kind = ");
        q.push_bind(kind).push(" AND lookup_key IN (");
        let mut list = q.separated(", ");
        for key in keys {
            list.push_bind(key);
        }
        q.push(")");
        let rows: Vec<(String, String)> = q.build_query_as().persistent(false).fetch_all(&mut **tx).await?;
        taken.extend(rows.into_iter().map(|(key, stream_id)| ((kind, key), stream_id)));
    }
    Ok(taken)
}

async fn insert_events(
    tx: &mut Transaction<'_, MySql>,
    accepted: &[(&AppendRequest, u64)],
    recorded_at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    let rows = accepted.iter().flat_map(|(request, first)| {
        let stream_version = request.expected_version;
        request.events.iter().enumerate().map(move |(i, event)| (*request, first + i as u64, stream_version + 1 + i as u64, event))
    });
    let mut q = QueryBuilder::<MySql>::new(
        "INSERT INTO event_log (position, event_id, stream_type, stream_id, stream_version, event_type, schema_version, data, metadata, recorded_at) ",
    );
    q.push_values(rows, |mut row, (request, position, version, event)| {
        row.push_bind(position)
            .push_bind(event.event_id.hyphenated().to_string())
            .push_bind(request.stream.stream_type)
            .push_bind(&request.stream.stream_id)
            .push_bind(version as u32)
            .push_bind(event.event_type)
            .push_bind(event.schema_version)
            .push_bind(&event.data)
            .push_bind(&event.metadata)
            .push_bind(recorded_at);
    });
    q.build().persistent(false).execute(&mut **tx).await?;
    Ok(())
}

async fn upsert_stream_versions(tx: &mut Transaction<'_, MySql>, accepted: &[(&AppendRequest, u64)]) -> Result<(), sqlx::Error> {
    // The last request of a stream in the batch carries its final version.
    let mut finals: HashMap<StreamKey, u64> = HashMap::new();
    for (request, _) in accepted {
        let version = request.expected_version + request.events.len() as u64;
        finals.insert((request.stream.stream_type, request.stream.stream_id.clone()), version);
    }
    let mut q = QueryBuilder::<MySql>::new("INSERT INTO event_streams (stream_type, stream_id, version) ");
    q.push_values(finals, |mut row, ((stream_type, stream_id), version)| {
        row.push_bind(stream_type).push_bind(stream_id).push_bind(version as u32);
    });
    q.push(" ON DUPLICATE KEY UPDATE version = VALUES(version)");
    q.build().persistent(false).execute(&mut **tx).await?;
    Ok(())
}

async fn insert_lookups(tx: &mut Transaction<'_, MySql>, accepted: &[(&AppendRequest, u64)]) -> Result<(), sqlx::Error> {
    let rows: Vec<(&Lookup, &str)> =
        accepted.iter().flat_map(|(r, _)| r.lookups.iter().map(|l| (l, r.stream.stream_id.as_str()))).collect();
    if rows.is_empty() {
        return Ok(());
    }
    let mut q = QueryBuilder::<MySql>::new("INSERT INTO stream_lookups (lookup_kind, lookup_key, stream_id) ");
    q.push_values(rows, |mut row, (lookup, stream_id)| {
        row.push_bind(lookup.kind).push_bind(&lookup.key).push_bind(stream_id);
    });
    q.build().persistent(false).execute(&mut **tx).await?;
    Ok(())
}

async fn complete_idempotency_keys(tx: &mut Transaction<'_, MySql>, accepted: &[(&AppendRequest, u64)]) -> Result<(), sqlx::Error> {
    for (request, first) in accepted {
        let Some(completion) = &request.idempotency else {
            continue;
        };
        let last = first + request.events.len() as u64 - 1;
        let mut body = completion.body.clone();
        body.insert("position".into(), last.into());
        sqlx::query("UPDATE idempotency_keys SET response_status = ?, response_body = ? WHERE user_id = ? AND idempotency_key = ?")
            .bind(completion.status)
            .bind(serde_json::Value::Object(body).to_string())
            .bind(completion.user_id)
            .bind(&completion.key)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}
