//! Soak run (not a test): a steady mixed load on a real `chat serve` process
//! for a long time, optionally killing it (SIGKILL) and restarting it every N
//! minutes, then an audit of the event log against every acknowledged command.
//!
//! It starts `chat serve` (the binary next to this one) against the local
//! MariaDB (`127.0.0.1:3306`, root, no password) and NATS (`127.0.0.1:4222`)
//! with a fresh database, JetStream stream and subject prefix; registers
//! `--users` users and `--groups` GROUP conversations of 10; connects
//! `--subscribers` WebSocket subscribers (users 1..=N), each of which
//! reconnects with `after_position` = the last position it saw whenever its
//! connection ends; and then sends `--rate` commands per second (open loop):
//! 80% messages, 6% edits of one's own messages, 6% reactions, 6% read marks,
//! 2% new GROUP conversations. Every command carries its own
//! `Idempotency-Key`; an unanswered or failed attempt (connection refused or
//! reset, 5xx, 429, 409 `idempotency_in_progress`) is retried with the same key
//! until it is answered, as a real client would.
//!
//! At the end it waits for the publisher and the projector, reads the whole
//! event log and prints: commands accepted, lost (acknowledged but not in the
//! log at the answered position), duplicated (a key whose effect was applied
//! by more than one request), latency percentiles of the answered attempts,
//! the server's peak resident memory (VmHWM of every server process, and the
//! sampled VmRSS), the JetStream message count against the log, and the events
//! delivered to the subscribers against those expected. It exits non-zero if
//! anything was lost, duplicated, published other than once or delivered other
//! than once. It stops the server, deletes the stream and drops the database
//! (unless `--keep-db`).
//!
//! ```text
//! cargo build --release --bin chat
//! cargo run --release --bin soak -- --minutes 30
//! cargo run --release --bin soak -- --minutes 30 --kill-every-minutes 5 --rate 300
//! SOAK_SERVER_LOG=info cargo run --release --bin soak -- --minutes 2   # server log filter (default warn)
//! ```

use std::collections::{HashMap, VecDeque};
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
use serde_json::{json, Value};
use sqlx::migrate::MigrateDatabase;
use sqlx::{MySql, MySqlPool};
use tokio::process::{Child, Command};
use tokio::sync::Semaphore;
use tokio::time::MissedTickBehavior;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use chat::domain::UserId;
use chat::http::{JwtKeys, SCOPE_ADMIN};

const NATS_URL: &str = "nats://127.0.0.1:4222";
const MYSQL_SERVER: &str = "mysql://root@127.0.0.1:3306";
const JWT_SECRET: &str = "soak-secret";
/// Members of every GROUP conversation.
const GROUP_SIZE: usize = 10;
/// Setup requests in flight at once.
const SETUP_CONCURRENCY: usize = 16;
/// First attempts in flight at most (a retrying command does not count).
const MAX_IN_FLIGHT: usize = 256;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);
/// Pause between two attempts of one command.
const RETRY_PAUSE: Duration = Duration::from_millis(200);
/// A request reserved by a killed process keeps its `Idempotency-Key` for 30 s,
/// so after a kill clients keep retrying at least this long.
const RETRY_AFTER_KILL: Duration = Duration::from_secs(45);
/// Without a kill, how long unanswered commands are retried after the load.
const RETRY_AFTER_LOAD: Duration = Duration::from_secs(20);
const READY_TIMEOUT: Duration = Duration::from_secs(120);
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the publisher, the projector and the subscribers get to catch up at the end.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(180);
const PROGRESS_EVERY: Duration = Duration::from_secs(60);
/// Messages remembered per conversation, to edit, react to and mark read.
const RECENT_MESSAGES: usize = 32;
/// Event log rows read per query by the audit.
const AUDIT_PAGE: u64 = 10_000;
const MAX_LATENCY_US: u64 = 600_000_000;
const SAMPLES_KEPT: usize = 5;
const SAMPLE_CHARS: usize = 300;
/// Emoji of reactions, percent-encoded for the path.
const EMOJI: [&str; 4] = ["%F0%9F%91%8D", "%E2%9D%A4", "%F0%9F%8E%89", "%F0%9F%98%82"];

/// Soak run of a real `chat serve` process under a steady mixed load.
#[derive(Debug, Parser)]
#[command(name = "soak")]
struct Args {
    /// How long the load runs, in minutes.
    #[arg(long, default_value_t = 30.0)]
    minutes: f64,
    /// Commands per second.
    #[arg(long, default_value_t = 200)]
    rate: u64,
    /// Kill the server (SIGKILL) and restart it every this many minutes; 0 never.
    #[arg(long, default_value_t = 0.0)]
    kill_every_minutes: f64,
    /// Users (registered at the start).
    #[arg(long, default_value_t = 200)]
    users: usize,
    /// GROUP conversations created at the start (more are created by the load).
    #[arg(long, default_value_t = 40)]
    groups: usize,
    /// WebSocket subscribers (users 1..=N), each a member of at least one group.
    #[arg(long, default_value_t = 4)]
    subscribers: usize,
    /// Keep the database at the end.
    #[arg(long)]
    keep_db: bool,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let (minutes, kill_every) = (args.minutes, args.kill_every_minutes);
    if !minutes.is_finite() || minutes <= 0.0 || args.rate == 0 || !kill_every.is_finite() || kill_every < 0.0 {
        bail!("--minutes and --rate must be positive, --kill-every-minutes at least 0");
    }
    if args.users < GROUP_SIZE || args.users > i32::MAX as usize || args.groups == 0 || args.subscribers > args.users {
        bail!("--users must be from {GROUP_SIZE} to 2^31-1, --groups at least 1, --subscribers at most --users");
    }
    tokio::runtime::Builder::new_multi_thread().enable_all().build().context("building the tokio runtime")?.block_on(run(args))
}

