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
/// How long a failed request keeps trying to free its key while the database
/// is unreachable; past the lease a retry takes the key over anyway.
const RELEASE_WINDOW: Duration = Duration::from_secs(LEASE_SECONDS as u64);
/// Pause between attempts to free a key while the database is unreachable.
const RELEASE_RETRY: Duration = Duration::from_millis(250);

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

    /// A new lease token: names the request that holds a reservation.
    pub fn new_lease() -> String {
        uuid::Uuid::new_v4().simple().to_string()
    }

    /// Reserves `key` for this request, which `lease` (see `new_lease`)
    /// names, or tells how the first one went. On an error the reservation
    /// may still have been written (the connection died after the server
    /// committed it): `release_later` frees it.
    pub async fn reserve(&self, user: UserId, key: &str, request_hash: &str, lease: &str) -> Result<Reservation, sqlx::Error> {
        let deadline = tokio::time::Instant::now() + WAIT_FOR_FIRST;
        loop {
            let inserted = sqlx::query(
                "INSERT IGNORE INTO idempotency_keys (user_id, idempotency_key, request_hash, lease_token, locked_at, created_at) \
                 VALUES (?, ?, ?, ?, NOW(6), NOW(6))",
            )
            .bind(user.get())
            .bind(key)
            .bind(request_hash)
            .bind(lease)
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
                        "UPDATE idempotency_keys SET locked_at = NOW(6), lease_token = ? \
                         WHERE user_id = ? AND idempotency_key = ? AND response_status IS NULL \
                         AND locked_at < NOW(6) - INTERVAL ? SECOND",
                    )
                    .bind(lease)
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

    /// Frees the key of a request that failed without effect, so a retry
    /// runs again: only if this request (`lease`) still holds it and no
    /// response was stored (if the request did commit, its response stays).
    pub async fn release(&self, user: UserId, key: &str, lease: &str) -> Result<(), sqlx::Error> {
        sqlx::query(
            "DELETE FROM idempotency_keys WHERE user_id = ? AND idempotency_key = ? AND lease_token = ? AND response_status IS NULL",
        )
        .bind(user.get())
        .bind(key)
        .bind(lease)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Frees the key like `release`, in the background, trying again while
    /// the database is unreachable (for as long as the lease): the request
    /// answers at once, and a client that retries once the database is back
    /// runs its request instead of waiting out the lease with 409
    /// `idempotency_in_progress`.
    pub fn release_later(&self, user: UserId, key: &str, lease: &str) {
        let (store, key, lease) = (self.clone(), key.to_owned(), lease.to_owned());
        tokio::spawn(async move {
            let deadline = tokio::time::Instant::now() + RELEASE_WINDOW;
            loop {
                match store.release(user, &key, &lease).await {
                    Ok(()) => return,
                    Err(error) if tokio::time::Instant::now() + RELEASE_RETRY >= deadline => {
                        tracing::warn!(%error, "could not release an idempotency key; its lease expires instead");
                        return;
                    }
                    Err(_) => tokio::time::sleep(RELEASE_RETRY).await,
                }
            }
        });
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
