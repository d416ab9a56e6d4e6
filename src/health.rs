//! Readiness of the process's dependencies, for `/readyz` and the logs.

use std::time::Duration;

use serde::Serialize;
use sqlx::MySqlPool;

/// Checks the database and NATS connections.
pub struct Health {
    pool: MySqlPool,
    nats: Option<async_nats::Client>,
}

/// The `/readyz` body.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Readiness {
    /// `ready` or `not_ready`.
    pub status: &'static str,
    /// `up` or `down`.
    pub database: &'static str,
    /// `up` or `down`.
    pub nats: &'static str,
    pub projection_lag: Lag,
    /// Events appended but not yet published on JetStream.
    pub publication_lag: Lag,
}

/// How far a consumer of the log is behind its head.
#[derive(Debug, Default, Serialize, utoipa::ToSchema)]
pub struct Lag {
    pub events: u64,
    pub seconds: f64,
}

impl Health {
    pub fn new(pool: MySqlPool, nats: Option<async_nats::Client>) -> Self {
        Self { pool, nats }
    }

    /// Probes every dependency, each bounded to one second.
    pub async fn readiness(&self) -> Readiness {
        let lags = tokio::time::timeout(Duration::from_secs(1), async {
            let publication = self.lag_behind("SELECT last_position FROM publication_cursor WHERE name = 'jetstream'").await?;
            let projection = self.lag_behind("SELECT position FROM projection_checkpoints WHERE name = 'read_models'").await?;
            Ok::<_, sqlx::Error>((publication, projection))
        })
        .await
        .ok()
        .and_then(Result::ok);
        let database = lags.is_some();
        let nats = self.nats.as_ref().is_some_and(|c| c.connection_state() == async_nats::connection::State::Connected);
        let (publication_lag, projection_lag) = lags.unwrap_or_default();
        metrics::gauge!("chat_projection_lag_events").set(projection_lag.events as f64);
        metrics::gauge!("chat_projection_lag_seconds").set(projection_lag.seconds);
        metrics::gauge!("chat_publication_lag_events").set(publication_lag.events as f64);
        metrics::gauge!("chat_publication_lag_seconds").set(publication_lag.seconds);
        Readiness {
            status: if database && nats { "ready" } else { "not_ready" },
            database: if database { "up" } else { "down" },
            nats: if nats { "up" } else { "down" },
            projection_lag,
            publication_lag,
        }
    }

    /// How far a consumer whose position `cursor_sql` reads is behind the log:
    /// events, and the age of the oldest event it has not applied.
    async fn lag_behind(&self, cursor_sql: &str) -> Result<Lag, sqlx::Error> {
        let cursor: Option<u64> = sqlx::query_scalar(cursor_sql).fetch_optional(&self.pool).await?;
        let cursor = cursor.unwrap_or(0);
        let head: u64 = sqlx::query_scalar("SELECT last_position FROM event_log_head WHERE id = 1").fetch_one(&self.pool).await?;
        if head <= cursor {
            return Ok(Lag::default());
        }
        let oldest: Option<chrono::DateTime<chrono::Utc>> =
            sqlx::query_scalar("SELECT recorded_at FROM event_log WHERE position = ?").bind(cursor + 1).fetch_optional(&self.pool).await?;
        let seconds = oldest.map(|at| (chrono::Utc::now() - at).num_milliseconds().max(0) as f64 / 1000.0).unwrap_or(0.0);
        Ok(Lag { events: head - cursor, seconds })
    }
}