/// Starts the server, soaks, audits, and cleans up even when something failed.
async fn run(args: Args) -> Result<()> {
    let names = Names::new();
    println!("database {}, stream {}, server log {}", names.database_url, names.stream, names.log_path.display());
    let mut server = Server::new(&names)?;
    let outcome = match server.start().await {
        Ok(()) => soak(&args, &names, &mut server).await,
        Err(error) => Err(error),
    };
    if let Err(error) = &outcome {
        eprintln!("soak failed: {error:#}");
    }
    let cleaned = clean_up(server, &names, args.keep_db).await;
    outcome.and(cleaned)
}

/// Fresh names of what the run creates.
struct Names {
    database_url: String,
    stream: String,
    subject_prefix: String,
    log_path: PathBuf,
    /// Prefix of every idempotency key of the load.
    key_prefix: String,
}

impl Names {
    fn new() -> Self {
        let id = Uuid::now_v7().simple().to_string();
        let suffix = &id[id.len() - 8..];
        Self {
            database_url: format!("{MYSQL_SERVER}/chat_soak_{suffix}"),
            stream: format!("SOAK_{suffix}"),
            subject_prefix: format!("soak_{suffix}.events"),
            log_path: std::env::temp_dir().join(format!("soak_{suffix}.log")),
            key_prefix: format!("soak-{suffix}-"),
        }
    }
}

// ---------------------------------------------------------------------------
// The server process

/// `chat serve` as a child process, killed and restarted on the same port, database and stream.
struct Server {
    exe: PathBuf,
    port: u16,
    base_url: String,
    names_env: Vec<(&'static str, String)>,
    log_path: PathBuf,
    child: Option<Child>,
    pid: u32,
    /// Processes started so far.
    starts: u32,
    /// The highest VmHWM of the processes that ended, and the highest VmRSS sampled, in KiB.
    peak_hwm_kib: u64,
    peak_rss_kib: u64,
}

impl Server {
    fn new(names: &Names) -> Result<Self> {
        let exe = std::env::current_exe().context("locating this binary")?.with_file_name("chat");
        if !exe.exists() {
            bail!("{} not found: build it with `cargo build --release --bin chat`", exe.display());
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).context("finding a free port")?.port();
        let names_env = vec![
            ("DATABASE_URL", names.database_url.clone()),
            ("NATS_URL", NATS_URL.to_owned()),
            ("CHAT_JWT_SECRET", JWT_SECRET.to_owned()),
            ("CHAT_LISTEN", format!("127.0.0.1:{port}")),
            ("CHAT_NATS_STREAM", names.stream.clone()),
            ("CHAT_NATS_SUBJECT_PREFIX", names.subject_prefix.clone()),
            // The load's users stay far below the per-user rate limit, but the setup registers every user as one admin.
            ("CHAT_RATE_LIMIT_PER_SECOND", "1000000".to_owned()),
            ("CHAT_RATE_LIMIT_BURST", "1000000".to_owned()),
            ("RUST_LOG", std::env::var("SOAK_SERVER_LOG").unwrap_or_else(|_| "warn".into())),
            ("NO_COLOR", "1".to_owned()),
        ];
        Ok(Self {
            exe,
            port,
            base_url: format!("http://127.0.0.1:{port}"),
            names_env,
            log_path: names.log_path.clone(),
            child: None,
            pid: 0,
            starts: 0,
            peak_hwm_kib: 0,
            peak_rss_kib: 0,
        })
    }

