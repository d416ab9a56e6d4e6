//! The NDJSON body of `GET /api/v1/events`: pages of events read by position
//! into a small bounded channel (constant memory whatever the limit), then,
//! with `follow`, new events as they are committed, with keep-alive lines.

use std::time::Duration;

use bytes::Bytes;
use futures::Stream;
use sqlx::MySqlPool;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::EventFilter;

/// Events per page read from the log.
const PAGE: u64 = 1000;
/// Pages buffered between the reader and the client.
const BUFFERED_PAGES: usize = 4;
/// With `follow`: how often new events are looked for when no local commit wakes us.
const POLL: Duration = Duration::from_millis(250);
/// With `follow`: an empty line after this much silence.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// What keeps a following response open, and what ends it.
pub struct Follow {
    /// This process's commits (wake-ups); other processes' are polled.
    pub head: watch::Receiver<u64>,
    /// Server shutdown: the response ends cleanly.
    pub shutdown: CancellationToken,
}

/// Streams matching events as NDJSON lines, at most `limit` of them; with
/// `follow`, keeps going with new events until the client leaves, the limit
/// is reached or the server shuts down.
pub fn ndjson(
    pool: MySqlPool,
    filter: EventFilter,
    limit: u64,
    follow: Option<Follow>,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> {
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(BUFFERED_PAGES);
    tokio::spawn(async move {
        if let Err(error) = pump(&pool, &filter, limit, follow, &tx).await {
            tracing::warn!(%error, "event replay stopped");
            let _ = tx.send(Err(std::io::Error::other(error.to_string()))).await;
        }
    });
    futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) })
}

async fn pump(
    pool: &MySqlPool,
    filter: &EventFilter,
    limit: u64,
    mut follow: Option<Follow>,
    tx: &mpsc::Sender<Result<Bytes, std::io::Error>>,
) -> Result<(), crate::event_store::StoreError> {
    let mut position = filter.after;
    let mut sent = 0u64;
    let mut last_line = tokio::time::Instant::now();
    while sent < limit {
        let events = filter.chunk(pool, position, PAGE.min(limit - sent)).await?;
        if let Some(last) = events.last() {
            position = last.position;
            sent += events.len() as u64;
            let mut page = String::with_capacity(events.len() * 512);
            for event in &events {
                page.push_str(&event.to_json());
                page.push('\n');
            }
            if tx.send(Ok(Bytes::from(page))).await.is_err() {
                return Ok(()); // the client left
            }
            last_line = tokio::time::Instant::now();
            if events.len() as u64 == PAGE {
                continue;
            }
        }
        let Some(follow) = follow.as_mut() else { return Ok(()) };
        // Caught up: wait for a commit, a poll tick, a keep-alive or shutdown.
        if filter.until.is_some_and(|until| position >= until) {
            return Ok(());
        }
        tokio::select! {
            _ = follow.head.changed() => {}
            _ = tokio::time::sleep(POLL) => {}
            _ = follow.shutdown.cancelled() => return Ok(()),
            _ = tx.closed() => return Ok(()),
        }
        if last_line.elapsed() >= KEEP_ALIVE {
            if tx.send(Ok(Bytes::from_static(b"\n"))).await.is_err() {
                return Ok(());
            }
            last_line = tokio::time::Instant::now();
        }
    }
    Ok(())
}
