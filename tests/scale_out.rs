//! Scale-out on one machine: three API processes (each also a candidate
//! publisher: one publishes at a time), the projector in two processes of
//! its own (one leads, the other stands by), and a three-node NATS JetStream
//! cluster holding the stream in three replicas. Clients spread their sends
//! over the API processes (retrying on the next one, with the same
//! `Idempotency-Key`) and each WebSocket follower starts on its own API
//! process. Under load, SIGKILL in turn: an API process, the leading
//! projector, and the NATS node that leads the stream. Afterwards:
//!
//! * every acknowledged send is in the event log exactly once, none twice;
//! * the JetStream stream holds every event exactly once, in order;
//! * the read models equal a rebuild from the log;
//! * every follower (those of the killed process resumed on another with
//!   `after_position`) received every event of its conversations once, in order;
//!
//! and it prints the pause each kill caused. `SCALE_OUT_SECONDS` makes the
//! load longer (CI runs the short default).

mod common;

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::load::{check_followers, follow, outcomes, read_log, Acked, SendLoad};
use common::nats_cluster::NatsCluster;
use common::server_process::ServerProcess;
use common::TestApp;
use tokio_util::sync::CancellationToken;

const USERS: i64 = 30;
const GROUPS: i64 = 6;
const GROUP_SIZE: i64 = 10;
/// Sends started per second (open loop).
const RATE: u64 = 100;
const MAX_IN_FLIGHT: usize = 64;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// A key reserved by a killed process is taken over after 30 s.
const RETRY_FOR_AFTER_LAST_KILL: Duration = Duration::from_secs(45);
/// Users whose WebSocket follows the run, user i starting on API process i.
const FOLLOWERS: [i64; 3] = [1, 2, 3];

fn free_base() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port");
    format!("http://127.0.0.1:{port}")
}

/// The position the read models had reached, sampled over time.
#[derive(Clone, Copy)]
struct Sample {
    at: Duration,
    applied: u64,
}

async fn sample(pool: &sqlx::MySqlPool, since: Instant) -> Option<Sample> {
    let applied: Option<u64> =
        sqlx::query_scalar("SELECT position FROM projection_checkpoints WHERE name = 'read_models'").fetch_optional(pool).await.ok()?;
    Some(Sample { at: since.elapsed(), applied: applied.unwrap_or(0) })
}

/// How long after `at` the value first moved past what it was at `at`.
fn pause(samples: &[Sample], at: Duration, value: impl Fn(&Sample) -> u64) -> Option<Duration> {
    let before = samples.iter().rev().find(|s| s.at <= at).map(&value)?;
    samples.iter().find(|s| s.at > at && value(s) > before).map(|s| s.at - at)
}

/// The longest an event recorded in `[at, at + window]` (times since `since`,
/// the log's clock) waited to be stored in JetStream.
fn longest_publication_wait(
    published: &[common::Published],
    recorded: &HashMap<u64, chrono::DateTime<chrono::Utc>>,
    since: chrono::DateTime<chrono::Utc>,
    at: Duration,
    window: Duration,
) -> Duration {
    let (from, to) = (since + at, since + at + window);
    published
        .iter()
        .filter_map(|p| Some((recorded.get(&p.position)?, p.stored_at?)))
        .filter(|(recorded, _)| **recorded >= from && **recorded <= to)
        .map(|(recorded, stored)| (stored - *recorded).to_std().unwrap_or_default())
        .max()
        .unwrap_or_default()
}

