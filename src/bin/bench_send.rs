//! Benchmark of the send-message command over HTTP (not a test).
//!
//! Starts the server in-process (API and publisher roles) against the local
//! MariaDB (`127.0.0.1:3306`, user root, no password) and NATS
//! (`127.0.0.1:4222`), registers users and creates GROUP conversations over the
//! API, then prints figures for three phases:
//!
//! * peak: `--clients` tasks sending back-to-back (closed loop), after a 3 s
//!   warm-up that is not measured;
//! * steady: an open-loop schedule of `--rate` sends/s, each latency measured
//!   from the request's scheduled time (no coordinated omission);
//! * fsync: the database's commit latency, from 2000 sequential single-row
//!   autocommit inserts.
//!
//! Run it with
//!
//! ```text
//! cargo run --release --bin bench_send -- --seconds 20
//! ```
//!
//! `--url http://host:port` benchmarks an already running server instead
//! (whose JWT secret goes in `--jwt-secret`). The bench database is dropped at
//! the end unless `--keep-db`, and the JetStream stream of the in-process server
//! is deleted. Server logs go to stderr (`RUST_LOG` filters them).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use futures::{StreamExt, TryStreamExt};
use hdrhistogram::Histogram;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::migrate::MigrateDatabase;
use sqlx::{MySql, MySqlPool};
use tokio::sync::{mpsc, Semaphore};
use tokio::time::MissedTickBehavior;

#[path = "shared/cpu.rs"]
mod cpu;

use chat::config::{Config, Role};

/// The server runs in this process: it allocates as the `chat` binary does
/// (mimalloc, see `src/main.rs`), or the figures would measure glibc's malloc.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use chat::domain::UserId;
use chat::http::{JwtKeys, SCOPE_ADMIN};
use chat::server::RunningServer;

const NATS_URL: &str = "nats://127.0.0.1:4222";
/// Unmeasured sending before the peak phase.
const WARM_UP: Duration = Duration::from_secs(3);
/// Requests in flight at most in the steady phase.
const MAX_IN_FLIGHT: usize = 256;
/// Inserts of the fsync phase.
const FSYNC_COMMITS: usize = 2000;
/// Error bodies printed per phase.
const ERROR_SAMPLES: usize = 5;
/// Characters of an error body printed.
const ERROR_BODY_CHARS: usize = 300;
/// Setup requests in flight at once.
const SETUP_CONCURRENCY: usize = 16;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Highest latency the histograms hold (one hour), in µs.
const MAX_LATENCY_US: u64 = 3_600_000_000;

/// Benchmark of send-message commands over HTTP.
#[derive(Debug, Parser)]
#[command(name = "bench_send")]
struct Args {
    /// Concurrent clients of the peak phase (and senders the steady phase rotates over).
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Duration of each measured phase, in seconds.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Target sends per second of the steady phase.
    #[arg(long, default_value_t = 1000)]
    rate: u64,
    /// GROUP conversations the clients spread over (two members each).
    #[arg(long, default_value_t = 64)]
    conversations: usize,
    /// Bench database, created if missing
    /// [default: mysql://root@127.0.0.1:3306/chat_bench_<random suffix>].
    #[arg(long)]
    database_url: Option<String>,
    /// Keep the bench database at the end.
    #[arg(long)]
    keep_db: bool,
    /// Base URL of a running server to benchmark instead of starting one.
    #[arg(long)]
    url: Option<String>,
    /// JWT secret of the server given by `--url`.
    #[arg(long, default_value = "dev-secret")]
    jwt_secret: String,
    /// Run only the write side in the server (API and publisher, no projector
    /// or realtime work competing for the cores): the write path alone.
    #[arg(long)]
    write_only: bool,
}

fn main() -> Result<()> {
    let args = Args::parse();
    validate(&args)?;
    tokio::runtime::Builder::new_multi_thread().enable_all().build().context("building the tokio runtime")?.block_on(run(args))
}

