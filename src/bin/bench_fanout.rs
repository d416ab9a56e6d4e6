//! Benchmark of the realtime fan-out over WebSocket (not a test).
//!
//! Starts `target/release/chat serve` as a separate process against the local
//! MariaDB (`127.0.0.1:3306`, user root, no password) and NATS
//! (`127.0.0.1:4222`), with a fresh database, JetStream stream and subject
//! prefix. Registers `--users` users over the API, creates `users / 10` GROUP
//! conversations of 10 members each, opens one WebSocket per user and then:
//!
//! * memory: the server's resident memory before and after the connections;
//! * phase A: 1,000 sends/s for `--seconds`, open loop, each send by a random
//!   member of a random conversation, so 10 deliveries per send;
//! * with `--signals`, phase A again with typing and presence load beside
//!   the sends: 5% of the users (`--churners`) hold no connection but connect
//!   and disconnect `--churn-per-second` times a second in all (each
//!   connection held 1 s), so their contacts get `presence` pushes, and
//!   another 5% send `typing` `started` every 3 s (`POST .../typing`); it
//!   prints the server CPU, memory and delivery p99 with and without;
//! * phase B: the `--rates` in turn for `--step-seconds` each, stopping at the
//!   first rate whose deliveries fall more than 10% behind or whose p99
//!   exceeds 1 s.
//!
//! A delivery's latency runs from the moment the send's 201 came back to the
//! moment the client read the `message:new` frame (0 when the frame came
//! first). At the end it prints the server's `chat_realtime_*` metrics and the
//! warnings of its log, closes the connections, stops the server (SIGTERM),
//! drops the database (unless `--keep-db`) and deletes the stream.
//!
//! Run it with (the `chat` binary must be built in the same profile)
//!
//! ```text
//! cargo build --release --bin chat
//! cargo run --release --bin bench_fanout
//! cargo run --release --bin bench_fanout -- --users 1000 --seconds 5   # a quick check
//! cargo run --release --bin bench_fanout -- --signals --rates ""      # typing and presence: their cost at 1,000 sends/s
//! BENCH_SERVER_LOG=info,chat::projections=debug cargo run --release --bin bench_fanout   # server log filter (default warn)
//! ```

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use futures::{StreamExt, TryStreamExt};
use hdrhistogram::Histogram;
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{json, Value};
use sqlx::migrate::MigrateDatabase;
use sqlx::MySql;
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use chat::domain::UserId;
use chat::http::{JwtKeys, SCOPE_ADMIN};

#[path = "shared/cpu.rs"]
mod cpu;
#[path = "shared/open_files.rs"]
mod open_files;
use cpu::cpu_ticks;
use open_files::raise_open_file_limit;

const NATS_URL: &str = "nats://127.0.0.1:4222";
const MYSQL_SERVER: &str = "mysql://root@127.0.0.1:3306";
const JWT_SECRET: &str = "bench-secret";
/// Members per GROUP conversation.
const GROUP_SIZE: usize = 10;
/// Setup requests in flight at once.
const SETUP_CONCURRENCY: usize = 32;
/// WebSocket handshakes in flight at once.
const CONNECT_CONCURRENCY: usize = 200;
/// Send requests in flight at most.
const MAX_IN_FLIGHT: usize = 256;
/// Sends per second of phase A.
const PHASE_A_RATE: u64 = 1_000;
/// Wait after the last send for late deliveries.
const STRAGGLER_WAIT: Duration = Duration::from_secs(2);
/// Phase B stops when fewer deliveries than this share of the expected arrive...
const MIN_DELIVERED_SHARE: f64 = 0.9;
/// ... or when the p99 delivery latency exceeds this.
const MAX_P99: Duration = Duration::from_secs(1);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the server may take to answer /readyz, and the read models to catch up.
const READY_TIMEOUT: Duration = Duration::from_secs(120);
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);
const CLOSE_TIMEOUT: Duration = Duration::from_secs(15);
/// Highest latency the histograms hold (ten minutes), in µs.
const MAX_LATENCY_US: u64 = 600_000_000;
/// Shards of the shared maps and histograms the client tasks write to.
const SHARDS: usize = 16;
/// Error descriptions kept per kind.
const ERROR_SAMPLES: usize = 5;
const ERROR_BODY_CHARS: usize = 300;
/// How often `/readyz` is polled for the lags during a phase.
const LAG_SAMPLE_EVERY: Duration = Duration::from_millis(500);
/// Server log lines printed at the end.
const LOG_LINES_SHOWN: usize = 15;

/// Benchmark of the realtime fan-out over WebSocket.
#[derive(Debug, Parser)]
#[command(name = "bench_fanout")]
struct Args {
    /// Users, each with one WebSocket; a multiple of 10 (one GROUP conversation per 10 users).
    #[arg(long, default_value_t = 10_000)]
    users: usize,
    /// Duration of phase A (1,000 sends/s), in seconds.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Send rates of phase B, tried in order.
    #[arg(long, value_delimiter = ',', default_value = "2000,4000,6000")]
    rates: Vec<u64>,
    /// Duration of each rate of phase B, in seconds.
    #[arg(long, default_value_t = 10)]
    step_seconds: u64,
    /// Keep the bench database at the end.
    #[arg(long)]
    keep_db: bool,
    /// Also run phase A with typing and presence load (see the module doc).
    #[arg(long)]
    signals: bool,
    /// Connects (each followed by a disconnect 1 s later) per second, in all, with `--signals`.
    #[arg(long, default_value_t = 200)]
    churn_per_second: u64,
}

/// Every `CHURN_EVERY`-th user holds no connection of its own: with
/// `--signals` it connects and disconnects, changing its presence.
const CHURN_EVERY: usize = 20;
/// How long a churning connection stays open.
const CHURN_HOLD: Duration = Duration::from_secs(1);
/// Every `TYPING_EVERY`-th user (offset by one from the churners) types every `TYPING_PERIOD`.
const TYPING_EVERY: usize = 20;
const TYPING_PERIOD: Duration = Duration::from_secs(3);

fn is_churner(user_index: usize) -> bool {
    user_index % CHURN_EVERY == 0
}

fn is_typist(user_index: usize) -> bool {
    user_index % TYPING_EVERY == 1
}

fn main() -> Result<()> {
    let args = Args::parse();
    validate(&args)?;
    raise_open_file_limit()?;
    tokio::runtime::Builder::new_multi_thread().enable_all().build().context("building the tokio runtime")?.block_on(run(args))
}

fn validate(args: &Args) -> Result<()> {
    if args.users < GROUP_SIZE || args.users % GROUP_SIZE != 0 {
        bail!("--users must be a positive multiple of {GROUP_SIZE}");
    }
    if args.users > i32::MAX as usize {
        bail!("--users must be at most {}", i32::MAX);
    }
    if args.signals && args.churn_per_second == 0 {
        bail!("--churn-per-second must be positive");
    }
    if args.seconds == 0 || args.step_seconds == 0 || args.rates.contains(&0) {
        bail!("--seconds, --step-seconds and every rate must be at least 1");
    }
    Ok(())
}

