//! Benchmark of the query path under load (not a test).
//!
//! The issue's workload: `--clients` closed-loop clients (8) asking, in turn,
//! for a user's conversation list, one conversation, a page of 50 messages
//! and the DIRECT lookup, over `--conversations` conversations (500) of
//! `--messages` messages each (100). Three rounds, in the same run, on the
//! same database, for `--seconds` each:
//!
//! * `uncached`: a server process with the read cache off (every query
//!   reads MariaDB): what the read side cost before the cache;
//! * `cached`: the server with its read cache (the default);
//! * `crud`: schema.md's original queries sent straight to MariaDB by as
//!   many clients over a pool (no HTTP, no JSON): a floor for what the CRUD
//!   system this project replaces can answer on the same tables.
//!
//! It prints queries/s and per-query p50/p99 for each round, and the ratios.
//! It needs the local MariaDB and NATS. Run it with
//!
//! ```text
//! cargo run --release --bin bench_query -- --seconds 10
//! ```

#[path = "shared/original_queries.rs"]
mod original_queries;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use futures::{StreamExt, TryStreamExt};
use hdrhistogram::Histogram;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::migrate::MigrateDatabase;
use sqlx::{MySql, MySqlPool};

use chat::config::{Config, Role};

/// The server runs in this process: it allocates as the `chat` binary does
/// (mimalloc, see `src/main.rs`), or the figures would measure glibc's malloc.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use chat::domain::UserId;
use chat::http::{JwtKeys, SCOPE_ADMIN};
use chat::server::RunningServer;

const NATS_URL: &str = "nats://127.0.0.1:4222";
const SETUP_CONCURRENCY: usize = 32;
const WARM_UP: Duration = Duration::from_secs(2);
const MAX_LATENCY_US: u64 = 60_000_000;
/// The CRUD system's figure the issue measured (same load generator, same machine).
const CRUD_NODE_QPS: f64 = 563.0;
/// What the issue asks for: 10x the CRUD system, p99 at most 5 ms.
const TARGET_RATIO: f64 = 10.0;
const TARGET_P99_MS: f64 = 5.0;

/// Benchmark of the query path under load.
#[derive(Debug, Parser)]
#[command(name = "bench_query")]
struct Args {
    /// Concurrent closed-loop clients.
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// Seconds measured per round.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Registered users.
    #[arg(long, default_value_t = 100)]
    users: usize,
    /// Conversations (a tenth of them DIRECT, the rest GROUPs of five).
    #[arg(long, default_value_t = 500)]
    conversations: usize,
    /// Messages sent in each conversation.
    #[arg(long, default_value_t = 100)]
    messages: usize,
    /// Sends per second during the HTTP rounds (0: reads only), each to a
    /// random conversation of a random user: how the cache holds up while
    /// writes make its answers stale.
    #[arg(long, default_value_t = 0)]
    sends_per_second: u64,
}

fn main() -> Result<()> {
    let args = Args::parse();
    if args.users < 10 || args.conversations < 10 || args.clients == 0 || args.messages == 0 {
        bail!("--users and --conversations must be at least 10, --clients and --messages at least 1");
    }
    tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the runtime")?.block_on(run(args))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    List,
    Conversation,
    Messages,
    Direct,
}

const KINDS: [Kind; 4] = [Kind::List, Kind::Conversation, Kind::Messages, Kind::Direct];

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::List => "conversation list",
            Kind::Conversation => "one conversation",
            Kind::Messages => "messages page",
            Kind::Direct => "DIRECT lookup",
        }
    }
}

/// What the setup made: each user's conversations, and the DIRECT pairs.
struct History {
    /// Index u-1: the conversations of user u.
    conversations: Vec<Vec<String>>,
    /// (user, other) pairs that share a DIRECT about `posting`.
    directs: Vec<(usize, usize)>,
    posting: String,
    last_position: u64,
}

async fn run(args: Args) -> Result<()> {
    let suffix = uuid::Uuid::now_v7().simple().to_string()[24..].to_owned();
    let database_url = format!("mysql://root@127.0.0.1:3306/chat_bench_query_{suffix}");
    MySql::create_database(&database_url).await.context("creating the bench database")?;
    let cached = chat::server::start(config(&database_url, &suffix, 64)?, &Role::ALL).await.context("starting the server")?;
    let uncached = chat::server::start(config(&database_url, &suffix, 0)?, &[Role::Api]).await.context("starting the uncached server")?;
    let outcome = bench(&args, &database_url, &cached, &uncached).await;
    cached.stop().await;
    uncached.stop().await;
    let client = async_nats::connect(NATS_URL).await.context("connecting to NATS")?;
    let _ = async_nats::jetstream::new(client).delete_stream(format!("BENCH_QUERY_{suffix}")).await;
    MySql::drop_database(&database_url).await.context("dropping the bench database")?;
    outcome
}

