//! How a process connects to NATS: one place for the options that the API's
//! connection and the projector's own connection share.

use std::time::Duration;

/// Connects to NATS at `url` (several servers of a cluster: comma-separated;
/// the client moves to another when its server goes); an unreachable server
/// at start is retried rather than failing the process (the event log is the
/// source of truth, so publication and projection catch up once NATS is there).
pub async fn connect(url: &str) -> Result<async_nats::Client, async_nats::ConnectError> {
    async_nats::ConnectOptions::new().retry_on_initial_connect().connection_timeout(Duration::from_secs(2)).connect(servers(url)).await
}

/// The servers of a comma-separated NATS URL list.
pub fn servers(url: &str) -> Vec<&str> {
    url.split(',').map(str::trim).filter(|server| !server.is_empty()).collect()
}
