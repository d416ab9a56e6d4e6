//! Benchmark of the event replay (prints figures; not a test): generates a
//! log of `--events` MessageSent events directly in a fresh database, then
//! measures `chat events export` (the library function it runs) and the
//! `GET /api/v1/events` endpoint over the whole log, with the process's
//! resident memory before and after (it must stay flat: both stream).
//!
//! ```sh
//! cargo run --release --bin bench_export -- --events 1000000
//! ```

use std::io::Write;
use std::time::Instant;

use anyhow::{Context, Result};
use chat::domain::conversation::ConversationEvent;
use chat::domain::values::MessageType;
use chat::domain::{ConversationId, MessageId, UserId};
use chat::event_store::{EventMetadata, NewEvent};
use clap::Parser;
use futures::StreamExt;
use sqlx::{MySql, MySqlPool, QueryBuilder};

#[derive(Parser)]
struct Args {
    /// Events to generate.
    #[arg(long, default_value_t = 1_000_000)]
    events: u64,
    /// Keep the database afterwards.
    #[arg(long)]
    keep_db: bool,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let suffix = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let database = format!("chat_bench_export_{suffix}");
    let url = format!("mysql://root@127.0.0.1:3306/{database}");
    chat::db::migrate(&url).await.context("migrating")?;
    let pool = chat::db::connect(&url, 8).await?;
    let outcome = run(&args, &pool, &url, &suffix).await;
    if !args.keep_db {
        sqlx::query(&format!("DROP DATABASE `{database}`")).execute(&pool).await?;
    }
    outcome
}

async fn run(args: &Args, pool: &MySqlPool, url: &str, suffix: &str) -> Result<()> {
    let started = Instant::now();
    generate(pool, args.events).await?;
    let seconds = started.elapsed().as_secs_f64();
    println!("generated {} events in {:.1} s ({:.0} events/s)", args.events, seconds, args.events as f64 / seconds);

    let before = rss_kib();
    let mut sink = CountingSink::default();
    let filter = chat::replay::EventFilter::default();
    let report = chat::replay::export(pool, &filter, &mut sink, |_| {}).await?;
    let seconds = report.elapsed.as_secs_f64();
    println!(
        "export: {} events, {:.1} MB in {:.2} s: {:.0} events/s, {:.1} MB/s; resident memory {} -> {} MiB",
        report.events,
        report.bytes as f64 / 1e6,
        seconds,
        report.events as f64 / seconds,
        report.bytes as f64 / 1e6 / seconds,
        before / 1024,
        rss_kib() / 1024
    );

    let config = chat::config::Config {
        database_url: url.to_owned(),
        nats_url: "nats://127.0.0.1:4222".into(),
        jwt_secret: "bench-secret".into(),
        listen: "127.0.0.1:0".parse()?,
        nats_stream: format!("BENCHEXPORT_{suffix}"),
        nats_subject_prefix: format!("benchexport_{suffix}.events"),
        nats_replicas: 1,
        db_max_connections: 8,
        aggregate_cache: 1000,
        aggregate_cache_events: 2_000_000,
        read_cache_mb: 64,
        read_wait_ms: 2000,
        ws_queue: 1024,
        cors_origins: Vec::new(),
        limits: chat::config::Limits::UNLIMITED_RATE,
    };
    let server = chat::server::start(config, &[chat::config::Role::Api]).await?;
    let addr = server.addr.context("the API listens")?;
    let token = chat::http::JwtKeys::new("bench-secret").issue(UserId::new(1).context("user")?, Some("events:read"), 3600)?;
    let before = rss_kib();
    let started = Instant::now();
    let response = reqwest::Client::new()
        .get(format!("http://{addr}/api/v1/events?after=0&limit={}", args.events))
        .bearer_auth(token)
        .send()
        .await?
        .error_for_status()?;
    let (mut bytes, mut lines) = (0u64, 0u64);
    let mut body = response.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk?;
        bytes += chunk.len() as u64;
        lines += chunk.iter().filter(|b| **b == b'\n').count() as u64;
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "GET /api/v1/events: {} events, {:.1} MB in {:.2} s: {:.0} events/s, {:.1} MB/s; resident memory {} -> {} MiB",
        lines,
        bytes as f64 / 1e6,
        seconds,
        lines as f64 / seconds,
        bytes as f64 / 1e6 / seconds,
        before / 1024,
        rss_kib() / 1024
    );
    server.stop().await;
    Ok(())
}

/// Writes `count` MessageSent events over 1,000 conversations, 5,000 rows a statement.
async fn generate(pool: &MySqlPool, count: u64) -> Result<()> {
    let conversations: Vec<ConversationId> = (0..1000).map(|_| ConversationId::new()).collect();
    let metadata = EventMetadata { user_id: Some(1), correlation_id: "bench".into(), causation_id: "bench".into(), idempotency_key: None };
    let mut versions = vec![0u32; conversations.len()];
    let start = chrono::Utc::now() - chrono::Duration::days(30);
    let mut position = 0u64;
    while position < count {
        let batch = (count - position).min(5000);
        let mut rows = Vec::with_capacity(batch as usize);
        for _ in 0..batch {
            position += 1;
            let index = (position as usize * 7919) % conversations.len();
            versions[index] += 1;
            let event = ConversationEvent::MessageSent {
                conversation_id: conversations[index],
                message_id: MessageId::new(),
                sender_id: UserId::new(1 + (position % 10) as i64).context("user")?,
                seq: u64::from(versions[index]),
                message_type: MessageType::Text,
                content: Some(format!("message number {position} with a little text in it")),
                media_url: None,
                media_metadata: None,
                reply_to_id: None,
            };
            let new = NewEvent::from_payload(&event, &metadata)?;
            let at = start + chrono::Duration::milliseconds(position as i64);
            rows.push((position, conversations[index].to_string(), versions[index], new, at));
        }
        let mut q = QueryBuilder::<MySql>::new(
            "INSERT INTO event_log (position, event_id, stream_type, stream_id, stream_version, event_type, schema_version, data, metadata, recorded_at) ",
        );
        q.push_values(rows, |mut row, (position, stream, version, event, at)| {
            row.push_bind(position)
                .push_bind(event.event_id.to_string())
                .push_bind("conversation")
                .push_bind(stream)
                .push_bind(version)
                .push_bind(event.event_type)
                .push_bind(event.schema_version)
                .push_bind(event.data)
                .push_bind(event.metadata)
                .push_bind(at);
        });
        q.build().execute(pool).await?;
    }
    sqlx::query("UPDATE event_log_head SET last_position = ? WHERE id = 1").bind(position).execute(pool).await?;
    Ok(())
}

/// Counts what is written (the export's disk is not what is measured).
#[derive(Default)]
struct CountingSink {
    bytes: u64,
}

impl Write for CountingSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.bytes += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// This process's resident memory, in KiB.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok()))
        .unwrap_or(0)
}
