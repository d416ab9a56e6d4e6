//! The task that keeps the read cache exact: it follows the read models'
//! applied position and reads, in log order, every event they applied.

use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{touched, ReadCache};
use crate::event_store::{EventReader, StoreError};
use crate::queries::progress::wait_for_progress;
use crate::queries::ProjectionProgress;

/// Events read per round.
const CHUNK: u32 = 1_000;
/// How often the applied position is checked when nothing wakes the follower
/// (the projector may run in another process); also how often an idle
/// follower confirms it is caught up.
const POLL: Duration = Duration::from_millis(20);
/// Pause after a failed round.
const RETRY: Duration = Duration::from_millis(200);

/// Follows the read models until `shutdown`, recording in `cache` what each
/// applied event changed. `applied` is this process's projector, if any.
pub async fn follow(
    cache: ReadCache,
    reader: EventReader,
    progress: ProjectionProgress,
    mut applied: watch::Receiver<u64>,
    shutdown: CancellationToken,
) {
    if !cache.is_enabled() {
        return;
    }
    // The cache starts empty: it need not account for what came before.
    loop {
        match progress.stored().await {
            Ok(position) => {
                cache.restart_at(position);
                break;
            }
            Err(error) => tracing::warn!(%error, "read cache cannot read the read models' position; retrying"),
        }
        tokio::select! {
            _ = tokio::time::sleep(RETRY) => {}
            _ = shutdown.cancelled() => return,
        }
    }
    loop {
        let outcome = tokio::select! {
            outcome = round(&cache, &reader, &progress, &applied) => outcome,
            _ = shutdown.cancelled() => return,
        };
        match outcome {
            Ok(true) => {}
            Ok(false) => {
                if !wait_for_progress(&mut applied, POLL, &shutdown).await {
                    return;
                }
            }
            Err(error) => {
                tracing::warn!(%error, "read cache cannot follow the read models; queries go to the database");
                tokio::select! {
                    _ = tokio::time::sleep(RETRY) => {}
                    _ = shutdown.cancelled() => return,
                }
            }
        }
    }
}

/// Accounts for the next applied events; false when there were none.
async fn round(
    cache: &ReadCache,
    reader: &EventReader,
    progress: &ProjectionProgress,
    applied: &watch::Receiver<u64>,
) -> Result<bool, StoreError> {
    let seen = cache.seen();
    let local = *applied.borrow();
    let applied = if local > seen { local } else { local.max(progress.stored().await?) };
    if applied < seen {
        tracing::warn!(applied, seen, "the read models went back; read cache emptied");
        cache.restart_at(applied);
        return Ok(true);
    }
    if applied == seen {
        cache.caught_up();
        return Ok(false);
    }
    let events = reader.events_after_without_metadata(seen, CHUNK).await?;
    let Some(last) = events.iter().map(|e| e.position).take_while(|p| *p <= applied).last() else {
        // The checkpoint is ahead of the log we can read: wait for it.
        return Ok(false);
    };
    let changes = events.iter().take_while(|e| e.position <= applied).map(|e| (e.position, touched(e)));
    cache.advance(changes, last);
    if last == applied {
        cache.caught_up();
    }
    Ok(true)
}