/// Starts the server, benchmarks, and cleans up even when something failed.
async fn run(args: Args) -> Result<()> {
    let names = Names::new();
    println!("database {}, stream {}, server log {}", names.database_url, names.stream, names.log_path.display());
    let (outcome, server) = match Server::start(&names).await {
        Ok(mut server) => {
            let outcome = match server.wait_ready().await {
                Ok(()) => bench(&args, &server).await,
                Err(error) => Err(error),
            };
            (outcome, Some(server))
        }
        Err(error) => (Err(error), None),
    };
    if let Err(error) = &outcome {
        eprintln!("benchmark failed: {error:#}");
    }
    let cleaned = clean_up(server, &names, args.keep_db).await;
    outcome.and(cleaned)
}

/// Fresh names of what the bench creates.
struct Names {
    database_url: String,
    stream: String,
    subject_prefix: String,
    log_path: PathBuf,
}

impl Names {
    fn new() -> Self {
        let id = Uuid::now_v7().simple().to_string();
        let suffix = &id[id.len() - 8..];
        Self {
            database_url: format!("{MYSQL_SERVER}/chat_bench_fanout_{suffix}"),
            stream: format!("BENCH_FANOUT_{suffix}"),
            subject_prefix: format!("bench_fanout_{suffix}.events"),
            log_path: std::env::temp_dir().join(format!("bench_fanout_{suffix}.log")),
        }
    }
}

// ---------------------------------------------------------------------------
// The server process

struct Server {
    child: Child,
    pid: u32,
    base_url: String,
    log_path: PathBuf,
}

impl Server {
    /// Spawns `chat serve` (next to this binary) on a free port, its output to the log file.
    async fn start(names: &Names) -> Result<Self> {
        let exe = std::env::current_exe().context("locating this binary")?.with_file_name("chat");
        if !exe.exists() {
            bail!("{} not found: build it with `cargo build --release --bin chat`", exe.display());
        }
        let port = free_port()?;
        let log = std::fs::File::create(&names.log_path).with_context(|| format!("creating {}", names.log_path.display()))?;
        let child = Command::new(&exe)
            .arg("serve")
            .env("DATABASE_URL", &names.database_url)
            .env("NATS_URL", NATS_URL)
            .env("CHAT_JWT_SECRET", JWT_SECRET)
            .env("CHAT_LISTEN", format!("127.0.0.1:{port}"))
            .env("CHAT_NATS_STREAM", &names.stream)
            .env("CHAT_NATS_SUBJECT_PREFIX", &names.subject_prefix)
            .env("CHAT_WS_QUEUE", "1024")
            // One administrator registers every user: no per-user rate limit here.
            .env("CHAT_RATE_LIMIT_PER_SECOND", "1000000")
            .env("CHAT_RATE_LIMIT_BURST", "1000000")
            .env("RUST_LOG", std::env::var("BENCH_SERVER_LOG").unwrap_or_else(|_| "warn".into()))
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone().context("duplicating the log file handle")?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", exe.display()))?;
        let pid = child.id().context("the server exited at once")?;
        println!("server: {} serve, pid {pid}, http://127.0.0.1:{port}", exe.display());
        Ok(Self { child, pid, base_url: format!("http://127.0.0.1:{port}"), log_path: names.log_path.clone() })
    }

    /// Waits until /readyz answers 200.
    async fn wait_ready(&mut self) -> Result<()> {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(2)).build().context("building the HTTP client")?;
        let started = Instant::now();
        let url = format!("{}/readyz", self.base_url);
        loop {
            if let Some(status) = self.child.try_wait().context("polling the server process")? {
                bail!("the server exited with {status} before it was ready; its log:\n{}", log_tail(&self.log_path, 20));
            }
            if let Ok(response) = http.get(&url).send().await {
                if response.status() == StatusCode::OK {
                    println!("server ready in {:.1} s", started.elapsed().as_secs_f64());
                    return Ok(());
                }
            }
            if started.elapsed() > READY_TIMEOUT {
                bail!("the server was not ready after {READY_TIMEOUT:?}; its log:\n{}", log_tail(&self.log_path, 20));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The server's resident memory (VmRSS), in KiB.
    fn rss_kib(&self) -> Result<u64> {
        rss_kib_of(&format!("/proc/{}/status", self.pid))
    }

    /// SIGTERM, then waits for the exit (kills it after `SHUTDOWN_TIMEOUT`).
    async fn stop(mut self) -> Result<()> {
        let started = Instant::now();
        let pid = libc::pid_t::try_from(self.pid).context("the server's pid does not fit pid_t")?;
        // SAFETY: kill only sends a signal to the process we spawned (not yet reaped, so the pid is ours).
        if unsafe { libc::kill(pid, libc::SIGTERM) } != 0 {
            return Err(std::io::Error::last_os_error()).context("sending SIGTERM to the server");
        }
        match tokio::time::timeout(SHUTDOWN_TIMEOUT, self.child.wait()).await {
            Ok(status) => {
                let status = status.context("waiting for the server")?;
                println!("server stopped in {:.1} s ({status})", started.elapsed().as_secs_f64());
                Ok(())
            }
            Err(_) => {
                self.child.kill().await.context("killing the server")?;
                bail!("the server did not stop within {SHUTDOWN_TIMEOUT:?} of SIGTERM; killed")
            }
        }
    }
}

/// A port nobody listens on right now.
fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr().context("reading the free port")?.port())
}

fn rss_kib_of(status_path: &str) -> Result<u64> {
    let status = std::fs::read_to_string(status_path).with_context(|| format!("reading {status_path}"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("no VmRSS in {status_path}"))
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn log_tail(path: &PathBuf, lines: usize) -> String {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(error) => format!("(cannot read {}: {error})", path.display()),
    }
}

/// Stops the server, prints its warnings, deletes the stream and drops the
/// database. Every step runs; the first failure is returned.
async fn clean_up(server: Option<Server>, names: &Names, keep_db: bool) -> Result<()> {
    let mut result = Ok(());
    if let Some(server) = server {
        result = result.and(server.stop().await);
    }
    print_server_log(&names.log_path);
    result = result.and(delete_stream(&names.stream).await);
    if keep_db {
        println!("kept database {}", names.database_url);
    } else {
        result = result.and(drop_database(&names.database_url).await);
    }
    if let Err(error) = &result {
        eprintln!("cleanup failed: {error:#}");
    }
    result
}

async fn delete_stream(name: &str) -> Result<()> {
    let client = async_nats::connect(NATS_URL).await.context("connecting to NATS")?;
    async_nats::jetstream::new(client).delete_stream(name).await.with_context(|| format!("deleting the JetStream stream {name}"))?;
    println!("deleted stream {name}");
    Ok(())
}

async fn drop_database(url: &str) -> Result<()> {
    if MySql::database_exists(url).await.with_context(|| format!("checking the database {url}"))? {
        MySql::drop_database(url).await.with_context(|| format!("dropping the database {url}"))?;
        println!("dropped database {url}");
    }
    Ok(())
}

/// The number of lines of the server's log and its warnings and errors.
fn print_server_log(path: &PathBuf) {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) => {
            println!("server log: cannot read {}: {error}", path.display());
            return;
        }
    };
    let notable: Vec<&str> = text.lines().filter(|line| line.contains(" WARN ") || line.contains(" ERROR ")).collect();
    println!("server log {}: {} lines, {} warnings/errors", path.display(), text.lines().count(), notable.len());
    for line in notable.iter().take(LOG_LINES_SHOWN) {
        println!("  {}", truncate(line));
    }
}

