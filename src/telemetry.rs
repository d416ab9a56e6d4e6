//! Logs (tracing, JSON or pretty) and the Prometheus metrics recorder.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::{fmt, EnvFilter};

/// Installs the log subscriber: `RUST_LOG` filters (default `info`),
/// `CHAT_LOG_FORMAT=json` for structured output.
pub fn init_logs() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,async_nats=warn"));
    let json = std::env::var("CHAT_LOG_FORMAT").is_ok_and(|f| f == "json");
    let builder = fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = if json { builder.json().flatten_event(true).try_init() } else { builder.try_init() };
}

/// Bucket bounds of every `*_seconds` histogram: Prometheus histograms (not
/// summaries), so the lags and batch times of several processes add up into
/// one distribution (`histogram_quantile` over `sum by (le)`).
const SECONDS_BUCKETS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// How often histogram samples are folded into their buckets and summaries.
const METRICS_UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// The process-wide metrics recorder (installed once, shared by every server
/// the process starts, e.g. in tests).
pub fn metrics_handle() -> Option<PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
                .map_err(|error| tracing::warn!(%error, "metrics buckets refused; durations are summaries"))
                .unwrap_or_default()
                .build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok()?;
            start_upkeep(handle.clone());
            Some(handle)
        })
        .clone()
}

/// A recorder built this way keeps every histogram sample (one per delivery,
/// per append batch...) until something folds them into the histograms: a
/// `/metrics` scrape does, and so does this thread, so that a server nobody
/// scrapes does not grow by 8 bytes per sample for ever.
fn start_upkeep(handle: PrometheusHandle) {
    let spawned = std::thread::Builder::new().name("metrics-upkeep".into()).spawn(move || loop {
        std::thread::sleep(METRICS_UPKEEP_EVERY);
        handle.run_upkeep();
    });
    if let Err(error) = spawned {
        tracing::warn!(%error, "cannot start the metrics upkeep thread; histogram samples are folded only when /metrics is scraped");
    }
}

/// Publishes the configured abuse limits as gauges (`chat_limit_*`), so a
/// dashboard shows each rejection counter next to the limit that caused it.
pub fn describe_limits(limits: &crate::config::Limits, realtime_queue: usize) {
    let gauges: [(&'static str, f64); 9] = [
        ("chat_limit_commands_per_second", f64::from(limits.commands_per_second)),
        ("chat_limit_command_burst", f64::from(limits.command_burst)),
        ("chat_limit_realtime_connections_per_user", limits.realtime_connections_per_user as f64),
        ("chat_limit_realtime_queue_events", realtime_queue as f64),
        ("chat_limit_http_connections", limits.max_connections as f64),
        ("chat_limit_header_bytes", limits.max_header_bytes as f64),
        ("chat_limit_header_timeout_seconds", limits.header_timeout_secs as f64),
        ("chat_limit_body_timeout_seconds", limits.body_timeout_secs as f64),
        ("chat_limit_body_bytes", crate::http::MAX_BODY_BYTES as f64),
    ];
    for (name, value) in gauges {
        metrics::gauge!(name).set(value);
    }
}

/// Records, for each event, how long after it was recorded a stage (its
/// publication, its projection) finished with it: where delivery lag goes.
pub fn record_delay(histogram: &'static str, recorded: impl Iterator<Item = chrono::DateTime<chrono::Utc>>) {
    let lag = metrics::histogram!(histogram);
    let now = chrono::Utc::now();
    for at in recorded {
        lag.record((now - at).num_microseconds().unwrap_or(0).max(0) as f64 / 1e6);
    }
}