fn validate(args: &Args) -> Result<()> {
    if args.clients == 0 || args.conversations == 0 || args.seconds == 0 || args.rate == 0 {
        bail!("--clients, --conversations, --seconds and --rate must be at least 1");
    }
    if args.conversations > 1_000_000 {
        bail!("--conversations must be at most 1000000");
    }
    Ok(())
}

/// Sets up, benchmarks, and cleans up even when a phase fails.
async fn run(args: Args) -> Result<()> {
    chat::telemetry::init_logs();
    let suffix = random_suffix();
    let database_url = args.database_url.clone().unwrap_or_else(|| format!("mysql://root@127.0.0.1:3306/chat_bench_{suffix}"));
    let db_existed = ensure_database(&database_url).await?;
    let (outcome, target) = match start_target(&args, &database_url, &suffix).await {
        Ok(target) => (bench(&args, &target, &database_url).await, Some(target)),
        Err(error) => (Err(error), None),
    };
    let cleaned = clean_up(target, &args, &database_url, db_existed).await;
    outcome.and(cleaned)
}

/// The random part of a UUIDv7, to name the database and the stream.
fn random_suffix() -> String {
    let id = uuid::Uuid::now_v7().simple().to_string();
    id[id.len() - 8..].to_owned()
}

/// Creates the database if missing; true if it existed already.
async fn ensure_database(database_url: &str) -> Result<bool> {
    let existed = MySql::database_exists(database_url).await.with_context(|| format!("checking the database {database_url}"))?;
    if !existed {
        MySql::create_database(database_url).await.with_context(|| format!("creating the database {database_url}"))?;
    }
    Ok(existed)
}

// ---------------------------------------------------------------------------
// The server under test

/// The server the requests go to, and what to clean up after it.
struct Target {
    base_url: String,
    jwt_secret: String,
    /// The in-process server, if this binary started it.
    server: Option<RunningServer>,
    /// The JetStream stream of the in-process server.
    stream: Option<String>,
}

async fn start_target(args: &Args, database_url: &str, suffix: &str) -> Result<Target> {
    if let Some(url) = &args.url {
        return Ok(Target {
            base_url: url.trim_end_matches('/').to_owned(),
            jwt_secret: args.jwt_secret.clone(),
            server: None,
            stream: None,
        });
    }
    let config = bench_config(database_url, suffix)?;
    let stream = config.nats_stream.clone();
    let jwt_secret = config.jwt_secret.clone();
    let roles: &[Role] = if args.write_only { &[Role::Api, Role::Publisher] } else { &Role::ALL };
    let server = chat::server::start(config, roles).await.context("starting the server")?;
    let Some(addr) = server.addr else {
        server.stop().await;
        bail!("the server started without an HTTP address");
    };
    Ok(Target { base_url: format!("http://{addr}"), jwt_secret, server: Some(server), stream: Some(stream) })
}

fn bench_config(database_url: &str, suffix: &str) -> Result<Config> {
    Ok(Config {
        database_url: database_url.to_owned(),
        nats_url: NATS_URL.to_owned(),
        jwt_secret: "bench-secret".to_owned(),
        listen: "127.0.0.1:0".parse().context("parsing the listen address")?,
        nats_stream: format!("BENCH_{suffix}"),
        nats_subject_prefix: format!("bench_{suffix}.events"),
        nats_replicas: 1,
        db_max_connections: 16,
        aggregate_cache: 10_000,
        aggregate_cache_events: 2_000_000,
        read_cache_mb: 64,
        read_wait_ms: 2_000,
        ws_queue: 1_024,
        cors_origins: Vec::new(),
        limits: chat::config::Limits::UNLIMITED_RATE,
    })
}

