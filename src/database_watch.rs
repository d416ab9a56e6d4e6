//! Knows whether the database answers, so that requests fail fast while it
//! is down: without it every request during an outage waits the pool's 3 s
//! acquire timeout before its 503, holding its connection and its client.
//!
//! A probe on a connection of its own (not the pool's, so a busy pool is
//! never mistaken for an outage) pings it every 250 ms, and every
//! 100 ms while the database is down. A refused or broken connection marks
//! it down at once; a probe that hangs does so only the second time in a
//! row, so that one slow answer under load does not turn requests away.

use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sqlx::mysql::{MySqlConnectOptions, MySqlConnection};
use sqlx::{ConnectOptions, Connection};
use tokio_util::sync::CancellationToken;

/// Time between probes while the database answers.
const PROBE_EVERY: Duration = Duration::from_millis(250);
/// Time between probes while it does not.
const PROBE_WHILE_DOWN: Duration = Duration::from_millis(100);
/// A probe that takes longer than this counts as failed.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// Hung probes in a row that mark the database down.
const HUNG_PROBES_FOR_DOWN: u32 = 2;

/// Whether the database answered its last probes (cheap to clone).
#[derive(Clone, Default)]
pub struct DatabaseWatch {
    down: Arc<AtomicBool>,
}

/// How one probe ended.
enum Probe {
    Answered,
    Refused,
    Hung,
}

impl DatabaseWatch {
    /// Starts probing `database_url` until `shutdown`.
    pub fn start(database_url: &str, shutdown: CancellationToken) -> Result<Self, sqlx::Error> {
        let options = MySqlConnectOptions::from_str(database_url)?.disable_statement_logging();
        let watch = Self::default();
        tokio::spawn(watch.clone().probe_until(options, shutdown));
        Ok(watch)
    }

    /// True while the last probes failed.
    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::Relaxed)
    }

    async fn probe_until(self, options: MySqlConnectOptions, shutdown: CancellationToken) {
        let mut connection: Option<MySqlConnection> = None;
        let mut hung_in_a_row = 0;
        loop {
            let outcome = tokio::select! {
                outcome = probe(&mut connection, &options) => outcome,
                _ = shutdown.cancelled() => return,
            };
            hung_in_a_row = if matches!(outcome, Probe::Hung) { hung_in_a_row + 1 } else { 0 };
            let down = match outcome {
                Probe::Answered => false,
                Probe::Refused => true,
                Probe::Hung => hung_in_a_row >= HUNG_PROBES_FOR_DOWN || self.is_down(),
            };
            if self.down.swap(down, Ordering::Relaxed) != down {
                metrics::gauge!("chat_database_down").set(if down { 1.0 } else { 0.0 });
                if down {
                    tracing::warn!("the database does not answer; requests that need it get 503 at once");
                } else {
                    tracing::info!("the database answers again");
                }
            }
            let pause = if down { PROBE_WHILE_DOWN } else { PROBE_EVERY };
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = shutdown.cancelled() => return,
            }
        }
    }
}

/// One ping, connecting first if needed; a failed connection is dropped.
async fn probe(connection: &mut Option<MySqlConnection>, options: &MySqlConnectOptions) -> Probe {
    let attempt = async {
        let live = match connection.take() {
            Some(live) => live,
            None => options.connect().await?,
        };
        connection.insert(live).ping().await
    };
    let failed = match tokio::time::timeout(PROBE_TIMEOUT, attempt).await {
        Ok(Ok(())) => return Probe::Answered,
        Ok(Err(_)) => Probe::Refused,
        Err(_) => Probe::Hung,
    };
    *connection = None;
    failed
}