// ---------------------------------------------------------------------------
// The benchmark

async fn bench(args: &Args, server: &Server) -> Result<()> {
    let http = http_client()?;
    let started = Instant::now();
    let tokens = sign_tokens(args.users, ttl_seconds(args))?;
    register_users(&http, &server.base_url, &tokens).await?;
    let conversations = create_conversations(&http, &server.base_url, &tokens).await?;
    wait_until_projected(&http, &server.base_url).await?;
    println!(
        "setup: {} users, {} GROUP conversations of {GROUP_SIZE} in {:.1} s",
        args.users,
        conversations.len(),
        started.elapsed().as_secs_f64()
    );

    let tracker = Arc::new(Tracker::new(2 + args.rates.len())?);
    let rss_before = server.rss_kib()?;
    // With --signals the churners connect only during the signal phase (in both phases A they are offline).
    let skip = |i: usize| args.signals && is_churner(i);
    let clients = Clients::open(&server.base_url, &tokens, tracker.clone(), skip).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_after = server.rss_kib()?;
    print_memory(rss_before, rss_after, clients.connected);

    let plan = Arc::new(SendPlan::new(&server.base_url, &conversations, &tokens, &clients.alive)?);
    let context = PhaseContext {
        http: &http,
        server,
        plan,
        tracker: tracker.clone(),
        tokens: Arc::new(tokens.clone()),
        conversations: Arc::new(conversations.clone()),
    };
    let outcome = run_phases(args, &context).await;
    print_metrics(&http, &server.base_url).await;
    clients.close().await;
    tracker.print_connection_events();
    outcome
}

/// Tokens outlive the whole run.
fn ttl_seconds(args: &Args) -> i64 {
    let seconds = args.seconds + args.step_seconds * args.rates.len() as u64;
    3_600 + 2 * i64::try_from(seconds).unwrap_or(i64::MAX / 4)
}

fn http_client() -> Result<reqwest::Client> {
    reqwest::Client::builder()
        // Below the server's 10 s idle close (its header deadline), so a pooled
        // connection is never reused just as the server closes it.
        .pool_idle_timeout(Duration::from_secs(5))
        .pool_max_idle_per_host(MAX_IN_FLIGHT)
        .timeout(REQUEST_TIMEOUT)
        .tcp_nodelay(true)
        .build()
        .context("building the HTTP client")
}