/// Stops the server, deletes its stream, drops what the bench created in the
/// database. Every step runs; the first failure is returned.
async fn clean_up(target: Option<Target>, args: &Args, database_url: &str, db_existed: bool) -> Result<()> {
    let mut result = Ok(());
    if let Some(target) = target {
        if let Some(server) = target.server {
            server.stop().await;
        }
        if let Some(stream) = target.stream {
            result = result.and(delete_stream(&stream).await);
        }
    }
    if args.keep_db {
        println!("kept database {database_url}");
    } else if db_existed {
        result = result.and(drop_probe_table(database_url).await);
    } else {
        let dropped = MySql::drop_database(database_url).await.with_context(|| format!("dropping the database {database_url}"));
        result = result.and(dropped);
    }
    if let Err(error) = &result {
        eprintln!("cleanup failed: {error:#}");
    }
    result
}

async fn delete_stream(name: &str) -> Result<()> {
    let client = async_nats::connect(NATS_URL).await.context("connecting to NATS")?;
    async_nats::jetstream::new(client).delete_stream(name).await.with_context(|| format!("deleting the JetStream stream {name}"))?;
    Ok(())
}

/// In a database the bench did not create, removes only the fsync probe table.
async fn drop_probe_table(database_url: &str) -> Result<()> {
    let db = chat::db::connect(database_url, 2).await?;
    sqlx::query("DROP TABLE IF EXISTS fsync_probe").execute(&db).await.context("dropping the fsync_probe table")?;
    db.close().await;
    Ok(())
}

// ---------------------------------------------------------------------------
// The phases

async fn bench(args: &Args, target: &Target, database_url: &str) -> Result<()> {
    let db = chat::db::connect(database_url, 2).await.context("connecting to the bench database")?;
    let http = http_client(args)?;
    let members = set_up(&http, target, args).await?;
    println!(
        "setup: {} users, {} GROUP conversations, {} clients against {}",
        2 * args.conversations,
        args.conversations,
        args.clients,
        target.base_url
    );

    let events_before = count_events(&db).await;
    let peak = run_peak(&http, &members, args.seconds).await?;
    let events_after = count_events(&db).await;
    print_peak(&peak, args.seconds);
    print_event_log(events_before, events_after, &peak);

    let steady = run_steady(&http, &members, args.rate, args.seconds).await?;
    print_steady(&steady, args.rate, args.seconds);

    let fsync = run_fsync(&db).await?;
    print_fsync(&fsync);
    db.close().await;
    Ok(())
}

fn http_client(args: &Args) -> Result<reqwest::Client> {
    reqwest::Client::builder()
        // Below the server's 10 s idle close (its header deadline), so a pooled
        // connection is never reused just as the server closes it.
        .pool_idle_timeout(Duration::from_secs(5))
        .pool_max_idle_per_host(args.clients.max(MAX_IN_FLIGHT))
        .timeout(REQUEST_TIMEOUT)
        .tcp_nodelay(true)
        .build()
        .context("building the HTTP client")
}

async fn count_events(db: &MySqlPool) -> Result<i64> {
    sqlx::query_scalar("SELECT COUNT(*) FROM event_log").fetch_one(db).await.context("counting the event log")
}

// ---------------------------------------------------------------------------
// Setup over HTTP

/// A user of a conversation the benchmark sends as.
#[derive(Debug, Clone)]
struct Member {
    messages_url: String,
    bearer: String,
}

/// Registers users 1..=2n, creates n GROUP conversations of two users each
/// (users 2i+1 and 2i+2), and gives client k a member of conversation k % n.
async fn set_up(http: &reqwest::Client, target: &Target, args: &Args) -> Result<Vec<Member>> {
    let keys = JwtKeys::new(&target.jwt_secret);
    let ttl = 3600 + 3 * i64::try_from(args.seconds).unwrap_or(i64::MAX / 4);
    let admin = bearer(&keys, 1, Some(SCOPE_ADMIN), ttl)?;
    let users = 2 * args.conversations;
    let tokens = (1..=users).map(|n| bearer(&keys, n, None, ttl)).collect::<Result<Vec<_>>>()?;
    register_users(http, &target.base_url, &admin, users).await?;
    let conversations = create_conversations(http, &target.base_url, &tokens).await?;
    let members = (0..args.clients)
        .map(|k| {
            let conversation = k % conversations.len();
            // Alternate between the two members when there are more clients than conversations.
            let user_index = 2 * conversation + (k / conversations.len()) % 2;
            Member {
                messages_url: format!("{}/api/v1/conversations/{}/messages", target.base_url, conversations[conversation]),
                bearer: tokens[user_index].clone(),
            }
        })
        .collect();
    Ok(members)
}