    /// Spawns the process (its output appended to the log) and waits until /readyz answers 200.
    async fn start(&mut self) -> Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .with_context(|| format!("opening {}", self.log_path.display()))?;
        let child = Command::new(&self.exe)
            .arg("serve")
            .envs(self.names_env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::null())
            .stdout(log.try_clone().context("duplicating the log file handle")?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", self.exe.display()))?;
        self.pid = child.id().context("the server exited at once")?;
        self.child = Some(child);
        self.starts += 1;
        let started = Instant::now();
        let http = reqwest::Client::builder().timeout(Duration::from_secs(2)).build().context("building the HTTP client")?;
        loop {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                bail!("the server exited with {status} before it was ready; its log:\n{}", log_tail(&self.log_path, 20));
            }
            if let Ok(response) = http.get(format!("{}/readyz", self.base_url)).send().await {
                if response.status() == StatusCode::OK {
                    println!("server pid {} ready on port {} in {:.1} s", self.pid, self.port, started.elapsed().as_secs_f64());
                    return Ok(());
                }
            }
            if started.elapsed() > READY_TIMEOUT {
                bail!("the server was not ready after {READY_TIMEOUT:?}; its log:\n{}", log_tail(&self.log_path, 20));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Samples the running process's memory into the peaks.
    fn sample_memory(&mut self) -> Option<u64> {
        let (rss, hwm) = memory_kib(self.pid)?;
        self.peak_rss_kib = self.peak_rss_kib.max(rss);
        self.peak_hwm_kib = self.peak_hwm_kib.max(hwm);
        Some(rss)
    }

    /// SIGKILL, then starts a new process.
    async fn kill_and_restart(&mut self) -> Result<()> {
        self.sample_memory();
        if let Some(mut child) = self.child.take() {
            child.kill().await.context("killing the server")?;
        }
        println!("killed server pid {} (SIGKILL)", self.pid);
        self.start().await
    }

    /// SIGTERM, then waits for the exit (kills it after `SHUTDOWN_TIMEOUT`).
    async fn stop(&mut self) -> Result<()> {
        self.sample_memory();
        let Some(mut child) = self.child.take() else { return Ok(()) };
        let pid = libc::pid_t::try_from(self.pid).context("the server's pid does not fit pid_t")?;
        // SAFETY: kill only sends a signal to the process we spawned (not yet reaped, so the pid is ours).
        if unsafe { libc::kill(pid, libc::SIGTERM) } != 0 {
            return Err(std::io::Error::last_os_error()).context("sending SIGTERM to the server");
        }
        match tokio::time::timeout(SHUTDOWN_TIMEOUT, child.wait()).await {
            Ok(status) => {
                println!("server stopped ({})", status.context("waiting for the server")?);
                Ok(())
            }
            Err(_) => {
                child.kill().await.context("killing the server")?;
                bail!("the server did not stop within {SHUTDOWN_TIMEOUT:?} of SIGTERM; killed")
            }
        }
    }
}

/// (VmRSS, VmHWM) of a process, in KiB.
fn memory_kib(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status.lines().find_map(|line| line.strip_prefix(name)).and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
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

/// Stops the server, prints its warnings, deletes the stream and drops the database. Every step runs.
async fn clean_up(mut server: Server, names: &Names, keep_db: bool) -> Result<()> {
    let mut result = server.stop().await;
    print_server_log(&names.log_path);
    let deleted = async {
        let client = async_nats::connect(NATS_URL).await.context("connecting to NATS")?;
        async_nats::jetstream::new(client)
            .delete_stream(&names.stream)
            .await
            .with_context(|| format!("deleting the stream {}", names.stream))?;
        println!("deleted stream {}", names.stream);
        anyhow::Ok(())
    };
    result = result.and(deleted.await);
    if keep_db {
        println!("kept database {}", names.database_url);
    } else {
        let dropped = async {
            if MySql::database_exists(&names.database_url).await? {
                MySql::drop_database(&names.database_url).await?;
                println!("dropped database {}", names.database_url);
            }
            anyhow::Ok(())
        };
        result = result.and(dropped.await.context("dropping the database"));
    }
    if let Err(error) = &result {
        eprintln!("cleanup failed: {error:#}");
    }
    result
}

fn print_server_log(path: &PathBuf) {
    let Ok(text) = std::fs::read_to_string(path) else { return };
    let notable: Vec<&str> = text.lines().filter(|line| line.contains(" WARN ") || line.contains(" ERROR ")).collect();
    println!("server log {}: {} lines, {} warnings/errors", path.display(), text.lines().count(), notable.len());
    for line in notable.iter().take(10) {
        println!("  {}", truncate(line));
    }
}

fn truncate(text: &str) -> String {
    text.chars().take(SAMPLE_CHARS).collect()
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn histogram() -> Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).context("creating a latency histogram")
}

// ---------------------------------------------------------------------------
// Setup

/// Tokens of users 1..=n (scope `chat:admin`, so user 1 can register the others): index i is user i + 1.
fn sign_tokens(users: usize, ttl: i64) -> Result<Vec<String>> {
    let keys = JwtKeys::new(JWT_SECRET);
    (1..=users)
        .map(|n| {
            let id = i64::try_from(n).ok().and_then(UserId::new).with_context(|| format!("{n} is not a valid user id"))?;
            keys.issue(id, Some(SCOPE_ADMIN), ttl).context("signing a token")
        })
        .collect()
}

async fn setup_call(http: &reqwest::Client, method: Method, url: String, token: &str, body: Value) -> Result<Value> {
    let response =
        http.request(method.clone(), &url).bearer_auth(token).json(&body).send().await.with_context(|| format!("{method} {url}"))?;
    let status = response.status();
    let text = response.text().await.with_context(|| format!("reading the answer of {method} {url}"))?;
    if !status.is_success() {
        bail!("{method} {url} answered {status}: {}", truncate(&text));
    }
    serde_json::from_str(&text).with_context(|| format!("{method} {url} answered non-JSON"))
}

/// Registers the users and creates the initial groups; every subscriber is in at least one.
async fn set_up(http: &reqwest::Client, base: &str, tokens: &[String], groups: usize, subscribers: usize) -> Result<Vec<Conversation>> {
    futures::stream::iter(1..=tokens.len())
        .map(|n| {
            let body = json!({"first_name": "Soak", "last_name": format!("User{n}")});
            setup_call(http, Method::PUT, format!("{base}/api/v1/users/{n}"), &tokens[0], body)
        })
        .buffer_unordered(SETUP_CONCURRENCY)
        .try_collect::<Vec<_>>()
        .await
        .context("registering users")?;
    let mut rng = SplitMix64::seeded();
    let plans: Vec<Vec<i64>> = (0..groups)
        .map(|g| {
            // Group g is owned by a subscriber while there are subscribers left, otherwise by a random user.
            let owner = if g < subscribers { g + 1 } else { rng.below(tokens.len()) + 1 };
            pick_members(&mut rng, owner, tokens.len())
        })
        .collect();
    let conversations = futures::stream::iter(plans)
        .map(|members| async move {
            let body = json!({"type": "GROUP", "name": "soak", "participant_ids": &members[1..]});
            let answer =
                setup_call(http, Method::POST, format!("{base}/api/v1/conversations"), &tokens[members[0] as usize - 1], body).await?;
            let id = answer["conversation_id"].as_str().context("no conversation_id")?.to_owned();
            anyhow::Ok(Conversation { id, members, recent: VecDeque::new() })
        })
        .buffered(SETUP_CONCURRENCY)
        .try_collect()
        .await
        .context("creating conversations")?;
    Ok(conversations)
}

/// `owner` first, then GROUP_SIZE - 1 other distinct users of 1..=users.
fn pick_members(rng: &mut SplitMix64, owner: usize, users: usize) -> Vec<i64> {
    let mut members = vec![owner as i64];
    while members.len() < GROUP_SIZE.min(users) {
        let candidate = (rng.below(users) + 1) as i64;
        if !members.contains(&candidate) {
            members.push(candidate);
        }
    }
    members
}

/// A small PRNG (SplitMix64).
struct SplitMix64(u64);

impl SplitMix64 {
    fn seeded() -> Self {
        Self(Uuid::new_v4().as_u128() as u64)
    }

    fn below(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z % n.max(1) as u64) as usize
    }
}

// ---------------------------------------------------------------------------
// The load

/// What the load knows of a conversation: its members and its latest acknowledged messages.
struct Conversation {
    id: String,
    members: Vec<i64>,
    /// (message id, sender) of the latest acknowledged messages.
    recent: VecDeque<(String, i64)>,
}

/// The kinds of commands of the mix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Kind {
    Send,
    Edit,
    React,
    Read,
    Create,
}

impl Kind {
    const ALL: [Kind; 5] = [Kind::Send, Kind::Edit, Kind::React, Kind::Read, Kind::Create];

