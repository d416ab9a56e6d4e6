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
        let lag: Option<(u64, f64)> = tokio::time::timeout(
            Duration::from_secs(1),
            sqlx::query_as(
                "SELECT CAST(h.last_position - COALESCE(c.last_position, 0) AS UNSIGNED), \
                 CAST(COALESCE(TIMESTAMPDIFF(MICROSECOND, \
                    (SELECT MIN(recorded_at) FROM event_log WHERE position > COALESCE(c.last_position, 0)), NOW(6)), 0) / 1e6 AS DOUBLE) \
                 FROM event_log_head h LEFT JOIN publication_cursor c ON c.name = 'jetstream' WHERE h.id = 1",
            )
            .fetch_one(&self.pool),
        )
        .await
        .ok()
        .and_then(Result::ok);
        let database = lag.is_some();
        let nats = self
            .nats
            .as_ref()
            .is_some_and(|c| c.connection_state() == async_nats::connection::State::Connected);
        let (events, seconds) = lag.unwrap_or_default();
        Readiness {
            status: if database && nats {
                "ready"
            } else {
                "not_ready"
            },
            database: if database { "up" } else { "down" },
            nats: if nats { "up" } else { "down" },
            projection_lag: Lag::default(),
            publication_lag: Lag {
                events,
                seconds: if events == 0 { 0.0 } else { seconds },
            },
        }
    }
}