/// An `Authorization` header value for user `n`.
fn bearer(keys: &JwtKeys, n: usize, scope: Option<&str>, ttl: i64) -> Result<String> {
    let id = i64::try_from(n).ok().and_then(UserId::new).with_context(|| format!("{n} is not a valid user id"))?;
    let token = keys.issue(id, scope, ttl).context("signing a bearer token")?;
    Ok(format!("Bearer {token}"))
}

async fn register_users(http: &reqwest::Client, base_url: &str, admin: &str, users: usize) -> Result<()> {
    let body = json!({"first_name": "U", "last_name": "N"});
    futures::stream::iter(1..=users)
        .map(|n| {
            let url = format!("{base_url}/api/v1/users/{n}");
            let body = &body;
            async move { call(http, Method::PUT, &url, admin, body, StatusCode::OK).await }
        })
        .buffer_unordered(SETUP_CONCURRENCY)
        .try_collect::<Vec<_>>()
        .await
        .context("registering users")?;
    Ok(())
}

/// Creates one GROUP conversation per pair of tokens; returns their ids in order.
async fn create_conversations(http: &reqwest::Client, base_url: &str, tokens: &[String]) -> Result<Vec<String>> {
    let url = format!("{base_url}/api/v1/conversations");
    futures::stream::iter(tokens.chunks(2).enumerate())
        .map(|(i, pair)| {
            let url = &url;
            async move {
                let other = 2 * i + 2;
                let body = json!({"type": "GROUP", "name": format!("bench {i}"), "participant_ids": [other]});
                let answer = call(http, Method::POST, url, &pair[0], &body, StatusCode::CREATED).await?;
                answer["conversation_id"].as_str().map(str::to_owned).with_context(|| format!("no conversation_id in {answer}"))
            }
        })
        .buffered(SETUP_CONCURRENCY)
        .try_collect()
        .await
        .context("creating conversations")
}

/// One setup request; its JSON answer if the status is the expected one.
async fn call(http: &reqwest::Client, method: Method, url: &str, bearer: &str, body: &Value, expected: StatusCode) -> Result<Value> {
    let response = http
        .request(method.clone(), url)
        .header(reqwest::header::AUTHORIZATION, bearer)
        .json(body)
        .send()
        .await
        .with_context(|| format!("{method} {url}"))?;
    let status = response.status();
    let text = response.text().await.with_context(|| format!("reading the answer of {method} {url}"))?;
    if status != expected {
        bail!("{method} {url} answered {status} (expected {expected}): {text}");
    }
    serde_json::from_str(&text).with_context(|| format!("{method} {url} answered non-JSON: {text}"))
}

// ---------------------------------------------------------------------------
// Sending and recording

/// The result of one send request.
enum Outcome {
    Sent,
    /// A non-201 answer or a transport error, described.
    Failed(String),
}

/// Numbers the messages across all clients.
static MESSAGE_NUMBER: AtomicU64 = AtomicU64::new(0);

async fn send(http: &reqwest::Client, member: &Member) -> Outcome {
    let n = MESSAGE_NUMBER.fetch_add(1, Ordering::Relaxed);
    let sent = http
        .post(&member.messages_url)
        .header(reqwest::header::AUTHORIZATION, &member.bearer)
        .json(&json!({"content": format!("hello {n}")}))
        .send()
        .await;
    let response = match sent {
        Ok(response) => response,
        Err(error) => return Outcome::Failed(format!("transport error: {error}")),
    };
    let status = response.status();
    // Read the whole answer so the connection goes back to the pool.
    match response.text().await {
        Ok(_) if status == StatusCode::CREATED => Outcome::Sent,
        Ok(body) => Outcome::Failed(format!("{status}: {}", truncate(&body))),
        Err(error) => Outcome::Failed(format!("{status}, unreadable answer: {error}")),
    }
}