    /// Out of 100.
    fn pick(roll: usize) -> Kind {
        match roll {
            0..80 => Kind::Send,
            80..86 => Kind::Edit,
            86..92 => Kind::React,
            92..98 => Kind::Read,
            _ => Kind::Create,
        }
    }

    /// The id field of the answer, if the command creates something.
    fn id_field(self) -> Option<&'static str> {
        match self {
            Kind::Send => Some("message_id"),
            Kind::React => Some("reaction_id"),
            Kind::Create => Some("conversation_id"),
            Kind::Edit | Kind::Read => None,
        }
    }
}

/// One command to run: what, as whom, and what to remember when it is acknowledged.
struct Planned {
    kind: Kind,
    number: u64,
    user: i64,
    method: Method,
    path: String,
    body: Option<String>,
    /// For a send: the conversation's index; for a create: its members.
    conversation: Option<usize>,
    members: Vec<i64>,
}

/// An acknowledged command, as the audit needs it.
struct Acked {
    kind: Kind,
    number: u64,
    status: u16,
    position: u64,
    /// The id it created (message, reaction or conversation), if any.
    id: Option<String>,
}

/// State shared by the generator, the command tasks and the report.
struct Load {
    http: reqwest::Client,
    base: String,
    tokens: Vec<String>,
    key_prefix: String,
    world: Mutex<Vec<Conversation>>,
    acked: Mutex<Vec<Acked>>,
    latency: Mutex<HashMap<Kind, Histogram<u64>>>,
    /// When unanswered commands stop being retried (set at the end of the load).
    give_up_at: Mutex<Option<Instant>>,
    issued: AtomicU64,
    answered: AtomicU64,
    retries: AtomicU64,
    unanswered: AtomicU64,
    refused: AtomicU64,
    refused_samples: Mutex<Vec<String>>,
    retry_samples: Mutex<HashMap<String, u64>>,
}

impl Load {
    /// Picks the next command; commands that need a message fall back to a send when there is none.
    fn plan(&self, rng: &mut SplitMix64, number: u64) -> Planned {
        let world = lock(&self.world);
        let index = rng.below(world.len());
        let conversation = &world[index];
        let kind = Kind::pick(rng.below(100));
        let member = conversation.members[rng.below(conversation.members.len())];
        let recent = (!conversation.recent.is_empty()).then(|| &conversation.recent[rng.below(conversation.recent.len())]);
        let id = &conversation.id;
        let planned = |kind, user, method, path: String, body: Option<Value>| Planned {
            kind,
            number,
            user,
            method,
            path,
            body: body.map(|b| b.to_string()),
            conversation: Some(index),
            members: Vec::new(),
        };
        match (kind, recent) {
            (Kind::Edit, Some((message, sender))) => planned(
                Kind::Edit,
                *sender,
                Method::PATCH,
                format!("/messages/{message}"),
                Some(json!({"content": format!("edit {number}")})),
            ),
            (Kind::React, Some((message, _))) => {
                let emoji = EMOJI[rng.below(EMOJI.len())];
                planned(Kind::React, member, Method::PUT, format!("/messages/{message}/reactions/{emoji}"), None)
            }
            (Kind::Read, Some((message, _))) => {
                planned(Kind::Read, member, Method::POST, format!("/conversations/{id}/read"), Some(json!({"message_id": message})))
            }
            (Kind::Create, _) => {
                let owner = rng.below(self.tokens.len()) + 1;
                let members = pick_members(rng, owner, self.tokens.len());
                let body = json!({"type": "GROUP", "name": format!("soak {number}"), "participant_ids": &members[1..]});
                Planned {
                    kind: Kind::Create,
                    number,
                    user: members[0],
                    method: Method::POST,
                    path: "/conversations".into(),
                    body: Some(body.to_string()),
                    conversation: None,
                    members,
                }
            }
            _ => planned(
                Kind::Send,
                member,
                Method::POST,
                format!("/conversations/{id}/messages"),
                Some(json!({"content": format!("soak message {number}")})),
            ),
        }
    }