fn config(database_url: &str, suffix: &str, read_cache_mb: usize) -> Result<Config> {
    Ok(Config {
        database_url: database_url.to_owned(),
        nats_url: NATS_URL.to_owned(),
        jwt_secret: "bench-secret".to_owned(),
        listen: "127.0.0.1:0".parse().context("parsing the listen address")?,
        nats_stream: format!("BENCH_QUERY_{suffix}"),
        nats_subject_prefix: format!("bench_query_{suffix}.events"),
        nats_replicas: 1,
        db_max_connections: 16,
        aggregate_cache: 10_000,
        aggregate_cache_events: 2_000_000,
        read_cache_mb,
        read_wait_ms: 10_000,
        ws_queue: 1_024,
        cors_origins: Vec::new(),
        limits: chat::config::Limits::UNLIMITED_RATE,
    })
}

fn base_url(server: &RunningServer) -> Result<String> {
    server.addr.map(|addr| format!("http://{addr}")).context("the server has no HTTP address")
}

async fn bench(args: &Args, database_url: &str, cached: &RunningServer, uncached: &RunningServer) -> Result<()> {
    let http = reqwest::Client::builder()
        .pool_idle_timeout(Duration::from_secs(5))
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(30))
        .build()
        .context("building the HTTP client")?;
    let keys = JwtKeys::new("bench-secret");
    let tokens = (1..=args.users).map(|n| bearer(&keys, n, None)).collect::<Result<Vec<_>>>()?;
    let started = Instant::now();
    let history = set_up(&http, &base_url(cached)?, &keys, &tokens, args).await?;
    println!(
        "setup: {} users, {} conversations of {} messages ({} DIRECT) in {:.1} s",
        args.users,
        args.conversations,
        args.messages,
        history.directs.len(),
        started.elapsed().as_secs_f64()
    );
    for server in [cached, uncached] {
        let url = format!("{}/api/v1/conversations?min_position={}", base_url(server)?, history.last_position);
        expect(&http, &url, &tokens[0]).await.context("waiting for the read models")?;
    }
    let history = Arc::new(history);
    let tokens = Arc::new(tokens);
    let pool = chat::db::connect(database_url, args.clients as u32).await.context("connecting the CRUD clients")?;
    let writes = if args.sends_per_second > 0 { format!(", {} sends/s meanwhile", args.sends_per_second) } else { String::new() };
    let writer = Writer::start(args.sends_per_second, &http, &base_url(cached)?, &history, &tokens);
    let uncached_round = http_round(args, &http, &base_url(uncached)?, &history, &tokens).await?;
    uncached_round.print(&format!("uncached (every query reads MariaDB{writes})"));
    let cached_round = http_round(args, &http, &base_url(cached)?, &history, &tokens).await?;
    cached_round.print(&format!("cached (read cache on, the default{writes})"));
    if let Some(writer) = writer {
        let (sent, failed) = writer.stop().await;
        println!("writes during the HTTP rounds: {sent} sends, {failed} failed");
    }
    let crud_round = crud_round(args, &pool, &history).await?;
    crud_round.print("crud (schema.md's queries straight to MariaDB, no HTTP)");
    pool.close().await;
    let ratio = |a: &Round, b: &Round| a.rate() / b.rate().max(1e-9);
    println!("cached / uncached: {:.1}x queries/s", ratio(&cached_round, &uncached_round));
    println!("cached / crud on MariaDB: {:.1}x queries/s", ratio(&cached_round, &crud_round));
    let against_node = cached_round.rate() / CRUD_NODE_QPS;
    let worst_p99 = KINDS.iter().map(|k| cached_round.p99_ms(*k)).fold(0.0, f64::max);
    println!(
        "cached / the Node.js CRUD system's {CRUD_NODE_QPS} q/s (the issue's figure): {against_node:.1}x; worst p99 {worst_p99:.2} ms; \
         target {TARGET_RATIO}x at p99 <= {TARGET_P99_MS} ms {}",
        if against_node >= TARGET_RATIO && worst_p99 <= TARGET_P99_MS { "met" } else { "NOT met" }
    );
    Ok(())
}