fn truncate(text: &str) -> String {
    text.chars().take(ERROR_BODY_CHARS).collect()
}

/// The first few error descriptions of a phase, shared by its tasks.
#[derive(Clone, Default)]
struct ErrorSamples(Arc<Mutex<Vec<String>>>);

impl ErrorSamples {
    fn offer(&self, description: &str) {
        if let Ok(mut samples) = self.0.lock() {
            if samples.len() < ERROR_SAMPLES {
                samples.push(description.to_owned());
            }
        }
    }

    fn print(&self) {
        if let Ok(samples) = self.0.lock() {
            for sample in samples.iter() {
                println!("  error: {sample}");
            }
        }
    }
}

/// Latencies (µs) of successful sends, and counts.
struct Stats {
    latency: Histogram<u64>,
    sent: u64,
    errors: u64,
}

impl Stats {
    fn new() -> Result<Self> {
        Ok(Self { latency: latency_histogram()?, sent: 0, errors: 0 })
    }

    fn record(&mut self, latency: Duration, outcome: Outcome, samples: &ErrorSamples) {
        match outcome {
            Outcome::Sent => {
                self.sent += 1;
                self.latency.saturating_record(micros(latency));
            }
            Outcome::Failed(description) => {
                self.errors += 1;
                samples.offer(&description);
            }
        }
    }

    fn merge(&mut self, other: &Stats) -> Result<()> {
        self.latency.add(&other.latency).context("merging latency histograms")?;
        self.sent += other.sent;
        self.errors += other.errors;
        Ok(())
    }
}

fn latency_histogram() -> Result<Histogram<u64>> {
    Histogram::new_with_max(MAX_LATENCY_US, 3).context("creating a latency histogram")
}

fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

/// "p50 4.1 ms, p90 7.0 ms, p99 12.3 ms, max 40.2 ms" (or a subset).
fn percentiles(histogram: &Histogram<u64>, quantiles: &[(&str, f64)], with_max: bool) -> String {
    let ms = |us: u64| us as f64 / 1000.0;
    let mut parts: Vec<String> =
        quantiles.iter().map(|(name, q)| format!("{name} {:.1} ms", ms(histogram.value_at_quantile(*q)))).collect();
    if with_max {
        parts.push(format!("max {:.1} ms", ms(histogram.max())));
    }
    parts.join(", ")
}

const P50_P90_P99: &[(&str, f64)] = &[("p50", 0.5), ("p90", 0.9), ("p99", 0.99)];

// ---------------------------------------------------------------------------
// Phase A: peak (closed loop)

struct PeakResult {
    warm_up: Stats,
    measured: Stats,
    samples: ErrorSamples,
    /// CPU seconds over the measured window: this process (the server and
    /// its clients), and MariaDB (if found).
    cpu: (Option<f64>, Option<f64>),
}

/// The pid of the local MariaDB (or MySQL) server, if one runs.
fn database_pid() -> Option<u32> {
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|entry| {
        let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
        matches!(comm.trim(), "mariadbd" | "mysqld").then_some(pid)
    })
}

/// CPU ticks of this process and of the database server.
fn cpu_now(database: Option<u32>) -> (Option<u64>, Option<u64>) {
    (cpu::cpu_ticks("/proc/self/stat"), database.and_then(|pid| cpu::cpu_ticks(&format!("/proc/{pid}/stat"))))
}