/// Raw tokens (scope `chat:admin`) of users 1..=n: index i is user i + 1.
fn sign_tokens(users: usize, ttl: i64) -> Result<Vec<String>> {
    let keys = JwtKeys::new(JWT_SECRET);
    (1..=users)
        .map(|n| {
            let id = i64::try_from(n).ok().and_then(UserId::new).with_context(|| format!("{n} is not a valid user id"))?;
            keys.issue(id, Some(SCOPE_ADMIN), ttl).context("signing a token")
        })
        .collect()
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

// ---------------------------------------------------------------------------
// Setup over HTTP

/// PUT /users/{n} for every token's user, as user 1 (an admin).
async fn register_users(http: &reqwest::Client, base_url: &str, tokens: &[String]) -> Result<()> {
    let admin = bearer(&tokens[0]);
    futures::stream::iter(1..=tokens.len())
        .map(|n| {
            let url = format!("{base_url}/api/v1/users/{n}");
            let body = json!({"first_name": "User", "last_name": format!("N{n}"), "email": format!("user{n}@bench.example")});
            let admin = &admin;
            async move { call(http, Method::PUT, &url, admin, &body, StatusCode::OK).await }
        })
        .buffer_unordered(SETUP_CONCURRENCY)
        .try_collect::<Vec<_>>()
        .await
        .context("registering users")?;
    Ok(())
}

/// Conversation k has users 10k+1..=10k+10, created by the first; returns the ids in order.
async fn create_conversations(http: &reqwest::Client, base_url: &str, tokens: &[String]) -> Result<Vec<String>> {
    let url = format!("{base_url}/api/v1/conversations");
    futures::stream::iter(tokens.chunks(GROUP_SIZE).enumerate())
        .map(|(k, group)| {
            let url = &url;
            async move {
                let others: Vec<usize> = (2..=GROUP_SIZE).map(|m| k * GROUP_SIZE + m).collect();
                let body = json!({"type": "GROUP", "name": format!("fanout {k}"), "participant_ids": others});
                let answer = call(http, Method::POST, url, &bearer(&group[0]), &body, StatusCode::CREATED).await?;
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
        bail!("{method} {url} answered {status} (expected {expected}): {}", truncate(&text));
    }
    serde_json::from_str(&text).with_context(|| format!("{method} {url} answered non-JSON: {}", truncate(&text)))
}

/// Waits until everything committed is published and projected (so the hub
/// has nothing of the setup left to push).
async fn wait_until_projected(http: &reqwest::Client, base_url: &str) -> Result<()> {
    let url = format!("{base_url}/readyz");
    let started = Instant::now();
    loop {
        let readiness: Value = http.get(&url).send().await.context("GET /readyz")?.json().await.context("reading /readyz")?;
        let projection = readiness["projection_lag"]["events"].as_u64();
        let publication = readiness["publication_lag"]["events"].as_u64();
        if projection == Some(0) && publication == Some(0) {
            return Ok(());
        }
        if started.elapsed() > READY_TIMEOUT {
            bail!("the read models did not catch up within {READY_TIMEOUT:?}: {readiness}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn truncate(text: &str) -> String {
    text.chars().take(ERROR_BODY_CHARS).collect()
}

fn print_memory(before_kib: u64, after_kib: u64, connections: usize) {
    let growth = after_kib.saturating_sub(before_kib);
    let per_connection = growth as f64 / connections.max(1) as f64;
    println!(
        "server memory: VmRSS {:.1} MiB after setup, {:.1} MiB with {connections} connections: +{:.1} MiB, {per_connection:.1} KiB per connection",
        mib(before_kib),
        mib(after_kib),
        mib(growth)
    );
    if let Ok(own) = rss_kib_of("/proc/self/status") {
        println!("  (bench process VmRSS {:.1} MiB)", mib(own));
    }
}

// ---------------------------------------------------------------------------
// What the clients receive

/// Shared by the client tasks and the senders: when each message's 201 came
/// back, and the deliveries of each phase.
struct Tracker {
    answered_at: Vec<Mutex<HashMap<Uuid, Instant>>>,
    phases: Vec<PhaseDeliveries>,
    /// The origin of the phases' last-delivery times.
    origin: Instant,
    /// Frames other than `ready` and `message:new` of a known phase.
    other_frames: AtomicU64,
    /// Connections the server closed or that failed during the run.
    lost: AtomicU64,
    lost_samples: ErrorSamples,
}

/// The deliveries of one phase (recognised by the message content `fanout <phase> <n>`).
struct PhaseDeliveries {
    received: AtomicU64,
    /// Frames that arrived before their send's 201 (recorded as 0 latency).
    before_answer: AtomicU64,
    /// Nanoseconds from the tracker's origin to the last delivery.
    last_ns: AtomicU64,
    latency: Vec<Mutex<Histogram<u64>>>,
}

/// What a client reads of a frame.
#[derive(Deserialize)]
struct IncomingFrame<'a> {
    #[serde(borrow)]
    event: Cow<'a, str>,
    #[serde(borrow)]
    data: Option<IncomingData<'a>>,
}

#[derive(Deserialize)]
struct IncomingData<'a> {
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    content: Option<Cow<'a, str>>,
}

impl Tracker {
    fn new(phases: usize) -> Result<Self> {
        Ok(Self {
            answered_at: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            phases: (0..phases).map(|_| PhaseDeliveries::new()).collect::<Result<_>>()?,
            origin: Instant::now(),
            other_frames: AtomicU64::new(0),
            lost: AtomicU64::new(0),
            lost_samples: ErrorSamples::default(),
        })
    }

    fn answered(&self, message: Uuid, at: Instant) {
        lock(&self.answered_at[shard(message)]).insert(message, at);
    }

    /// Records one text frame read at `now`.
    fn on_frame(&self, text: &str, now: Instant) {
        let Ok(frame) = serde_json::from_str::<IncomingFrame>(text) else {
            self.other_frames.fetch_add(1, Ordering::Relaxed);
            return;
        };
        if frame.event == "ready" {
            return;
        }
        match frame.data.as_ref().and_then(message_of) {
            Some((message, phase)) if frame.event == "message:new" && phase < self.phases.len() => {
                self.record_delivery(message, phase, now)
            }
            _ => {
                self.other_frames.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn record_delivery(&self, message: Uuid, phase: usize, now: Instant) {
        let answered = lock(&self.answered_at[shard(message)]).get(&message).copied();
        let deliveries = &self.phases[phase];
        let latency = match answered {
            Some(at) => micros(now.saturating_duration_since(at)),
            None => {
                deliveries.before_answer.fetch_add(1, Ordering::Relaxed);
                0
            }
        };
        lock(&deliveries.latency[shard(message)]).saturating_record(latency);
        deliveries.received.fetch_add(1, Ordering::Relaxed);
        let since_origin = u64::try_from(now.saturating_duration_since(self.origin).as_nanos()).unwrap_or(u64::MAX);
        deliveries.last_ns.fetch_max(since_origin, Ordering::Relaxed);
    }

    fn on_lost(&self, description: String) {
        self.lost.fetch_add(1, Ordering::Relaxed);
        self.lost_samples.offer(&description);
    }

    /// Received count, early count, merged latencies and last delivery of a phase, now.
    fn snapshot(&self, phase: usize) -> Result<DeliverySnapshot> {
        let deliveries = &self.phases[phase];
        let mut latency = latency_histogram()?;
        for shard in &deliveries.latency {
            latency.add(&*lock(shard)).context("merging latency histograms")?;
        }
        Ok(DeliverySnapshot {
            received: deliveries.received.load(Ordering::Relaxed),
            before_answer: deliveries.before_answer.load(Ordering::Relaxed),
            last: self.origin + Duration::from_nanos(deliveries.last_ns.load(Ordering::Relaxed)),
            latency,
        })
    }

    fn print_connection_events(&self) {
        let other = self.other_frames.load(Ordering::Relaxed);
        let lost = self.lost.load(Ordering::Relaxed);
        println!("clients: {other} frames other than ready/message:new, {lost} connections lost before the end");
        self.lost_samples.print("lost");
    }
}

impl PhaseDeliveries {
    fn new() -> Result<Self> {
        Ok(Self {
            received: AtomicU64::new(0),
            before_answer: AtomicU64::new(0),
            last_ns: AtomicU64::new(0),
            latency: (0..SHARDS).map(|_| latency_histogram().map(Mutex::new)).collect::<Result<_>>()?,
        })
    }
}

struct DeliverySnapshot {
    received: u64,
    before_answer: u64,
    last: Instant,
    latency: Histogram<u64>,
}

/// The message id and phase of a `message:new` frame's data.
fn message_of(data: &IncomingData) -> Option<(Uuid, usize)> {
    let id = data.id.as_deref()?.parse().ok()?;
    let phase = data.content.as_deref()?.strip_prefix("fanout ")?.split(' ').next()?.parse().ok()?;
    Some((id, phase))
}

fn shard(message: Uuid) -> usize {
    (message.as_u128() % SHARDS as u128) as usize
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn latency_histogram() -> Result<Histogram<u64>> {
    Histogram::new_with_max(MAX_LATENCY_US, 3).context("creating a latency histogram")
}

fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

// ---------------------------------------------------------------------------
// The WebSocket clients

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

struct Clients {
    tasks: Vec<JoinHandle<()>>,
    stop: CancellationToken,
    connected: usize,
    /// Per user (index i is user i + 1): its connection became ready.
    alive: Vec<bool>,
}

impl Clients {
    /// One connection per user, `CONNECT_CONCURRENCY` handshakes at a time,
    /// each ready (its `ready` frame read) before its listener starts.
    async fn open(base_url: &str, tokens: &[String], tracker: Arc<Tracker>, skip: impl Fn(usize) -> bool) -> Result<Self> {
        let ws_base = base_url.replacen("http://", "ws://", 1);
        let stop = CancellationToken::new();
        let started = Instant::now();
        let failures = ErrorSamples::default();
        let mut alive = vec![false; tokens.len()];
        let mut tasks = Vec::with_capacity(tokens.len());
        let wanted = tokens.iter().enumerate().filter(|(i, _)| !skip(*i)).count();
        let mut opened = futures::stream::iter(tokens.iter().enumerate().filter(|(i, _)| !skip(*i)))
            .map(|(i, token)| {
                let url = format!("{ws_base}/api/v1/ws?token={token}");
                async move { (i, connect(&url).await) }
            })
            .buffer_unordered(CONNECT_CONCURRENCY);
        while let Some((i, result)) = opened.next().await {
            match result {
                Ok(socket) => {
                    alive[i] = true;
                    tasks.push(tokio::spawn(listen(socket, tracker.clone(), stop.clone())));
                }
                Err(error) => failures.offer(&format!("user {}: {error:#}", i + 1)),
            }
        }
        let connected = tasks.len();
        println!("connections: {connected} of {wanted} ready in {:.1} s ({} failed)", started.elapsed().as_secs_f64(), wanted - connected);
        failures.print("connect");
        if connected == 0 {
            bail!("no WebSocket connection could be opened");
        }
        Ok(Self { tasks, stop, connected, alive })
    }

    /// Asks every listener to close its connection and waits for them.
    async fn close(self) {
        let started = Instant::now();
        self.stop.cancel();
        let all = futures::future::join_all(self.tasks);
        if tokio::time::timeout(CLOSE_TIMEOUT, all).await.is_err() {
            println!("connections: not all closed within {CLOSE_TIMEOUT:?}");
        } else {
            println!("connections: {} closed in {:.1} s", self.connected, started.elapsed().as_secs_f64());
        }
    }
}

/// Opens a connection and reads its first frame, which must be `ready`.
async fn connect(url: &str) -> Result<Socket> {
    let config = WebSocketConfig::default().read_buffer_size(4 * 1024).write_buffer_size(0).max_write_buffer_size(64 * 1024);
    let handshake = tokio_tungstenite::connect_async_with_config(url, Some(config), true);
    let (mut socket, _) = tokio::time::timeout(CONNECT_TIMEOUT, handshake).await.context("handshake timed out")?.context("handshake")?;
    let first = tokio::time::timeout(CONNECT_TIMEOUT, socket.next()).await.context("no ready frame in time")?;
    match first {
        Some(Ok(Message::Text(text))) if is_ready(text.as_str()) => Ok(socket),
        Some(Ok(Message::Text(text))) => bail!("the first frame is not ready: {}", truncate(text.as_str())),
        Some(Ok(other)) => bail!("the first message is not a text frame: {other:?}"),
        Some(Err(error)) => Err(error).context("reading the ready frame"),
        None => bail!("closed before the ready frame"),
    }
}

fn is_ready(text: &str) -> bool {
    serde_json::from_str::<IncomingFrame>(text).is_ok_and(|frame| frame.event == "ready")
}

/// Reads frames until `stop` (then closes) or until the server closes.
async fn listen(mut socket: Socket, tracker: Arc<Tracker>, stop: CancellationToken) {
    loop {
        tokio::select! {
            message = socket.next() => match message {
                Some(Ok(Message::Text(text))) => tracker.on_frame(text.as_str(), Instant::now()),
                Some(Ok(Message::Close(frame))) => {
                    tracker.on_lost(format!("closed by the server: {frame:?}"));
                    return;
                }
                Some(Ok(_)) => {}
                Some(Err(error)) => {
                    tracker.on_lost(format!("read error: {error}"));
                    return;
                }
                None => {
                    tracker.on_lost("stream ended".to_owned());
                    return;
                }
            },
            _ = stop.cancelled() => break,
        }
    }
    if socket.close(None).await.is_ok() {
        // Read until the server's close reply (or the end), briefly.
        let drain = async { while let Some(Ok(_)) = socket.next().await {} };
        let _ = tokio::time::timeout(Duration::from_secs(5), drain).await;
    }
}

// ---------------------------------------------------------------------------
// Sending

/// Who may send where: one entry per conversation.
struct SendPlan {
    /// Per conversation: its messages URL.
    urls: Vec<String>,
    /// Per user: the `Authorization` header value.
    bearers: Vec<String>,
    /// Per conversation: members with a live connection (the deliveries a send should make).
    connected_members: Vec<u64>,
}

impl SendPlan {
    fn new(base_url: &str, conversations: &[String], tokens: &[String], alive: &[bool]) -> Result<Self> {
        if conversations.len() * GROUP_SIZE != tokens.len() {
            bail!("{} conversations for {} users", conversations.len(), tokens.len());
        }
        Ok(Self {
            urls: conversations.iter().map(|c| format!("{base_url}/api/v1/conversations/{c}/messages")).collect(),
            bearers: tokens.iter().map(|t| bearer(t)).collect(),
            connected_members: alive.chunks(GROUP_SIZE).map(|group| group.iter().filter(|a| **a).count() as u64).collect(),
        })
    }
}

/// A small PRNG (SplitMix64) for picking senders.
struct SplitMix64(u64);

impl SplitMix64 {
    fn seeded() -> Self {
        Self(Uuid::now_v7().as_u128() as u64)
    }

    fn below(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z % n as u64) as usize
    }
}

/// Counters of one phase's sends, shared by its send tasks.
#[derive(Default)]
struct SendCounters {
    sent: AtomicU64,
    errors: AtomicU64,
    /// Deliveries the successful sends should make.
    expected: AtomicU64,
    samples: ErrorSamples,
}

/// Numbers the messages across phases.
static MESSAGE_NUMBER: AtomicU64 = AtomicU64::new(0);

/// One send; on 201 records when the answer came back.
async fn send(http: &reqwest::Client, plan: &SendPlan, conversation: usize, member: usize, phase: usize, tracker: &Tracker) -> Result<()> {
    let n = MESSAGE_NUMBER.fetch_add(1, Ordering::Relaxed);
    let user = conversation * GROUP_SIZE + member;
    let response = http
        .post(&plan.urls[conversation])
        .header(reqwest::header::AUTHORIZATION, &plan.bearers[user])
        .json(&json!({"content": format!("fanout {phase} {n}")}))
        .send()
        .await
        .context("transport error")?;
    let status = response.status();
    let body = response.text().await.with_context(|| format!("{status}, unreadable answer"))?;
    let answered = Instant::now();
    if status != StatusCode::CREATED {
        bail!("{status}: {}", truncate(&body));
    }
    let answer: Value = serde_json::from_str(&body).with_context(|| format!("non-JSON answer: {}", truncate(&body)))?;
    let message: Uuid = answer["message_id"].as_str().and_then(|id| id.parse().ok()).with_context(|| format!("no message_id in {body}"))?;
    tracker.answered(message, answered);
    Ok(())
}

// ---------------------------------------------------------------------------
// The phases

/// The figures of one phase.
struct PhaseReport {
    /// The phase's index in the tracker (its messages carry it).
    phase: usize,
    label: String,
    rate: u64,
    seconds: u64,
    sent: u64,
    errors: u64,
    delayed_by_limit: u64,
    /// From the first scheduled send to the last answer.
    send_elapsed: Duration,
    expected: u64,
    deliveries: DeliverySnapshot,
    /// From the first scheduled send to the last delivery.
    delivery_elapsed: Duration,
    samples: ErrorSamples,
    /// The worst lags during the sending.
    lag: Option<Lags>,
    cpu: Option<CpuUsage>,
    server_rss_kib: Option<u64>,
}

impl PhaseReport {
    fn delivered_share(&self) -> f64 {
        self.deliveries.received as f64 / self.expected.max(1) as f64
    }

    fn deliveries_per_second(&self) -> f64 {
        self.deliveries.received as f64 / self.delivery_elapsed.as_secs_f64().max(1e-9)
    }

    fn p99(&self) -> Duration {
        Duration::from_micros(self.deliveries.latency.value_at_quantile(0.99))
    }

    /// Deliveries kept up and p99 stayed within bounds.
    fn kept_up(&self) -> bool {
        self.delivered_share() >= MIN_DELIVERED_SHARE && self.p99() <= MAX_P99
    }

    fn print(&self) {
        let sends_per_second = self.sent as f64 / self.send_elapsed.as_secs_f64().max(1e-9);
        println!(
            "{}: {sends_per_second:.0} sends/s of {} targeted over {} s ({} sent, {} errors); {:.0} deliveries/s; deliveries {} expected, {} received ({:.2}%)",
            self.label,
            self.rate,
            self.seconds,
            self.sent,
            self.errors,
            self.deliveries_per_second(),
            self.expected,
            self.deliveries.received,
            100.0 * self.delivered_share()
        );
        println!("  delivery latency (from the 201): {}", percentiles(&self.deliveries.latency));
        if self.deliveries.before_answer > 0 {
            println!("  {} frames arrived before their send's 201 (counted as 0)", self.deliveries.before_answer);
        }
        if self.delayed_by_limit > 0 {
            println!(
                "  {} sends waited for one of the {MAX_IN_FLIGHT} in-flight slots (server behind the schedule)",
                self.delayed_by_limit
            );
        }
        self.samples.print("send");
        self.print_server_side();
    }

    fn print_server_side(&self) {
        if let Some(lag) = &self.lag {
            println!(
                "  server lags while sending (worst of {} samples): projection {} events / {:.2} s, publication {} events / {:.2} s",
                lag.samples, lag.projection_events, lag.projection_seconds, lag.publication_events, lag.publication_seconds
            );
        }
        if let Some(cpu) = &self.cpu {
            println!("  CPU over the phase: server {:.0}%, bench {:.0}% (of one core)", cpu.server, cpu.bench);
        }
        if let Some(kib) = self.server_rss_kib {
            println!("  server VmRSS {:.1} MiB", mib(kib));
        }
    }
}

/// "p50 4.1 ms, p90 7.0 ms, p99 12.3 ms, max 40.2 ms".
fn percentiles(histogram: &Histogram<u64>) -> String {
    let ms = |us: u64| us as f64 / 1000.0;
    let mut parts: Vec<String> = [("p50", 0.5), ("p90", 0.9), ("p99", 0.99)]
        .iter()
        .map(|(name, q)| format!("{name} {:.1} ms", ms(histogram.value_at_quantile(*q))))
        .collect();
    parts.push(format!("max {:.1} ms", ms(histogram.max())));
    parts.join(", ")
}

/// What every phase uses.
struct PhaseContext<'a> {
    http: &'a reqwest::Client,
    server: &'a Server,
    plan: Arc<SendPlan>,
    tracker: Arc<Tracker>,
    tokens: Arc<Vec<String>>,
    conversations: Arc<Vec<String>>,
}

async fn run_phases(args: &Args, context: &PhaseContext<'_>) -> Result<()> {
    let mut reports = Vec::new();
    let mut signal_phase = None;
    let phase_a = run_phase(context, 0, "phase A", PHASE_A_RATE, args.seconds).await?;
    phase_a.print();
    if args.signals {
        wait_until_projected(context.http, &context.server.base_url).await?;
        let load = SignalLoad::start(context, args.churn_per_second);
        let with_signals = run_phase(context, 1, "phase A with typing and presence", PHASE_A_RATE, args.seconds).await?;
        let load = load.stop().await;
        with_signals.print();
        load.print(args.seconds);
        print_signal_cost(&phase_a, &with_signals);
        signal_phase = Some(with_signals);
    }
    reports.push(phase_a);
    for (i, rate) in args.rates.iter().enumerate() {
        wait_until_projected(context.http, &context.server.base_url).await?;
        let report = run_phase(context, i + 2, &format!("phase B {rate}/s"), *rate, args.step_seconds).await?;
        report.print();
        let kept_up = report.kept_up();
        reports.push(report);
        if !kept_up {
            println!("  stopping phase B: deliveries more than 10% behind or p99 over {} ms", MAX_P99.as_millis());
            break;
        }
    }
    print_best(&reports[1..]);
    // Whatever is still in the pipeline: late, or missing for good?
    wait_until_projected(context.http, &context.server.base_url).await?;
    tokio::time::sleep(STRAGGLER_WAIT).await;
    reports.extend(signal_phase);
    print_late_deliveries(&reports, &context.tracker);
    Ok(())
}

/// Sends at `rate` for `seconds` (open loop), then waits for stragglers.
async fn run_phase(context: &PhaseContext<'_>, phase: usize, label: &str, rate: u64, seconds: u64) -> Result<PhaseReport> {
    let cpu_before = CpuTimes::now(context.server.pid);
    let sampler = LagSampler::start(context.http, &context.server.base_url);
    let started = Instant::now();
    let (counters, delayed_by_limit) = schedule_sends(context, phase, rate, seconds).await?;
    let send_elapsed = started.elapsed();
    let lag = sampler.stop().await;
    tokio::time::sleep(STRAGGLER_WAIT).await;
    let deliveries = context.tracker.snapshot(phase)?;
    let delivery_elapsed = deliveries.last.saturating_duration_since(started);
    Ok(PhaseReport {
        phase,
        label: label.to_owned(),
        rate,
        seconds,
        sent: counters.sent.load(Ordering::Relaxed),
        errors: counters.errors.load(Ordering::Relaxed),
        delayed_by_limit,
        send_elapsed,
        expected: counters.expected.load(Ordering::Relaxed),
        deliveries,
        delivery_elapsed,
        samples: counters.samples.clone(),
        lag,
        cpu: cpu_before.and_then(|before| before.usage_since(context.server.pid)),
        server_rss_kib: context.server.rss_kib().ok(),
    })
}

/// Issues `rate * seconds` sends on the open-loop schedule, by random members
/// of random conversations; returns once every one is answered, with the
/// number of sends that had to wait for an in-flight slot.
async fn schedule_sends(context: &PhaseContext<'_>, phase: usize, rate: u64, seconds: u64) -> Result<(Arc<SendCounters>, u64)> {
    let counters = Arc::new(SendCounters::default());
    let limit = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let mut random = SplitMix64::seeded();
    let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
    ticks.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let mut delayed_by_limit = 0;
    for _ in 0..rate * seconds {
        ticks.tick().await;
        let permit = match limit.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                delayed_by_limit += 1;
                limit.clone().acquire_owned().await.context("the in-flight limit closed")?
            }
        };
        let conversation = random.below(context.plan.urls.len());
        let member = random.below(GROUP_SIZE);
        let (http, plan, tracker, counters) = (context.http.clone(), context.plan.clone(), context.tracker.clone(), counters.clone());
        tokio::spawn(async move {
            match send(&http, &plan, conversation, member, phase, &tracker).await {
                Ok(()) => {
                    counters.sent.fetch_add(1, Ordering::Relaxed);
                    counters.expected.fetch_add(plan.connected_members[conversation], Ordering::Relaxed);
                }
                Err(error) => {
                    counters.errors.fetch_add(1, Ordering::Relaxed);
                    counters.samples.offer(&format!("{error:#}"));
                }
            }
            drop(permit);
        });
    }
    // Every permit back: every send answered.
    let all = u32::try_from(MAX_IN_FLIGHT).context("MAX_IN_FLIGHT does not fit u32")?;
    drop(limit.acquire_many(all).await.context("the in-flight limit closed")?);
    Ok((counters, delayed_by_limit))
}

// ---------------------------------------------------------------------------
// Server-side figures of a phase

/// The worst lags `/readyz` reported during a phase's sending.
#[derive(Debug, Default, Clone, Copy)]
struct Lags {
    samples: u64,
    projection_events: u64,
    projection_seconds: f64,
    publication_events: u64,
    publication_seconds: f64,
}

impl Lags {
    fn add(&mut self, readiness: &Value) {
        let lag = |name: &str, field: &str| readiness[name][field].clone();
        self.samples += 1;
        self.projection_events = self.projection_events.max(lag("projection_lag", "events").as_u64().unwrap_or(0));
        self.projection_seconds = self.projection_seconds.max(lag("projection_lag", "seconds").as_f64().unwrap_or(0.0));
        self.publication_events = self.publication_events.max(lag("publication_lag", "events").as_u64().unwrap_or(0));
        self.publication_seconds = self.publication_seconds.max(lag("publication_lag", "seconds").as_f64().unwrap_or(0.0));
    }
}

/// Polls `/readyz` every `LAG_SAMPLE_EVERY` until stopped.
struct LagSampler {
    stop: CancellationToken,
    task: JoinHandle<Lags>,
}

impl LagSampler {
    fn start(http: &reqwest::Client, base_url: &str) -> Self {
        let stop = CancellationToken::new();
        let (http, url, until) = (http.clone(), format!("{base_url}/readyz"), stop.clone());
        let task = tokio::spawn(async move {
            let mut lags = Lags::default();
            while !until.is_cancelled() {
                if let Ok(response) = http.get(&url).send().await {
                    if let Ok(readiness) = response.json::<Value>().await {
                        lags.add(&readiness);
                    }
                }
                tokio::select! {
                    _ = tokio::time::sleep(LAG_SAMPLE_EVERY) => {}
                    _ = until.cancelled() => {}
                }
            }
            lags
        });
        Self { stop, task }
    }

    async fn stop(self) -> Option<Lags> {
        self.stop.cancel();
        self.task.await.ok()
    }
}

/// CPU time (user + system) of a process and of this one, with the wall clock.
struct CpuTimes {
    server_ticks: u64,
    own_ticks: u64,
    at: Instant,
}

/// CPU use over a phase, in % of one core.
struct CpuUsage {
    server: f64,
    bench: f64,
}

impl CpuTimes {
    fn now(server_pid: u32) -> Option<Self> {
        Some(Self {
            server_ticks: cpu_ticks(&format!("/proc/{server_pid}/stat"))?,
            own_ticks: cpu_ticks("/proc/self/stat")?,
            at: Instant::now(),
        })
    }

    fn usage_since(&self, server_pid: u32) -> Option<CpuUsage> {
        let now = Self::now(server_pid)?;
        let wall = now.at.duration_since(self.at).as_secs_f64() * cpu::ticks_per_second();
        let percent = |after: u64, before: u64| 100.0 * after.saturating_sub(before) as f64 / wall.max(1e-9);
        Some(CpuUsage { server: percent(now.server_ticks, self.server_ticks), bench: percent(now.own_ticks, self.own_ticks) })
    }
}

/// The highest deliveries/s of phase B among the rates that kept up.
fn print_best(phase_b: &[PhaseReport]) {
    let best = phase_b.iter().filter(|r| r.kept_up()).max_by(|a, b| a.deliveries_per_second().total_cmp(&b.deliveries_per_second()));
    match best {
        Some(report) => println!(
            "best: {:.0} deliveries/s ({}), p99 {:.1} ms; target 50000 deliveries/s {}",
            report.deliveries_per_second(),
            report.label,
            report.p99().as_secs_f64() * 1000.0,
            if report.deliveries_per_second() >= 50_000.0 { "met" } else { "NOT met" }
        ),
        None => println!("best: no rate of phase B kept up (≥ 90% delivered and p99 ≤ 1 s); target 50000 deliveries/s NOT met"),
    }
}

/// Deliveries of each phase in the end, against those of its report.
fn print_late_deliveries(reports: &[PhaseReport], tracker: &Tracker) {
    println!("after the read models caught up and {} s more:", STRAGGLER_WAIT.as_secs());
    for report in reports {
        let now = tracker.phases[report.phase].received.load(Ordering::Relaxed);
        println!(
            "  {}: {} of {} expected deliveries received ({} after its report), {} missing",
            report.label,
            now,
            report.expected,
            now.saturating_sub(report.deliveries.received),
            report.expected.saturating_sub(now)
        );
    }
}

/// The server's `chat_realtime_*` metrics.
async fn print_metrics(http: &reqwest::Client, base_url: &str) {
    let text = match http.get(format!("{base_url}/metrics")).send().await {
        Ok(response) => response.text().await,
        Err(error) => Err(error),
    };
    match text {
        Ok(text) => {
            println!("server metrics:");
            let shown = [
                "chat_realtime_",
                "chat_presence_",
                "chat_typing_",
                "chat_publication_delay",
                "chat_projection_delay",
                "chat_projection_batch",
            ];
            for line in text.lines().filter(|line| shown.iter().any(|prefix| line.starts_with(prefix))) {
                println!("  {line}");
            }
        }
        Err(error) => println!("server metrics not available: {error}"),
    }
}

// ---------------------------------------------------------------------------
// Typing and presence load

/// Churning connections and typing signals beside the sends.
struct SignalLoad {
    stop: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
    counters: Arc<SignalCounters>,
}

#[derive(Default)]
struct SignalCounters {
    connects: AtomicU64,
    connect_errors: AtomicU64,
    typing: AtomicU64,
    typing_errors: AtomicU64,
    samples: ErrorSamples,
}

impl SignalLoad {
    fn start(context: &PhaseContext<'_>, churn_per_second: u64) -> Self {
        let stop = CancellationToken::new();
        let counters = Arc::new(SignalCounters::default());
        let users = context.tokens.len();
        let churners: Vec<usize> = (0..users).filter(|i| is_churner(*i)).collect();
        let typists: Vec<usize> = (0..users).filter(|i| is_typist(*i)).collect();
        let ws_base = context.server.base_url.replacen("http://", "ws://", 1);
        let churn = tokio::spawn(churn(ws_base, context.tokens.clone(), churners, churn_per_second, counters.clone(), stop.clone()));
        let typing = tokio::spawn(type_along(
            context.http.clone(),
            context.server.base_url.clone(),
            context.tokens.clone(),
            context.conversations.clone(),
            typists,
            counters.clone(),
            stop.clone(),
        ));
        Self { stop, tasks: vec![churn, typing], counters }
    }

    async fn stop(self) -> Arc<SignalCounters> {
        self.stop.cancel();
        for task in self.tasks {
            let _ = task.await;
        }
        self.counters
    }
}

impl SignalCounters {
    fn print(&self, seconds: u64) {
        let per_second = |counter: &AtomicU64| counter.load(Ordering::Relaxed) as f64 / seconds.max(1) as f64;
        println!(
            "  signal load: {:.0} connects/s (each closed {} s later; {} failed), {:.0} typing signals/s ({} failed)",
            per_second(&self.connects),
            CHURN_HOLD.as_secs(),
            self.connect_errors.load(Ordering::Relaxed),
            per_second(&self.typing),
            self.typing_errors.load(Ordering::Relaxed)
        );
        self.samples.print("signal");
    }
}

/// Connects a random churner `per_second` times a second; each connection
/// reads (and drops) its frames for `CHURN_HOLD`, then closes.
async fn churn(
    ws_base: String,
    tokens: Arc<Vec<String>>,
    churners: Vec<usize>,
    per_second: u64,
    counters: Arc<SignalCounters>,
    stop: CancellationToken,
) {
    if churners.is_empty() {
        return;
    }
    let mut random = SplitMix64::seeded();
    let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / per_second as f64));
    ticks.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let open = Arc::new(Semaphore::new(CONNECT_CONCURRENCY * 4));
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = stop.cancelled() => break,
        }
        let Ok(permit) = open.clone().try_acquire_owned() else { continue };
        let user = churners[random.below(churners.len())];
        let url = format!("{ws_base}/api/v1/ws?token={}", tokens[user]);
        let counters = counters.clone();
        tokio::spawn(async move {
            let _permit = permit;
            match connect(&url).await {
                Ok(mut socket) => {
                    counters.connects.fetch_add(1, Ordering::Relaxed);
                    let drain = async { while let Some(Ok(_)) = socket.next().await {} };
                    let _ = tokio::time::timeout(CHURN_HOLD, drain).await;
                    let _ = socket.close(None).await;
                }
                Err(error) => {
                    counters.connect_errors.fetch_add(1, Ordering::Relaxed);
                    counters.samples.offer(&format!("churn connect: {error:#}"));
                }
            }
        });
    }
}