fn bearer(keys: &JwtKeys, n: usize, scope: Option<&str>) -> Result<String> {
    let id = i64::try_from(n).ok().and_then(UserId::new).with_context(|| format!("{n} is not a user id"))?;
    Ok(format!("Bearer {}", keys.issue(id, scope, 24 * 3600).context("signing a token")?))
}

async fn request(http: &reqwest::Client, method: Method, url: &str, bearer: &str, body: Option<&Value>) -> Result<(StatusCode, Value)> {
    let mut request = http.request(method, url).header("authorization", bearer);
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = request.send().await.with_context(|| format!("calling {url}"))?;
    let status = response.status();
    let text = response.text().await.context("reading an answer")?;
    Ok((status, serde_json::from_str(&text).unwrap_or(Value::String(text))))
}

/// A GET that must answer 2xx (retried while the read models catch up).
async fn expect(http: &reqwest::Client, url: &str, bearer: &str) -> Result<Value> {
    for _ in 0..30 {
        let (status, body) = request(http, Method::GET, url, bearer, None).await?;
        if status.is_success() {
            return Ok(body);
        }
        if status != StatusCode::SERVICE_UNAVAILABLE {
            bail!("{url} answered {status}: {body}");
        }
    }
    bail!("{url} kept answering 503")
}

/// A setup command; its answer's position.
async fn command(http: &reqwest::Client, method: Method, url: String, bearer: &str, body: Value) -> Result<(u64, Value)> {
    let (status, answer) = request(http, method, &url, bearer, Some(&body)).await?;
    if !status.is_success() {
        bail!("{url} answered {status}: {answer}");
    }
    Ok((answer["position"].as_u64().unwrap_or(0), answer))
}

async fn set_up(http: &reqwest::Client, base: &str, keys: &JwtKeys, tokens: &[String], args: &Args) -> Result<History> {
    let admin = bearer(keys, 1, Some(SCOPE_ADMIN))?;
    futures::stream::iter(1..=args.users)
        .map(|n| {
            let body = json!({"first_name": format!("First{n}"), "last_name": format!("Last{n}")});
            command(http, Method::PUT, format!("{base}/api/v1/users/{n}"), &admin, body)
        })
        .buffer_unordered(SETUP_CONCURRENCY)
        .try_collect::<Vec<_>>()
        .await?;
    let posting = uuid::Uuid::now_v7().to_string();
    command(http, Method::PUT, format!("{base}/api/v1/postings/{posting}"), &admin, json!({"title": "bench"})).await?;
    let direct_count = (args.conversations / 10).min(args.users / 2);
    let directs: Vec<(usize, usize)> = (1..=direct_count).map(|u| (u, u + args.users / 2)).collect();
    // Members of each conversation (the creator first).
    let mut plans: Vec<(Value, Vec<usize>)> =
        directs.iter().map(|&(a, b)| (json!({"type": "DIRECT", "posting_id": posting, "participant_ids": [b]}), vec![a, b])).collect();
    for i in 0..args.conversations - direct_count {
        let owner = i % args.users + 1;
        let mut members: Vec<usize> = vec![owner];
        let mut k = 1;
        while members.len() < 5 {
            let candidate = (i * 7 + k * 13) % args.users + 1;
            if !members.contains(&candidate) {
                members.push(candidate);
            }
            k += 1;
        }
        plans.push((json!({"type": "GROUP", "name": format!("group {i}"), "participant_ids": members[1..]}), members));
    }
    let url = format!("{base}/api/v1/conversations");
    let created: Vec<(String, Vec<usize>)> = futures::stream::iter(plans)
        .map(|(body, members)| {
            let url = url.clone();
            async move {
                let (_, answer) = command(http, Method::POST, url, &tokens[members[0] - 1], body).await?;
                let id = answer["conversation_id"].as_str().context("a conversation_id")?.to_owned();
                Ok::<_, anyhow::Error>((id, members))
            }
        })
        .buffered(SETUP_CONCURRENCY)
        .try_collect()
        .await?;
    let mut conversations = vec![Vec::new(); args.users];
    for (id, members) in &created {
        for member in members {
            conversations[member - 1].push(id.clone());
        }
    }
    let sends = created.iter().flat_map(|(id, members)| (0..args.messages).map(move |n| (id, members[n % members.len()], n)));
    let positions: Vec<u64> =
        futures::stream::iter(sends)
            .map(|(id, sender, n)| {
                let url = format!("{base}/api/v1/conversations/{id}/messages");
                async move {
                    command(http, Method::POST, url, &tokens[sender - 1], json!({"content": format!("message {n}")})).await.map(|p| p.0)
                }
            })
            .buffer_unordered(SETUP_CONCURRENCY)
            .try_collect()
            .await?;
    let last_position = positions.into_iter().max().unwrap_or(0);
    Ok(History { conversations, directs, posting, last_position })
}