/// Every member sends back-to-back for the warm-up, then for `seconds` measured.
async fn run_peak(http: &reqwest::Client, members: &[Member], seconds: u64) -> Result<PeakResult> {
    let measure_from = Instant::now() + WARM_UP;
    let until = measure_from + Duration::from_secs(seconds);
    let samples = ErrorSamples::default();
    let tasks: Vec<_> = members
        .iter()
        .map(|member| {
            let client = ClosedLoopClient { http: http.clone(), member: member.clone(), samples: samples.clone() };
            tokio::spawn(client.run(measure_from, until))
        })
        .collect();
    let database = database_pid();
    tokio::time::sleep_until(measure_from.into()).await;
    let before = cpu_now(database);
    tokio::time::sleep_until(until.into()).await;
    let after = cpu_now(database);
    let seconds = |a: Option<u64>, b: Option<u64>| Some((b? - a?) as f64 / cpu::ticks_per_second());
    let cpu = (seconds(before.0, after.0), seconds(before.1, after.1));
    let mut warm_up = Stats::new()?;
    let mut measured = Stats::new()?;
    for task in tasks {
        let (task_warm_up, task_measured) = task.await.context("a client task failed")??;
        warm_up.merge(&task_warm_up)?;
        measured.merge(&task_measured)?;
    }
    Ok(PeakResult { warm_up, measured, samples, cpu })
}

struct ClosedLoopClient {
    http: reqwest::Client,
    member: Member,
    samples: ErrorSamples,
}

impl ClosedLoopClient {
    /// Sends until `until`; requests started before `measure_from` are warm-up.
    async fn run(self, measure_from: Instant, until: Instant) -> Result<(Stats, Stats)> {
        let mut warm_up = Stats::new()?;
        let mut measured = Stats::new()?;
        loop {
            let started = Instant::now();
            if started >= until {
                break;
            }
            let outcome = send(&self.http, &self.member).await;
            let stats = if started >= measure_from { &mut measured } else { &mut warm_up };
            stats.record(started.elapsed(), outcome, &self.samples);
        }
        Ok((warm_up, measured))
    }
}

fn print_peak(peak: &PeakResult, seconds: u64) {
    let rate = peak.measured.sent as f64 / seconds as f64;
    println!(
        "peak: {rate:.0} sends/s over {seconds} s, {}, errors {}",
        percentiles(&peak.measured.latency, P50_P90_P99, true),
        peak.measured.errors
    );
    let per_thousand = |cpu: Option<f64>| match cpu {
        Some(seconds) if peak.measured.sent > 0 => format!("{:.3} s", seconds * 1000.0 / peak.measured.sent as f64),
        _ => "unknown".to_owned(),
    };
    println!("  CPU per 1,000 sends: this process (server and clients) {}, MariaDB {}", per_thousand(peak.cpu.0), per_thousand(peak.cpu.1));
    if peak.warm_up.errors > 0 {
        println!("  warm-up errors: {}", peak.warm_up.errors);
    }
    peak.samples.print();
}

fn print_event_log(before: Result<i64>, after: Result<i64>, peak: &PeakResult) {
    let sent = peak.warm_up.sent + peak.measured.sent;
    match (before, after) {
        (Ok(before), Ok(after)) => {
            println!("event log: {} events appended during peak (warm-up included), {sent} sends answered 201", after - before)
        }
        (Err(error), _) | (_, Err(error)) => println!("event log: not available ({error:#})"),
    }
}

// ---------------------------------------------------------------------------
// Phase B: steady (open loop)

struct SteadyResult {
    stats: Stats,
    samples: ErrorSamples,
    /// Wall time from the first scheduled send to the last answer.
    elapsed: Duration,
    /// Scheduled sends that had to wait for a free in-flight slot.
    delayed_by_limit: u64,
}

/// Issues `rate` sends per second for `seconds`, rotating over the members.
async fn run_steady(http: &reqwest::Client, members: &[Member], rate: u64, seconds: u64) -> Result<SteadyResult> {
    let samples = ErrorSamples::default();
    let (results, collected) = mpsc::unbounded_channel();
    let collector = tokio::spawn(collect(collected, samples.clone()));
    let limit = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
    ticks.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let started = Instant::now();
    let mut delayed_by_limit = 0;
    for (_, member) in (0..rate * seconds).zip(members.iter().cycle()) {
        // With Burst, a late tick still returns its scheduled instant.
        let scheduled = ticks.tick().await;
        let permit = match limit.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                delayed_by_limit += 1;
                limit.clone().acquire_owned().await.context("the in-flight limit closed")?
            }
        };
        let http = http.clone();
        let member = member.clone();
        let results = results.clone();
        tokio::spawn(async move {
            let outcome = send(&http, &member).await;
            let _ = results.send((scheduled.elapsed(), outcome));
            drop(permit);
        });
    }
    drop(results);
    let stats = collector.await.context("the result collector failed")??;
    Ok(SteadyResult { stats, samples, elapsed: started.elapsed(), delayed_by_limit })
}

