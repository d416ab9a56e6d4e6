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
    /// Copies of the JetStream stream (when this process creates it): 3 on a
    /// cluster of three NATS nodes, so that losing one loses no event.
    #[arg(long, env = "CHAT_NATS_REPLICAS", default_value_t = 1)]
    pub nats_replicas: usize,
    /// Size of the database connection pool.
    #[arg(long, env = "CHAT_DB_MAX_CONNECTIONS", default_value_t = 16)]
    pub db_max_connections: u32,
    /// Conversations whose state is kept in memory for commands.
    #[arg(long, env = "CHAT_AGGREGATE_CACHE", default_value_t = 10_000)]
    pub aggregate_cache: usize,
    /// Events the cached conversation states may hold together (a state grows
    /// with its messages); past it the least recently used are dropped.
    #[arg(long, env = "CHAT_AGGREGATE_CACHE_EVENTS", default_value_t = 2_000_000)]
    pub aggregate_cache_events: u64,
    /// Memory for cached query answers, in MiB (0: every query reads the
    /// database). The cache is kept exact by the event log; see ARCHITECTURE.md.
    #[arg(long, env = "CHAT_READ_CACHE_MB", default_value_t = 64)]
    pub read_cache_mb: usize,
    /// How long a query with `min_position` waits for the read models, in ms.
    #[arg(long, env = "CHAT_READ_WAIT_MS", default_value_t = 2_000)]
    pub read_wait_ms: u64,
    /// Events a realtime connection may have queued before it is dropped as too slow.
    #[arg(long, env = "CHAT_WS_QUEUE", default_value_t = 1_024)]
    pub ws_queue: usize,
    /// Web origins allowed to call the API from a browser (comma-separated,
    /// e.g. `https://app.example`); none by default: no CORS grant at all.
    #[arg(long, env = "CHAT_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<String>,
    /// Abuse limits: rate limits, connection caps, sizes and timeouts.
    #[command(flatten)]
    pub limits: Limits,
}

/// The limits that keep one client from starving the others. Every one is
/// exported in `/metrics` (`chat_limit_*`) and listed in the README.
#[derive(Debug, Clone, Copy, Args)]
pub struct Limits {
    /// Commands (POST, PUT, PATCH, DELETE) one user may send per second, sustained.
    #[arg(long, env = "CHAT_RATE_LIMIT_PER_SECOND", default_value_t = Limits::DEFAULT.commands_per_second)]
    pub commands_per_second: u32,
    /// Commands one user may send at once above the sustained rate.
    #[arg(long, env = "CHAT_RATE_LIMIT_BURST", default_value_t = Limits::DEFAULT.command_burst)]
    pub command_burst: u32,
    /// Realtime connections (WebSocket and Socket.IO together) one user may hold.
    #[arg(long, env = "CHAT_WS_MAX_PER_USER", default_value_t = Limits::DEFAULT.realtime_connections_per_user)]
    pub realtime_connections_per_user: usize,
    /// Open TCP connections the HTTP server accepts; more are closed at once.
    #[arg(long, env = "CHAT_MAX_CONNECTIONS", default_value_t = Limits::DEFAULT.max_connections)]
    pub max_connections: usize,
    /// Largest request head (request line and headers), in bytes; more answers 431.
    #[arg(long, env = "CHAT_MAX_HEADER_BYTES", default_value_t = Limits::DEFAULT.max_header_bytes)]
    pub max_header_bytes: usize,
    /// Seconds a client has to send a request's headers (also an idle keep-alive limit).
    #[arg(long, env = "CHAT_HEADER_TIMEOUT_SECS", default_value_t = Limits::DEFAULT.header_timeout_secs)]
    pub header_timeout_secs: u64,
    /// Seconds a client has to send a request's body; a slower one answers 408.
    #[arg(long, env = "CHAT_BODY_TIMEOUT_SECS", default_value_t = Limits::DEFAULT.body_timeout_secs)]
    pub body_timeout_secs: u64,
}

impl Limits {
    /// The defaults: generous for people and well-behaved apps, tight for floods.
    pub const DEFAULT: Limits = Limits {
        commands_per_second: 20,
        command_burst: 60,
        realtime_connections_per_user: 16,
        max_connections: 25_000,
        max_header_bytes: 16 * 1024,
        header_timeout_secs: 10,
        body_timeout_secs: 10,
    };

    /// Limits that never get in the way: for benchmarks that drive a few users hard.
    pub const UNLIMITED_RATE: Limits = Limits { commands_per_second: 1_000_000, command_burst: 1_000_000, ..Limits::DEFAULT };
}

impl Default for Limits {
    fn default() -> Self {
        Limits::DEFAULT
    }
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