/// The longest time without an acknowledged send in `[at, at + window]`.
fn longest_ack_gap(acked: &[Acked], since: Instant, at: Duration, window: Duration) -> Duration {
    let mut times: Vec<Duration> = acked.iter().map(|a| a.answered_at - since).filter(|t| *t >= at && *t <= at + window).collect();
    times.sort();
    let mut previous = at;
    let mut longest = Duration::ZERO;
    for t in times {
        longest = longest.max(t - previous);
        previous = t;
    }
    longest
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_api_processes_a_standby_projector_and_a_nats_cluster_survive_kills() {
    let load_for = Duration::from_secs(std::env::var("SCALE_OUT_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(24));
    let (kill_api_at, kill_projector_at, kill_nats_at) = (load_for / 4, load_for / 2, load_for * 3 / 4);
    let started = Instant::now();
    let mut cluster = NatsCluster::start().await;
    // Declared before the processes, so dropped after them.
    let mut app = TestApp::for_process("scale").await;
    app.nats_url = cluster.urls_from(0);
    let replicated = [("CHAT_NATS_REPLICAS", "3".to_owned())];
    let bases: Vec<String> = (0..3).map(|_| free_base()).collect();
    let mut apis = Vec::new();
    for (i, base) in bases.iter().enumerate() {
        apis.push(ServerProcess::start_with(&app, base, &["api", "publisher"], &cluster.urls_from(i), &replicated).await);
    }
    app.base = bases[1].clone();
    let leading_projector = ServerProcess::start_with(&app, &free_base(), &["projector"], &cluster.urls_from(0), &replicated).await;
    let leader_lock: Option<i64> =
        sqlx::query_scalar("SELECT IS_USED_LOCK(CONCAT('chat-projections:', DATABASE()))").fetch_one(&app.pool).await.expect("lock");
    assert!(leader_lock.is_some(), "the first projector process leads");
    let mut projectors = vec![leading_projector];
    projectors.push(ServerProcess::start_with(&app, &free_base(), &["projector"], &cluster.urls_from(1), &replicated).await);

    let groups = common::load::set_up_groups(&app, USERS, GROUPS, GROUP_SIZE).await;
    let conversations_of = |user: i64| common::load::conversations_of(&groups, user);

    let stop_followers = CancellationToken::new();
    let followers: Vec<_> = FOLLOWERS
        .iter()
        .enumerate()
        .map(|(i, &user)| {
            let seen = Arc::new(AtomicU64::new(0));
            let own_first: Vec<String> = (0..3).map(|k| bases[(i + k) % 3].clone()).collect();
            let task = tokio::spawn(follow(own_first, app.token(user), seen.clone(), stop_followers.clone()));
            (user, seen, task)
        })
        .collect();

    let give_up = Arc::new(Mutex::new(None));
    let load_started = Instant::now();
    let load_started_wall = chrono::Utc::now();
    let generator = SendLoad {
        groups: groups.clone(),
        bases: bases.clone(),
        tokens: (1..=USERS).map(|u| (u, app.token(u))).collect(),
        rate: RATE,
        duration: load_for,
        prefix: "scale",
        max_in_flight: MAX_IN_FLIGHT,
        request_timeout: REQUEST_TIMEOUT,
    }
    .start(give_up.clone());
    let samples = Arc::new(Mutex::new(Vec::new()));
    let sampler = {
        let (samples, pool, stop) = (samples.clone(), app.pool.clone(), stop_followers.clone());
        tokio::spawn(async move {
            while !stop.is_cancelled() {
                if let Some(s) = sample(&pool, load_started).await {
                    samples.lock().unwrap().push(s);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };

    // The kills, in turn: an API process, the leading projector, the stream's leading NATS node.
    tokio::time::sleep(kill_api_at.saturating_sub(load_started.elapsed())).await;
    apis[0].kill();
    let api_killed = load_started.elapsed();
    tokio::time::sleep(kill_projector_at.saturating_sub(load_started.elapsed())).await;
    projectors[0].kill();
    let projector_killed = load_started.elapsed();
    tokio::time::sleep(kill_nats_at.saturating_sub(load_started.elapsed())).await;
    let leader = stream_leader(&app).await;
    let nats_node: usize = leader.trim_start_matches('n').parse::<usize>().expect("node name") - 1;
    cluster.kill(nats_node);
    let nats_killed = load_started.elapsed();
    *give_up.lock().unwrap() = Some(Instant::now() + RETRY_FOR_AFTER_LAST_KILL);

    let tasks = generator.await.unwrap();
    let issued = tasks.len();
    let (acked, unanswered, refused) = outcomes(tasks).await;
    assert!(refused.is_empty(), "sends refused for good: {:?}", &refused[..refused.len().min(5)]);
    assert!(unanswered.is_empty(), "{} sends never answered, e.g. {:?}", unanswered.len(), &unanswered[..unanswered.len().min(3)]);
    assert!(app.wait_published(Duration::from_secs(60)).await, "the publisher caught up on the two NATS nodes left");
    assert!(app.wait_projected(Duration::from_secs(60)).await, "the standby projector caught up");

    // 1. The event log: every acknowledged send exactly once.
    let log = read_log(&app).await;
    let sent: Vec<_> = log.iter().filter(|e| e.event_type == "MessageSent").collect();
    let mut by_key: HashMap<&str, usize> = HashMap::new();
    for event in &sent {
        *by_key.entry(event.metadata["idempotency_key"].as_str().expect("a key")).or_default() += 1;
    }
    for a in &acked {
        assert_eq!(by_key.get(a.key.as_str()), Some(&1), "{} is in the log exactly once", a.key);
    }
    assert_eq!(sent.len(), acked.len(), "no send in the log that was not acknowledged, none twice");

    // 2. JetStream (R3, one node down): each event exactly once, in order.
    let published = app.consume_all(Duration::from_secs(3)).await;
    app.assert_published_exactly_once(&published).await;
    let recorded: HashMap<u64, chrono::DateTime<chrono::Utc>> =
        sqlx::query_as("SELECT position, recorded_at FROM event_log").fetch_all(&app.pool).await.expect("log times").into_iter().collect();

    // 3. Followers: every event of their conversations once, in order, through the kills.
    let connections = check_followers(followers, &log, conversations_of, &stop_followers).await;
    let _ = sampler.await;
    assert!(connections[0] >= 2, "the follower of the killed API process resumed on another ({connections:?})");

    // 4. The read models equal a rebuild from the log.
    let live = app.read_model_rows().await;
    for projector in &mut projectors {
        projector.kill();
    }
    chat::projections::rebuild::rebuild(&app.pool, |_, _| {}).await.expect("rebuild");
    assert!(app.read_model_rows().await == live, "the read models equal a rebuild from the log");

    let samples = samples.lock().unwrap().clone();
    let window = Duration::from_secs(3);
    eprintln!(
        "scale-out: {issued} sends issued, {} acknowledged ({} after a retry), {} events; \
         API process killed at {api_killed:.1?}: longest gap between acknowledged sends {:.0?}, events waited at most {:.0?} for JetStream; \
         projector killed at {projector_killed:.1?}: read models moved again after {:?}; \
         NATS node {leader} (stream leader) killed at {nats_killed:.1?}: events waited at most {:.0?} for JetStream, \
         longest gap between acknowledged sends {:.0?}; follower connections {connections:?}; total {:.1} s",
        acked.len(),
        acked.iter().filter(|a| a.attempts > 1).count(),
        log.len(),
        longest_ack_gap(&acked, load_started, api_killed, window),
        longest_publication_wait(&published, &recorded, load_started_wall, api_killed.saturating_sub(window), 2 * window),
        pause(&samples, projector_killed, |s| s.applied),
        longest_publication_wait(&published, &recorded, load_started_wall, nats_killed.saturating_sub(window), 2 * window),
        longest_ack_gap(&acked, load_started, nats_killed, window),
        started.elapsed().as_secs_f64()
    );
    if std::env::var_os("SCALE_OUT_LOGS").is_some() {
        for (i, api) in apis.iter().enumerate() {
            eprintln!("--- API process {i}:\n{}", api.log_tail(60));
        }
    }
    drop(apis);
}

/// The name of the NATS node that leads the stream's replicas.
async fn stream_leader(app: &TestApp) -> String {
    let client = async_nats::connect(app.nats_url.split(',').collect::<Vec<_>>()).await.expect("nats");
    let js = async_nats::jetstream::new(client);
    let mut stream = js.get_stream(&app.stream).await.expect("the stream exists");
    let info = stream.info().await.expect("stream info");
    assert_eq!(info.config.num_replicas, 3, "the stream is replicated on the three nodes");
    info.cluster.as_ref().and_then(|c| c.leader.clone()).expect("the stream has a leader")
}