/// Sends at a steady rate in the background.
struct Writer {
    stop: tokio_util::sync::CancellationToken,
    task: tokio::task::JoinHandle<(u64, u64)>,
}

impl Writer {
    fn start(rate: u64, http: &reqwest::Client, base: &str, history: &Arc<History>, tokens: &Arc<Vec<String>>) -> Option<Writer> {
        if rate == 0 {
            return None;
        }
        let stop = tokio_util::sync::CancellationToken::new();
        let (http, base, history, tokens, until) = (http.clone(), base.to_owned(), history.clone(), tokens.clone(), stop.clone());
        let task = tokio::spawn(async move {
            let in_flight = Arc::new(tokio::sync::Semaphore::new(64));
            let (sent, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
            let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
            let mut picker = Picker(0x5eed);
            while !until.is_cancelled() {
                ticker.tick().await;
                let Ok(permit) = in_flight.clone().acquire_owned().await else { break };
                let (_, user, conversation) = pick(&history, &mut picker, 1);
                let url = format!("{base}/api/v1/conversations/{conversation}/messages");
                let (http, token, sent, failed) = (http.clone(), tokens[user - 1].clone(), sent.clone(), failed.clone());
                tokio::spawn(async move {
                    let done = request(&http, Method::POST, &url, &token, Some(&json!({"content": "meanwhile"}))).await;
                    let counter = if matches!(done, Ok((status, _)) if status.is_success()) { &sent } else { &failed };
                    counter.fetch_add(1, Ordering::Relaxed);
                    drop(permit);
                });
            }
            (sent.load(Ordering::Relaxed), failed.load(Ordering::Relaxed))
        });
        Some(Writer { stop, task })
    }

    async fn stop(self) -> (u64, u64) {
        self.stop.cancel();
        self.task.await.unwrap_or((0, 0))
    }
}

/// The figures of one round.
struct Round {
    histograms: Vec<Histogram<u64>>,
    elapsed: Duration,
    errors: u64,
}

impl Round {
    fn total(&self) -> u64 {
        self.histograms.iter().map(|h| h.len()).sum()
    }

    fn rate(&self) -> f64 {
        self.total() as f64 / self.elapsed.as_secs_f64()
    }

    fn p99_ms(&self, kind: Kind) -> f64 {
        self.histograms[kind as usize].value_at_quantile(0.99) as f64 / 1000.0
    }

    fn print(&self, name: &str) {
        println!("{name}: {:.0} queries/s ({} in {:.1} s, {} errors)", self.rate(), self.total(), self.elapsed.as_secs_f64(), self.errors);
        for kind in KINDS {
            let h = &self.histograms[kind as usize];
            println!(
                "  {:<18} p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({} queries)",
                kind.name(),
                h.value_at_quantile(0.5) as f64 / 1000.0,
                h.value_at_quantile(0.99) as f64 / 1000.0,
                h.max() as f64 / 1000.0,
                h.len()
            );
        }
    }

    fn merge(rounds: Vec<(Vec<Histogram<u64>>, u64)>, elapsed: Duration) -> Result<Round> {
        let mut histograms = new_histograms()?;
        let mut errors = 0;
        for (client, client_errors) in rounds {
            for (total, h) in histograms.iter_mut().zip(client) {
                total.add(h).context("merging histograms")?;
            }
            errors += client_errors;
        }
        Ok(Round { histograms, elapsed, errors })
    }
}

fn new_histograms() -> Result<Vec<Histogram<u64>>> {
    KINDS.iter().map(|_| Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).context("a histogram")).collect()
}

/// A small deterministic generator (xorshift), one per client.
struct Picker(u64);

