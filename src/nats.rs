//! How a process connects to NATS: one place for the options that the API's
//! connection and the projector's own connection share.

use std::time::Duration;

/// Connects to NATS at `url`; an unreachable server at start is retried
/// rather than failing the process (the event log is the source of truth,
/// so publication and projection catch up once NATS is there).
pub async fn connect(url: &str) -> Result<async_nats::Client, async_nats::ConnectError> {
    async_nats::ConnectOptions::new().retry_on_initial_connect().connection_timeout(Duration::from_secs(2)).connect(url).await
}