    /// Runs one command until it is answered (2xx or a definitive refusal) or the load gives up.
    async fn execute(self: Arc<Self>, planned: Planned, permit: tokio::sync::OwnedSemaphorePermit) {
        let mut permit = Some(permit);
        let url = format!("{}/api/v1{}", self.base, planned.path);
        let key = format!("{}{}", self.key_prefix, planned.number);
        let token = &self.tokens[planned.user as usize - 1];
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let mut request = self
                .http
                .request(planned.method.clone(), &url)
                .bearer_auth(token)
                .header("idempotency-key", &key)
                .header("x-request-id", format!("{key}.{attempt}"));
            if let Some(body) = &planned.body {
                request = request.header(reqwest::header::CONTENT_TYPE, "application/json").body(body.clone());
            }
            let started = Instant::now();
            let failure = match request.send().await {
                Ok(response) => {
                    let status = response.status();
                    match response.text().await {
                        Ok(text) if status.is_success() => {
                            self.on_acked(&planned, status, &text, started.elapsed());
                            return;
                        }
                        Ok(text) => {
                            let retryable = status.is_server_error()
                                || status == StatusCode::TOO_MANY_REQUESTS
                                || (status == StatusCode::CONFLICT && text.contains("idempotency_in_progress"));
                            if !retryable {
                                self.refused.fetch_add(1, Ordering::Relaxed);
                                let mut samples = lock(&self.refused_samples);
                                if samples.len() < SAMPLES_KEPT {
                                    samples.push(format!("{:?} {} {url}: {status} {}", planned.kind, planned.method, truncate(&text)));
                                }
                                return;
                            }
                            format!("{status} {}", if status == StatusCode::CONFLICT { "idempotency_in_progress" } else { "" })
                        }
                        Err(_) => format!("{status}, answer cut"),
                    }
                }
                Err(error) if error.is_timeout() => "timeout".to_owned(),
                Err(error) if error.is_connect() => "connection refused".to_owned(),
                Err(_) => "connection lost".to_owned(),
            };
            permit.take();
            self.retries.fetch_add(1, Ordering::Relaxed);
            *lock(&self.retry_samples).entry(failure.trim().to_owned()).or_default() += 1;
            if lock(&self.give_up_at).is_some_and(|at| Instant::now() > at) {
                self.unanswered.fetch_add(1, Ordering::Relaxed);
                return;
            }
            tokio::time::sleep(RETRY_PAUSE).await;
        }
    }

    fn on_acked(&self, planned: &Planned, status: StatusCode, text: &str, latency: Duration) {
        self.answered.fetch_add(1, Ordering::Relaxed);
        let answer: Value = serde_json::from_str(text).unwrap_or(Value::Null);
        let id = planned.kind.id_field().and_then(|field| answer[field].as_str()).map(str::to_owned);
        let position = answer["position"].as_u64().unwrap_or(0);
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX).max(1);
        if let Some(histogram) = lock(&self.latency).get_mut(&planned.kind) {
            histogram.saturating_record(micros);
        }
        match (planned.kind, &id) {
            (Kind::Send, Some(message)) => {
                if let Some(index) = planned.conversation {
                    let recent = &mut lock(&self.world)[index].recent;
                    recent.push_back((message.clone(), planned.user));
                    if recent.len() > RECENT_MESSAGES {
                        recent.pop_front();
                    }
                }
            }
            (Kind::Create, Some(conversation)) => {
                lock(&self.world).push(Conversation {
                    id: conversation.clone(),
                    members: planned.members.clone(),
                    recent: VecDeque::new(),
                });
            }
            _ => {}
        }
        lock(&self.acked).push(Acked { kind: planned.kind, number: planned.number, status: status.as_u16(), position, id });
    }
}

/// Issues `rate` commands per second until `stop`; returns the command tasks.
async fn generate(load: Arc<Load>, rate: u64, stop: CancellationToken) -> Vec<tokio::task::JoinHandle<()>> {
    let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let mut rng = SplitMix64::seeded();
    let mut tasks = Vec::new();
    let mut ticker = tokio::time::interval(Duration::from_millis(10));
    ticker.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let started = Instant::now();
    let mut number = 0u64;
    while !stop.is_cancelled() {
        ticker.tick().await;
        let due = (started.elapsed().as_secs_f64() * rate as f64) as u64;
        while number < due && !stop.is_cancelled() {
            let permit = tokio::select! {
                permit = in_flight.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
                _ = stop.cancelled() => break,
            };
            number += 1;
            let planned = load.plan(&mut rng, number);
            load.issued.fetch_add(1, Ordering::Relaxed);
            tasks.push(tokio::spawn(load.clone().execute(planned, permit)));
        }
        tasks.retain(|task| !task.is_finished());
    }
    tasks
}

// ---------------------------------------------------------------------------
// WebSocket subscribers

/// A subscriber's progress, shared with its task.
struct Follower {
    user: i64,
    last: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<(Vec<u64>, u32)>,
}

/// Follows `user`'s events from position 0, reconnecting with `after_position` =
/// the last position seen; returns the positions of the frames (without
/// `ready`) and the number of connections.
async fn follow(base: String, token: String, last: Arc<AtomicU64>, stop: CancellationToken) -> (Vec<u64>, u32) {
    let ws_base = base.replacen("http://", "ws://", 1);
    let mut positions = Vec::new();
    let mut connections = 0;
    while !stop.is_cancelled() {
        let url = format!("{ws_base}/api/v1/ws?token={token}&after_position={}", last.load(Ordering::SeqCst));
        let Ok(Ok((mut socket, _))) = tokio::time::timeout(Duration::from_secs(10), tokio_tungstenite::connect_async(url)).await else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        connections += 1;
        loop {
            let message = tokio::select! {
                _ = stop.cancelled() => break,
                message = socket.next() => message,
            };
            match message {
                Some(Ok(Message::Text(text))) => {
                    let Ok(frame) = serde_json::from_str::<Value>(text.as_str()) else { continue };
                    // Typing and presence are not events of the log: the audit counts the log's.
                    let ephemeral = frame["event"] == "presence" || frame["event"] == "typing";
                    if frame["event"] != "ready" && !ephemeral {
                        if let Some(position) = frame["position"].as_u64() {
                            last.store(position, Ordering::SeqCst);
                            positions.push(position);
                        }
                    }
                }
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                Some(Ok(_)) => {}
            }
        }
    }
    (positions, connections)
}

// ---------------------------------------------------------------------------
// The run

