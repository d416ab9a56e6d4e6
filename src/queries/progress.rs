//! How far the read models are, for read-your-writes (`min_position`) and lag.

use std::time::Duration;

use sqlx::MySqlPool;
use tokio::sync::watch;

use crate::projections::CHECKPOINT;

/// The read models' applied position: from this process's projector when it
/// runs one, otherwise from the checkpoint table.
#[derive(Clone)]
pub struct ProjectionProgress {
    pool: MySqlPool,
    applied: watch::Receiver<u64>,
}

impl ProjectionProgress {
    pub fn new(pool: MySqlPool, applied: watch::Receiver<u64>) -> Self {
        Self { pool, applied }
    }

    /// The applied position as stored.
    pub async fn stored(&self) -> Result<u64, sqlx::Error> {
        let position: Option<u64> = sqlx::query_scalar("SELECT position FROM projection_checkpoints WHERE name = ?")
            .bind(CHECKPOINT)
            .fetch_optional(&self.pool)
            .await?;
        Ok(position.unwrap_or(0))
    }

    /// Waits until the read models have applied `position`, at most `timeout`;
    /// answers whether they have.
    pub async fn wait_for(&self, position: u64, timeout: Duration) -> Result<bool, sqlx::Error> {
        if *self.applied.borrow() >= position {
            return Ok(true);
        }
        let deadline = tokio::time::Instant::now() + timeout;
        let mut applied = self.applied.clone();
        loop {
            if *applied.borrow() >= position || self.stored().await? >= position {
                return Ok(true);
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(false);
            }
            let changed = async {
                if applied.changed().await.is_err() {
                    // No projector in this process: rely on the checkpoint table.
                    std::future::pending::<()>().await;
                }
            };
            tokio::select! {
                _ = changed => {}
                _ = tokio::time::sleep(Duration::from_millis(20)) => {}
                _ = tokio::time::sleep_until(deadline) => {}
            }
        }
    }
}

/// Waits until `applied` moves (this process's projector), at most `poll`
/// (another process's projector is seen only by polling); false if
/// `shutdown` came first. A closed channel (no projector here) only polls.
pub async fn wait_for_progress(applied: &mut watch::Receiver<u64>, poll: Duration, shutdown: &tokio_util::sync::CancellationToken) -> bool {
    let changed = async {
        if applied.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        _ = changed => true,
        _ = tokio::time::sleep(poll) => true,
        _ = shutdown.cancelled() => false,
    }
}