/// Records every (latency from schedule, outcome) until all senders are done.
async fn collect(mut results: mpsc::UnboundedReceiver<(Duration, Outcome)>, samples: ErrorSamples) -> Result<Stats> {
    let mut stats = Stats::new()?;
    while let Some((latency, outcome)) = results.recv().await {
        stats.record(latency, outcome, &samples);
    }
    Ok(stats)
}

fn print_steady(steady: &SteadyResult, rate: u64, seconds: u64) {
    let achieved = steady.stats.sent as f64 / steady.elapsed.as_secs_f64();
    println!(
        "steady: {achieved:.0} sends/s of {rate} targeted over {seconds} s ({:.1} s to the last answer), {}, errors {}",
        steady.elapsed.as_secs_f64(),
        percentiles(&steady.stats.latency, P50_P90_P99, true),
        steady.stats.errors
    );
    if steady.delayed_by_limit > 0 {
        println!("  {} sends waited for one of the {MAX_IN_FLIGHT} in-flight slots (server behind the schedule)", steady.delayed_by_limit);
    }
    steady.samples.print();
}

// ---------------------------------------------------------------------------
// Phase C: fsync (commit latency of the database)

struct FsyncResult {
    latency: Histogram<u64>,
    elapsed: Duration,
    flush_log_at_trx_commit: i64,
    sync_binlog: i64,
    log_bin: i64,
}

/// Sequential single-row autocommit inserts on one connection.
async fn run_fsync(db: &MySqlPool) -> Result<FsyncResult> {
    let mut conn = db.acquire().await.context("acquiring a connection")?;
    sqlx::query("CREATE TABLE IF NOT EXISTS fsync_probe (id BIGINT AUTO_INCREMENT PRIMARY KEY, v INT)")
        .execute(&mut *conn)
        .await
        .context("creating the fsync_probe table")?;
    let mut latency = latency_histogram()?;
    let started = Instant::now();
    for v in 0..FSYNC_COMMITS {
        let insert_started = Instant::now();
        sqlx::query("INSERT INTO fsync_probe (v) VALUES (?)")
            .bind(i32::try_from(v).unwrap_or(i32::MAX))
            .execute(&mut *conn)
            .await
            .context("inserting into fsync_probe")?;
        latency.saturating_record(micros(insert_started.elapsed()));
    }
    let elapsed = started.elapsed();
    let (flush_log_at_trx_commit, sync_binlog, log_bin): (i64, i64, i64) = sqlx::query_as(
        "SELECT CAST(@@innodb_flush_log_at_trx_commit AS SIGNED), \
         CAST(@@sync_binlog AS SIGNED), CAST(@@log_bin AS SIGNED)",
    )
    .fetch_one(&mut *conn)
    .await
    .context("reading the durability settings")?;
    Ok(FsyncResult { latency, elapsed, flush_log_at_trx_commit, sync_binlog, log_bin })
}

fn print_fsync(fsync: &FsyncResult) {
    let rate = FSYNC_COMMITS as f64 / fsync.elapsed.as_secs_f64();
    println!(
        "fsync: {rate:.0} commits/s over {FSYNC_COMMITS} sequential inserts, {}",
        percentiles(&fsync.latency, &[("p50", 0.5), ("p99", 0.99)], false)
    );
    println!(
        "  innodb_flush_log_at_trx_commit = {}, sync_binlog = {}, log_bin = {}",
        fsync.flush_log_at_trx_commit, fsync.sync_binlog, fsync.log_bin
    );
}