impl Picker {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// What request `n` of a client asks: its kind, user (1-based), and the conversation or DIRECT partner.
fn pick(history: &History, picker: &mut Picker, n: usize) -> (Kind, usize, String) {
    let kind = KINDS[n % KINDS.len()];
    if kind == Kind::Direct {
        let (user, other) = history.directs[picker.below(history.directs.len())];
        return (kind, user, other.to_string());
    }
    let user = loop {
        let user = picker.below(history.conversations.len()) + 1;
        if !history.conversations[user - 1].is_empty() {
            break user;
        }
    };
    let own = &history.conversations[user - 1];
    (kind, user, own[picker.below(own.len())].clone())
}

async fn http_round(args: &Args, http: &reqwest::Client, base: &str, history: &Arc<History>, tokens: &Arc<Vec<String>>) -> Result<Round> {
    let start = Instant::now();
    let deadline = start + WARM_UP + Duration::from_secs(args.seconds);
    let clients = (0..args.clients).map(|client| {
        let (http, base, history, tokens) = (http.clone(), base.to_owned(), history.clone(), tokens.clone());
        tokio::spawn(async move {
            let mut histograms = new_histograms()?;
            let mut picker = Picker(0x9e37_79b9_7f4a_7c15 ^ (client as u64 + 1));
            let mut errors = 0;
            let measure_from = start + WARM_UP;
            let mut n = client;
            while Instant::now() < deadline {
                let (kind, user, target) = pick(&history, &mut picker, n);
                n += 1;
                let url = match kind {
                    Kind::List => format!("{base}/api/v1/conversations?limit=20"),
                    Kind::Conversation => format!("{base}/api/v1/conversations/{target}"),
                    Kind::Messages => format!("{base}/api/v1/conversations/{target}/messages?limit=50"),
                    Kind::Direct => format!("{base}/api/v1/conversations/direct?user_id={target}&posting_id={}", history.posting),
                };
                let sent = Instant::now();
                let ok = match http.get(&url).header("authorization", &tokens[user - 1]).send().await {
                    Ok(response) => response.status() == StatusCode::OK && response.bytes().await.is_ok(),
                    Err(_) => false,
                };
                if sent >= measure_from {
                    if ok {
                        histograms[kind as usize].saturating_record(sent.elapsed().as_micros() as u64);
                    } else {
                        errors += 1;
                    }
                }
            }
            Ok::<_, anyhow::Error>((histograms, errors))
        })
    });
    let results = futures::future::try_join_all(clients).await.context("a client task")?.into_iter().collect::<Result<Vec<_>>>()?;
    Round::merge(results, Duration::from_secs(args.seconds))
}

async fn crud_round(args: &Args, pool: &MySqlPool, history: &Arc<History>) -> Result<Round> {
    let start = Instant::now();
    let deadline = start + WARM_UP + Duration::from_secs(args.seconds);
    let clients = (0..args.clients).map(|client| {
        let (pool, history) = (pool.clone(), history.clone());
        tokio::spawn(async move {
            let mut histograms = new_histograms()?;
            let mut picker = Picker(0x9e37_79b9_7f4a_7c15 ^ (client as u64 + 1));
            let mut errors = 0;
            let mut n = client;
            while Instant::now() < deadline {
                let (kind, user, target) = pick(&history, &mut picker, n);
                n += 1;
                let user = user as i64;
                let sent = Instant::now();
                let rows = match kind {
                    Kind::List => {
                        sqlx::query(original_queries::CONVERSATIONS_SQL).bind(user).bind(user).bind(20).bind(0).fetch_all(&pool).await
                    }
                    Kind::Conversation => {
                        sqlx::query(original_queries::ONE_CONVERSATION_SQL).bind(&target).bind(user).fetch_all(&pool).await
                    }
                    Kind::Messages => sqlx::query(original_queries::MESSAGES_SQL).bind(&target).bind(50).bind(0).fetch_all(&pool).await,
                    Kind::Direct => {
                        let other: i64 = target.parse().unwrap_or(0);
                        sqlx::query(original_queries::DIRECT_SQL).bind(&history.posting).bind(user).bind(other).fetch_all(&pool).await
                    }
                };
                if sent >= start + WARM_UP {
                    match rows {
                        Ok(_) => histograms[kind as usize].saturating_record(sent.elapsed().as_micros() as u64),
                        Err(_) => errors += 1,
                    }
                }
            }
            Ok::<_, anyhow::Error>((histograms, errors))
        })
    });
    let results = futures::future::try_join_all(clients).await.context("a client task")?.into_iter().collect::<Result<Vec<_>>>()?;
    Round::merge(results, Duration::from_secs(args.seconds))
}