async fn soak(args: &Args, names: &Names, server: &mut Server) -> Result<()> {
    let http = reqwest::Client::builder()
        // Below the server's 10 s idle close (its header deadline), so a pooled
        // connection is never reused just as the server closes it.
        .pool_idle_timeout(Duration::from_secs(5))
        .timeout(REQUEST_TIMEOUT)
        .pool_max_idle_per_host(MAX_IN_FLIGHT)
        .tcp_nodelay(true)
        .build()
        .context("building the HTTP client")?;
    let ttl = 7_200 + 2 * (args.minutes * 60.0) as i64;
    let tokens = sign_tokens(args.users, ttl)?;
    let started = Instant::now();
    let conversations = set_up(&http, &server.base_url, &tokens, args.groups, args.subscribers).await?;
    println!("setup: {} users, {} groups in {:.1} s", args.users, conversations.len(), started.elapsed().as_secs_f64());
    let pool = chat::db::connect(&names.database_url, 2).await.context("connecting to the database")?;

    let stop_followers = CancellationToken::new();
    let followers: Vec<Follower> = (1..=args.subscribers as i64)
        .map(|user| {
            let last = Arc::new(AtomicU64::new(0));
            let task =
                tokio::spawn(follow(server.base_url.clone(), tokens[user as usize - 1].clone(), last.clone(), stop_followers.clone()));
            Follower { user, last, task }
        })
        .collect();

    let load = Arc::new(Load {
        http,
        base: server.base_url.clone(),
        tokens,
        key_prefix: names.key_prefix.clone(),
        world: Mutex::new(conversations),
        acked: Mutex::new(Vec::new()),
        latency: Mutex::new(Kind::ALL.iter().map(|k| histogram().map(|h| (*k, h))).collect::<Result<_>>()?),
        give_up_at: Mutex::new(None),
        issued: AtomicU64::new(0),
        answered: AtomicU64::new(0),
        retries: AtomicU64::new(0),
        unanswered: AtomicU64::new(0),
        refused: AtomicU64::new(0),
        refused_samples: Mutex::new(Vec::new()),
        retry_samples: Mutex::new(HashMap::new()),
    });
    let stop_load = CancellationToken::new();
    let generator = tokio::spawn(generate(load.clone(), args.rate, stop_load.clone()));

    // The coordinator: memory samples every second, progress every minute, kills when due.
    let load_started = Instant::now();
    let duration = Duration::from_secs_f64(args.minutes * 60.0);
    let kill_every = (args.kill_every_minutes > 0.0).then(|| Duration::from_secs_f64(args.kill_every_minutes * 60.0));
    let mut next_kill = kill_every.map(|every| load_started + every);
    let mut next_progress = load_started + PROGRESS_EVERY;
    let mut last_kill = None;
    let mut kills = 0;
    let mut previous_answered = 0;
    while load_started.elapsed() < duration {
        tokio::time::sleep(Duration::from_secs(1).min(duration.saturating_sub(load_started.elapsed()))).await;
        let rss = server.sample_memory();
        if next_kill.is_some_and(|at| Instant::now() >= at && load_started.elapsed() < duration) {
            server.kill_and_restart().await?;
            kills += 1;
            last_kill = Some(Instant::now());
            next_kill = kill_every.map(|every| Instant::now() + every);
        }
        if Instant::now() >= next_progress {
            let answered = load.answered.load(Ordering::Relaxed);
            println!(
                "[{:5.1} min] {} commands accepted ({:.0}/s this minute), {} retries, {} refused, server VmRSS {:.1} MiB, {kills} kills",
                load_started.elapsed().as_secs_f64() / 60.0,
                answered,
                (answered - previous_answered) as f64 / PROGRESS_EVERY.as_secs_f64(),
                load.retries.load(Ordering::Relaxed),
                load.refused.load(Ordering::Relaxed),
                mib(rss.unwrap_or(0)),
            );
            previous_answered = answered;
            next_progress += PROGRESS_EVERY;
        }
    }
    stop_load.cancel();
    let load_seconds = load_started.elapsed().as_secs_f64();
    let give_up = match last_kill {
        Some(at) => (at + RETRY_AFTER_KILL).max(Instant::now() + RETRY_AFTER_LOAD),
        None => Instant::now() + RETRY_AFTER_LOAD,
    };
    *lock(&load.give_up_at) = Some(give_up);
    for task in generator.await.context("the generator panicked")? {
        task.await.context("a command task panicked")?;
    }
    println!("load: {load_seconds:.0} s, all commands settled {:.1} s after its end", load_started.elapsed().as_secs_f64() - load_seconds);

    wait_caught_up(&pool).await?;
    let audit = audit(&pool, &names.key_prefix, &followers).await?;
    let delivered = settle_followers(followers, &audit.expected_per_subscriber, stop_followers).await;
    let published = jetstream_messages(&names.stream).await?;
    server.sample_memory();
    report(args, &load, &audit, &delivered, published, server, kills, load_seconds)
}