/// Each typist says `started` in its conversation every `TYPING_PERIOD`, spread evenly.
async fn type_along(
    http: reqwest::Client,
    base_url: String,
    tokens: Arc<Vec<String>>,
    conversations: Arc<Vec<String>>,
    typists: Vec<usize>,
    counters: Arc<SignalCounters>,
    stop: CancellationToken,
) {
    if typists.is_empty() {
        return;
    }
    let mut ticks = tokio::time::interval(TYPING_PERIOD / u32::try_from(typists.len()).unwrap_or(u32::MAX));
    ticks.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    for user in typists.iter().cycle() {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = stop.cancelled() => return,
        }
        let Ok(permit) = in_flight.clone().try_acquire_owned() else { continue };
        let url = format!("{base_url}/api/v1/conversations/{}/typing", conversations[user / GROUP_SIZE]);
        let (http, bearer, counters) = (http.clone(), bearer(&tokens[*user]), counters.clone());
        tokio::spawn(async move {
            let _permit = permit;
            let answer = http.post(url).header("authorization", bearer).json(&json!({"state": "started"})).send().await;
            match answer {
                Ok(answer) if answer.status() == StatusCode::NO_CONTENT => {
                    counters.typing.fetch_add(1, Ordering::Relaxed);
                }
                Ok(answer) => {
                    counters.typing_errors.fetch_add(1, Ordering::Relaxed);
                    counters.samples.offer(&format!("typing: {}", answer.status()));
                }
                Err(error) => {
                    counters.typing_errors.fetch_add(1, Ordering::Relaxed);
                    counters.samples.offer(&format!("typing: {error}"));
                }
            }
        });
    }
}

