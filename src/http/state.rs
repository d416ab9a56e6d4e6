//! What every handler can reach.

use std::sync::Arc;

use sqlx::MySqlPool;

use super::JwtKeys;
use crate::app::idempotency::IdempotencyStore;
use crate::app::{AggregateCache, Executor};
use crate::domain::conversation::ConversationAggregate;
use crate::domain::posting::PostingAggregate;
use crate::domain::user::UserAggregate;
use crate::health::Health;

/// Shared services of the HTTP API.
pub struct Services {
    pub pool: MySqlPool,
    pub jwt: JwtKeys,
    pub executor: Executor,
    pub idempotency: IdempotencyStore,
    pub conversations: AggregateCache<ConversationAggregate>,
    pub users: AggregateCache<UserAggregate>,
    pub postings: AggregateCache<PostingAggregate>,
    pub health: Health,
    /// Whether the database answers (requests fail fast while it does not).
    pub database: crate::database_watch::DatabaseWatch,
    /// How far the read models are (for `min_position`).
    pub progress: crate::queries::ProjectionProgress,
    /// Answers of recent queries, kept exact by the event log.
    pub read_cache: crate::queries::ReadCache,
    /// How long a query waits for `min_position`.
    pub read_wait: std::time::Duration,
    /// Cancelled at shutdown: long-lived responses (event follow) end with it.
    pub shutdown: tokio_util::sync::CancellationToken,
    /// Realtime fan-out of this process.
    pub hub: Option<crate::realtime::Hub>,
    /// Typing and presence across processes (NATS core).
    pub live: Option<crate::realtime::LiveSignals>,
    /// The router itself, for commands sent over realtime connections.
    pub in_process: super::InProcessRouter,
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    /// Abuse limits this process enforces.
    pub limits: crate::config::Limits,
    /// Per-user command buckets.
    pub rate_limiter: super::rate_limit::CommandRateLimiter,
}

/// Cheap-to-clone handle on the services.
pub type AppState = Arc<Services>;
