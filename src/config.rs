//! Configuration, from the environment (a `.env` file is read if present) or flags.

use std::net::SocketAddr;

use clap::{Args, ValueEnum};

/// Where the process finds its dependencies and how it serves.
#[derive(Debug, Clone, Args)]
pub struct Config {
    /// MySQL/MariaDB URL; the database is created if missing.
    #[arg(long, env = "DATABASE_URL", default_value = "mysql://root@127.0.0.1:3306/chat")]
    pub database_url: String,
    /// NATS server URL (JetStream enabled).
    #[arg(long, env = "NATS_URL", default_value = "nats://127.0.0.1:4222")]
    pub nats_url: String,
    /// HS256 secret for bearer tokens.
    #[arg(long, env = "CHAT_JWT_SECRET", default_value = "dev-secret", hide_env_values = true)]
    pub jwt_secret: String,
    /// Address the HTTP API listens on.
    #[arg(long, env = "CHAT_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// JetStream stream that carries the events.
    #[arg(long, env = "CHAT_NATS_STREAM", default_value = "CHAT_EVENTS")]
    pub nats_stream: String,
    /// Subject prefix of published events.
    #[arg(long, env = "CHAT_NATS_SUBJECT_PREFIX", default_value = "chat.events")]
    pub nats_subject_prefix: String,
    /// Size of the database connection pool.
    #[arg(long, env = "CHAT_DB_MAX_CONNECTIONS", default_value_t = 16)]
    pub db_max_connections: u32,
    /// Conversations whose state is kept in memory for commands.
    #[arg(long, env = "CHAT_AGGREGATE_CACHE", default_value_t = 10_000)]
    pub aggregate_cache: usize,
    /// How long a query with `min_position` waits for the read models, in ms.
    #[arg(long, env = "CHAT_READ_WAIT_MS", default_value_t = 2_000)]
    pub read_wait_ms: u64,
    /// Events a realtime connection may have queued before it is dropped as too slow.
    #[arg(long, env = "CHAT_WS_QUEUE", default_value_t = 1_024)]
    pub ws_queue: usize,
}

/// What a `serve` process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Role {
    /// The HTTP API (commands, queries, operations).
    Api,
    /// The outbox publisher to NATS JetStream.
    Publisher,
    /// The read-model projectors.
    Projector,
}

impl Role {
    /// Every role: what `chat serve` runs by default.
    pub const ALL: [Role; 3] = [Role::Api, Role::Publisher, Role::Projector];
}

impl Config {
    /// True when the secret is the development default.
    pub fn uses_default_secret(&self) -> bool {
        self.jwt_secret == "dev-secret"
    }
}