/// What typing and presence cost: the two phases A side by side.
fn print_signal_cost(without: &PhaseReport, with: &PhaseReport) {
    let (Some(a), Some(b)) = (&without.cpu, &with.cpu) else { return };
    println!(
        "typing and presence: server CPU {:.0}% -> {:.0}% of a core ({:+.1}%), delivery p99 {:.1} -> {:.1} ms, server VmRSS {} -> {} MiB",
        a.server,
        b.server,
        100.0 * (b.server - a.server) / a.server.max(1e-9),
        without.p99().as_secs_f64() * 1000.0,
        with.p99().as_secs_f64() * 1000.0,
        without.server_rss_kib.map_or("?".into(), |k| format!("{:.1}", mib(k))),
        with.server_rss_kib.map_or("?".into(), |k| format!("{:.1}", mib(k))),
    );
}

// ---------------------------------------------------------------------------
// Error samples

/// The first few error descriptions of a kind, shared by tasks.
#[derive(Clone, Default)]
struct ErrorSamples(Arc<Mutex<Vec<String>>>);

impl ErrorSamples {
    fn offer(&self, description: &str) {
        let mut samples = lock(&self.0);
        if samples.len() < ERROR_SAMPLES {
            samples.push(truncate(description));
        }
    }

    fn print(&self, kind: &str) {
        for sample in lock(&self.0).iter() {
            println!("  {kind} error: {sample}");
        }
    }
}