/// Waits until the publisher and the projector have everything in the log.
async fn wait_caught_up(pool: &MySqlPool) -> Result<()> {
    let started = Instant::now();
    loop {
        let (head, published, projected): (u64, Option<u64>, Option<u64>) = sqlx::query_as(
            "SELECT h.last_position, (SELECT last_position FROM publication_cursor WHERE name = 'jetstream'), \
             (SELECT position FROM projection_checkpoints WHERE name = 'read_models') FROM event_log_head h",
        )
        .fetch_one(pool)
        .await
        .context("reading the lags")?;
        if published.unwrap_or(0) >= head && projected.unwrap_or(0) >= head {
            return Ok(());
        }
        if started.elapsed() > CATCH_UP_TIMEOUT {
            bail!("not caught up after {CATCH_UP_TIMEOUT:?}: head {head}, published {published:?}, projected {projected:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

// ---------------------------------------------------------------------------
// The audit

/// The events one idempotency key produced.
#[derive(Default)]
struct KeyEvents {
    /// (position, event type, created id).
    events: Vec<(u64, String, Option<String>)>,
    /// Distinct requests (`correlation_id`) that appended them.
    requests: Vec<String>,
}

/// What the log says.
struct Audit {
    events: u64,
    head: u64,
    by_key: HashMap<u64, KeyEvents>,
    /// Per subscriber: the positions of the events they must receive.
    expected_per_subscriber: HashMap<i64, Vec<u64>>,
}

/// Reads the whole log: the events of each of the load's keys, and what each subscriber must receive.
async fn audit(pool: &MySqlPool, key_prefix: &str, followers: &[Follower]) -> Result<Audit> {
    let subscribers: Vec<i64> = followers.iter().map(|f| f.user).collect();
    let mut members_of: HashMap<String, Vec<i64>> = HashMap::new();
    let mut expected: HashMap<i64, Vec<u64>> = subscribers.iter().map(|u| (*u, Vec::new())).collect();
    let mut by_key: HashMap<u64, KeyEvents> = HashMap::new();
    let mut after = 0u64;
    let mut events = 0u64;
    loop {
        let rows: Vec<(u64, String, String, String, String)> = sqlx::query_as(
            "SELECT position, stream_type, event_type, CAST(data AS CHAR), CAST(metadata AS CHAR) FROM event_log \
             WHERE position > ? ORDER BY position LIMIT ?",
        )
        .bind(after)
        .bind(AUDIT_PAGE)
        .fetch_all(pool)
        .await
        .context("reading the event log")?;
        let Some(last) = rows.last() else { break };
        after = last.0;
        for (position, stream_type, event_type, data, metadata) in rows {
            events += 1;
            let data: Value = serde_json::from_str(&data).with_context(|| format!("data of event {position}"))?;
            let metadata: Value = serde_json::from_str(&metadata).with_context(|| format!("metadata of event {position}"))?;
            if stream_type == "conversation" {
                let conversation = data["conversation_id"].as_str().unwrap_or_default().to_owned();
                if event_type == "ConversationCreated" {
                    let members = data["participants"].as_array().into_iter().flatten().filter_map(|p| p["user_id"].as_i64());
                    let watched: Vec<i64> = members.filter(|m| subscribers.contains(m)).collect();
                    if !watched.is_empty() {
                        members_of.insert(conversation.clone(), watched);
                    }
                }
                // The load never changes memberships or settings, so every member receives every event.
                for user in members_of.get(&conversation).into_iter().flatten() {
                    expected.entry(*user).or_default().push(position);
                }
            }
            let number = metadata["idempotency_key"].as_str().and_then(|k| k.strip_prefix(key_prefix)).and_then(|n| n.parse().ok());
            if let Some(number) = number {
                let entry: &mut KeyEvents = by_key.entry(number).or_default();
                let created_field = match event_type.as_str() {
                    "MessageSent" => Some("message_id"),
                    "ReactionAdded" => Some("reaction_id"),
                    "ConversationCreated" => Some("conversation_id"),
                    _ => None,
                };
                let created = created_field.and_then(|field| data[field].as_str()).map(str::to_owned);
                entry.events.push((position, event_type, created));
                let request = metadata["correlation_id"].as_str().unwrap_or_default().to_owned();
                if !entry.requests.contains(&request) {
                    entry.requests.push(request);
                }
            }
        }
    }
    Ok(Audit { events, head: after, by_key, expected_per_subscriber: expected })
}

/// The event type an acknowledged command must have appended, or None when its answer may be a no-op.
fn expected_event(acked: &Acked) -> Option<&'static str> {
    match (acked.kind, acked.status) {
        (Kind::Send, _) => Some("MessageSent"),
        (Kind::Edit, _) => Some("MessageEdited"),
        (Kind::React, 201) => Some("ReactionAdded"),
        (Kind::Create, _) => Some("ConversationCreated"),
        // A repeated reaction (200) and a read mark of an older message append nothing.
        (Kind::React, _) | (Kind::Read, _) => None,
    }
}

/// Why an acknowledged command does not match the log, if it does not.
fn mismatch(acked: &Acked, events: Option<&KeyEvents>, head: u64) -> Option<String> {
    let found: &[(u64, String, Option<String>)] = events.map(|e| e.events.as_slice()).unwrap_or_default();
    match (expected_event(acked), found) {
        (Some(kind), [(position, event_type, created)]) => {
            let id_ok = acked.kind.id_field().is_none() || created == &acked.id;
            (*position != acked.position || event_type != kind || !id_ok).then(|| {
                format!(
                    "{:?} #{}: answered position {} id {:?}, log has {event_type} at {position} id {created:?}",
                    acked.kind, acked.number, acked.position, acked.id
                )
            })
        }
        (Some(kind), []) => {
            Some(format!("{:?} #{}: answered {} at {}, no {kind} in the log", acked.kind, acked.number, acked.status, acked.position))
        }
        (None, []) => (acked.position == 0 || acked.position > head)
            .then(|| format!("{:?} #{}: no-op answered position {}", acked.kind, acked.number, acked.position)),
        (None, [(position, _, _)]) => (*position != acked.position)
            .then(|| format!("{:?} #{}: answered {}, log has it at {position}", acked.kind, acked.number, acked.position)),
        // More than one event: counted as a duplicate, not a loss.
        (_, _) => None,
    }
}

/// Waits until every subscriber has seen its last expected event (or a timeout), then stops them.
async fn settle_followers(
    followers: Vec<Follower>,
    expected: &HashMap<i64, Vec<u64>>,
    stop: CancellationToken,
) -> Vec<(i64, Vec<u64>, u32)> {
    let started = Instant::now();
    for follower in &followers {
        let target = expected.get(&follower.user).and_then(|p| p.last().copied()).unwrap_or(0);
        while follower.last.load(Ordering::SeqCst) < target && started.elapsed() < CATCH_UP_TIMEOUT {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    stop.cancel();
    let mut out = Vec::new();
    for follower in followers {
        let (positions, connections) = follower.task.await.unwrap_or_default();
        out.push((follower.user, positions, connections));
    }
    out
}

/// Messages in the JetStream stream.
async fn jetstream_messages(stream: &str) -> Result<u64> {
    let client = async_nats::connect(NATS_URL).await.context("connecting to NATS")?;
    let mut stream = async_nats::jetstream::new(client).get_stream(stream).await.context("finding the stream")?;
    Ok(stream.info().await.context("reading the stream's info")?.state.messages)
}

#[allow(clippy::too_many_arguments)]
fn report(
    args: &Args,
    load: &Load,
    audit: &Audit,
    delivered: &[(i64, Vec<u64>, u32)],
    published: u64,
    server: &Server,
    kills: u32,
    load_seconds: f64,
) -> Result<()> {
    let acked = lock(&load.acked);
    let mut lost = Vec::new();
    for command in acked.iter() {
        if let Some(why) = mismatch(command, audit.by_key.get(&command.number), audit.head) {
            lost.push(why);
        }
    }
    let duplicated: Vec<(&u64, &KeyEvents)> = audit.by_key.iter().filter(|(_, e)| e.requests.len() > 1 || e.events.len() > 1).collect();
    let acked_numbers: std::collections::HashSet<u64> = acked.iter().map(|a| a.number).collect();
    let applied_unanswered = audit.by_key.keys().filter(|n| !acked_numbers.contains(n)).count();

    println!();
    println!(
        "=== soak: {:.1} min at {} commands/s, kill every {} min ({kills} kills, {} server starts) ===",
        args.minutes, args.rate, args.kill_every_minutes, server.starts
    );
    println!(
        "commands: {} issued, {} accepted ({:.0}/s), {} refused (4xx), {} never answered (retried until the end), {} retried attempts",
        load.issued.load(Ordering::Relaxed),
        acked.len(),
        acked.len() as f64 / load_seconds.max(1e-9),
        load.refused.load(Ordering::Relaxed),
        load.unanswered.load(Ordering::Relaxed),
        load.retries.load(Ordering::Relaxed)
    );
    for kind in Kind::ALL {
        let count = acked.iter().filter(|a| a.kind == kind).count();
        println!("  {kind:?}: {count} accepted");
    }
    let mut retry_reasons: Vec<(String, u64)> = lock(&load.retry_samples).iter().map(|(k, v)| (k.clone(), *v)).collect();
    retry_reasons.sort_by_key(|(_, count)| std::cmp::Reverse(*count));
    if !retry_reasons.is_empty() {
        println!("  retried because: {}", retry_reasons.iter().map(|(r, n)| format!("{r} ×{n}")).collect::<Vec<_>>().join(", "));
    }
    for sample in lock(&load.refused_samples).iter() {
        println!("  refused: {sample}");
    }
    println!("lost: {} (acknowledged, but not in the log as answered)", lost.len());
    for why in lost.iter().take(SAMPLES_KEPT) {
        println!("  {why}");
    }
    println!("duplicated: {} (a key applied by more than one request, or more than one event)", duplicated.len());
    for (number, events) in duplicated.iter().take(SAMPLES_KEPT) {
        println!("  key {number}: events {:?}, requests {:?}", events.events, events.requests);
    }
    println!("applied without an answer reaching the client: {applied_unanswered} (allowed)");

    let latency = lock(&load.latency);
    let mut all = histogram()?;
    for histogram in latency.values() {
        all.add(histogram).context("merging latency histograms")?;
    }
    println!("latency of answered attempts: {}", percentiles(&all));
    for kind in Kind::ALL {
        if let Some(histogram) = latency.get(&kind).filter(|h| !h.is_empty()) {
            println!("  {kind:?}: {}", percentiles(histogram));
        }
    }
    println!(
        "server memory: peak VmHWM {:.1} MiB (highest of {} processes), peak sampled VmRSS {:.1} MiB",
        mib(server.peak_hwm_kib),
        server.starts,
        mib(server.peak_rss_kib)
    );
    println!("event log: {} events; JetStream: {published} messages", audit.events);
    let mut delivery_ok = true;
    let mut totals = (0usize, 0usize);
    for (user, positions, connections) in delivered {
        let expected = audit.expected_per_subscriber.get(user).map(Vec::as_slice).unwrap_or_default();
        let exact = positions.as_slice() == expected;
        let mut unique = positions.clone();
        unique.sort_unstable();
        unique.dedup();
        let duplicates = positions.len() - unique.len();
        let out_of_order = positions.windows(2).filter(|w| w[1] <= w[0]).count();
        let missing = expected.iter().filter(|p| unique.binary_search(p).is_err()).count();
        totals = (totals.0 + positions.len(), totals.1 + expected.len());
        delivery_ok &= exact;
        println!(
            "  ws subscriber user {user}: {} events delivered of {} expected ({missing} missing, {duplicates} duplicates, {out_of_order} out of order), {connections} connections{}",
            positions.len(),
            expected.len(),
            if exact { "" } else { " MISMATCH" }
        );
    }
    println!("websocket: {} events delivered to {} subscribers, {} expected", totals.0, delivered.len(), totals.1);

    let published_ok = published == audit.events;
    if !lost.is_empty() || !duplicated.is_empty() || !published_ok || !delivery_ok {
        bail!(
            "FAILED: {} lost, {} duplicated, JetStream {} for {} events, websocket delivery {}",
            lost.len(),
            duplicated.len(),
            published,
            audit.events,
            if delivery_ok { "exact" } else { "not exact" }
        );
    }
    println!("OK: nothing lost, nothing duplicated, every event published once and delivered once in order");
    Ok(())
}

/// "p50 4.1 ms, p99 12.3 ms, max 40.2 ms (n)".
fn percentiles(histogram: &Histogram<u64>) -> String {
    let ms = |us: u64| us as f64 / 1000.0;
    format!(
        "p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} commands)",
        ms(histogram.value_at_quantile(0.5)),
        ms(histogram.value_at_quantile(0.9)),
        ms(histogram.value_at_quantile(0.99)),
        ms(histogram.max()),
        histogram.len()
    )
}
