//! `Idempotency-Key` handling: per user, kept at least 24 hours. A request
//! reserves its key before running; the response is stored in the same
//! transaction as the events it appended (see the appender), so a retry gets
//! the first response exactly when the first request took effect.

use std::time::Duration;

use sqlx::MySqlPool;

use crate::domain::UserId;

/// How long a reservation holds before a retry may take it over (a crashed request).
const LEASE_SECONDS: i64 = 30;
/// How long a retry waits for the first request to finish.
const WAIT_FOR_FIRST: Duration = Duration::from_secs(5);
/// Keys are kept this long (the contract promises at least 24 hours).
const RETENTION_HOURS: i64 = 25;

/// What to do with a request that carries a key.
#[derive(Debug, PartialEq, Eq)]
pub enum Reservation {
    /// This request holds the key: run it.
    Acquired,
    /// The key was used before with the same request: answer this.
    Replay { status: u16, body: String },
    /// The key was used before with a different request.
    Mismatch,
    /// The first request with this key is still running.
    InProgress,
}

/// Storage of idempotency keys.
#[derive(Clone)]
pub struct IdempotencyStore {
    pool: MySqlPool,
}

impl IdempotencyStore {
    pub fn new(pool: MySqlPool) -> Self {
        Self { pool }
    }

    /// Reserves `key` for this request, or tells how the first one went.
    pub async fn reserve(&self, user: UserId, key: &str, request_hash: &str) -> Result<Reservation, sqlx::Error> {
        let deadline = tokio::time::Instant::now() + WAIT_FOR_FIRST;
        loop {
            let inserted = sqlx::query(
                "INSERT IGNORE INTO idempotency_keys (user_id, idempotency_key, request_hash, locked_at, created_at) \
                 VALUES (?, ?, ?, NOW(6), NOW(6))",
            )
            .bind(user.get())
            .bind(key)
            .bind(request_hash)
            .execute(&self.pool)
            .await?;
            if inserted.rows_affected() == 1 {
                return Ok(Reservation::Acquired);
            }
            let row: Option<(String, Option<u16>, Option<String>, i64)> = sqlx::query_as(
                "SELECT request_hash, response_status, response_body, CAST(locked_at < NOW(6) - INTERVAL ? SECOND AS SIGNED) \
                 FROM idempotency_keys WHERE user_id = ? AND idempotency_key = ?",
            )
            .bind(LEASE_SECONDS)
            .bind(user.get())
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
            match row {
                None => continue,
                Some((hash, _, _, _)) if hash != request_hash => return Ok(Reservation::Mismatch),
                Some((_, Some(status), Some(body), _)) => return Ok(Reservation::Replay { status, body }),
                Some((_, _, _, 1)) => {
                    let taken = sqlx::query(
                        "UPDATE idempotency_keys SET locked_at = NOW(6) \
                         WHERE user_id = ? AND idempotency_key = ? AND response_status IS NULL \
                         AND locked_at < NOW(6) - INTERVAL ? SECOND",
                    )
                    .bind(user.get())
                    .bind(key)
                    .bind(LEASE_SECONDS)
                    .execute(&self.pool)
                    .await?;
                    if taken.rows_affected() == 1 {
                        return Ok(Reservation::Acquired);
                    }
                }
                Some(_) => {}
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(Reservation::InProgress);
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Stores the response of a request that appended nothing.
    pub async fn complete(&self, user: UserId, key: &str, status: u16, body: &str) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE idempotency_keys SET response_status = ?, response_body = ? WHERE user_id = ? AND idempotency_key = ?")
            .bind(status)
            .bind(body)
            .bind(user.get())
            .bind(key)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Frees the key of a request that failed without effect, so a retry runs again.
    pub async fn release(&self, user: UserId, key: &str) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM idempotency_keys WHERE user_id = ? AND idempotency_key = ? AND response_status IS NULL")
            .bind(user.get())
            .bind(key)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Deletes keys past their retention, a bounded number at a time.
    pub async fn sweep(&self) -> Result<u64, sqlx::Error> {
        let done = sqlx::query("DELETE FROM idempotency_keys WHERE created_at < NOW(6) - INTERVAL ? HOUR LIMIT 10000")
            .bind(RETENTION_HOURS)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }
}
