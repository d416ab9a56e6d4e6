//! Dependency faults: MariaDB killed and restarted under load, NATS down for
//! a minute. Each test owns the server it breaks (never the shared ones) and
//! is bounded to a minute or two.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::mariadb_process::MariaDbProcess;
use common::nats_process::NatsProcess;
use common::ws::Subscriber;
use common::{spawn_app_on, spawn_app_with_nats, Answer, TestApp, NATS};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// The longest any request may take while a dependency is down.
const ANSWER_BOUND: Duration = Duration::from_secs(5);
/// Once the outage is known, requests that need the database answer within this.
const FAIL_FAST_BOUND: Duration = Duration::from_millis(500);

/// Where the load was when a request started and ended.
const HEALTHY: u8 = 0;
const DOWN: u8 = 1;
const RESTARTING: u8 = 2;
const RESTARTED: u8 = 3;

/// One send of the load.
#[derive(Debug)]
struct Sent {
    user: i64,
    key: String,
    content: String,
    started_in: u8,
    ended_in: u8,
    elapsed: Duration,
    answer: Answer,
}

/// Sends a message with an `Idempotency-Key`, bounded so that a hang is seen as one.
async fn send_keyed(app: &TestApp, conversation: &str, user: i64, key: &str, content: &str) -> (Duration, Answer) {
    let started = Instant::now();
    let token = app.token(user);
    let request = app.request(
        Method::POST,
        &format!("/api/v1/conversations/{conversation}/messages"),
        Some(&token),
        Some(json!({ "content": content })),
        &[("Idempotency-Key", key)],
    );
    let answer = tokio::time::timeout(Duration::from_secs(30), request).await.unwrap_or_else(|_| panic!("{key} hung for 30 s"));
    (started.elapsed(), answer)
}

fn assert_unavailable(what: &str, answer: &Answer) {
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE, "{what}: {:?}", answer.body);
    assert_eq!(answer.code(), "unavailable", "{what}: {:?}", answer.body);
    let content_type = answer.headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("");
    assert_eq!(content_type, "application/problem+json", "{what}");
    assert!(answer.headers.get("retry-after").is_some(), "{what} tells when to retry");
}

async fn readiness(app: &TestApp) -> (Duration, Answer) {
    let started = Instant::now();
    let answer =
        tokio::time::timeout(Duration::from_secs(30), app.request(Method::GET, "/readyz", None, None, &[])).await.expect("/readyz answers");
    (started.elapsed(), answer)
}

/// Polls `/readyz` until it answers 200, at most `timeout`.
async fn wait_ready(app: &TestApp, timeout: Duration) -> Answer {
    let deadline = Instant::now() + timeout;
    loop {
        let (_, ready) = readiness(app).await;
        if ready.status == StatusCode::OK || Instant::now() > deadline {
            return ready;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_killed_mid_load_fails_fast_then_recovers_with_nothing_half_applied() {
    let mut mariadb = MariaDbProcess::start().await;
    let app = Arc::new(spawn_app_on(&mariadb.url(), NATS).await);
    app.register_users(1..=4).await;
    let c = app.create_group(1, &[2, 3, 4]).await;
    let subscriber = Subscriber::connect(&app, 4, None).await;
    let mut frames = read_in_background(subscriber);

    // The load: senders in a loop, each send with its own key and content.
    let phase = Arc::new(AtomicU8::new(HEALTHY));
    let stop = Arc::new(AtomicBool::new(false));
    let mut senders = Vec::new();
    for task in 0..6_i64 {
        let (app, c, phase, stop) = (app.clone(), c.clone(), phase.clone(), stop.clone());
        senders.push(tokio::spawn(async move {
            let mut sent = Vec::new();
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) {
                let user = 1 + (task + i) % 4;
                let (key, content) = (format!("load-{task}-{i}"), format!("message {task}-{i}"));
                let started_in = phase.load(Ordering::SeqCst);
                let (elapsed, answer) = send_keyed(&app, &c, user, &key, &content).await;
                sent.push(Sent { user, key, content, started_in, ended_in: phase.load(Ordering::SeqCst), elapsed, answer });
                i += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            sent
        }));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;

    // MariaDB dies under load.
    mariadb.kill();
    phase.store(DOWN, Ordering::SeqCst);
    let outage = Instant::now();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (took, ready) = readiness(&app).await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE, "{:?}", ready.body);
    assert_eq!(ready.body["database"], "down");
    assert_eq!(ready.body["nats"], "up");
    assert!(took < ANSWER_BOUND, "/readyz took {took:?}");
    // The outage is known by now: requests fail at once, not after the pool's timeout.
    let started = Instant::now();
    let query = app.call(Method::GET, &format!("/conversations/{c}/messages"), 1, None).await;
    assert!(started.elapsed() < FAIL_FAST_BOUND, "a query took {:?}", started.elapsed());
    assert_unavailable("a query while the database is down", &query);
    let started = Instant::now();
    let list = app.call(Method::GET, "/conversations", 1, None).await;
    assert!(started.elapsed() < FAIL_FAST_BOUND, "a list took {:?}", started.elapsed());
    assert_unavailable("a list while the database is down", &list);
    let (took, send) = send_keyed(&app, &c, 1, "during-outage", "during the outage").await;
    assert!(took < FAIL_FAST_BOUND, "a send took {took:?}");
    assert_unavailable("a send while the database is down", &send);
    tokio::time::sleep(Duration::from_secs(8).saturating_sub(outage.elapsed())).await;

    // It comes back on the same port and data: the service recovers by itself.
    phase.store(RESTARTING, Ordering::SeqCst);
    mariadb.restart().await;
    phase.store(RESTARTED, Ordering::SeqCst);
    let restarted = Instant::now();
    let ready = wait_ready(&app, Duration::from_secs(15)).await;
    assert_eq!(ready.status, StatusCode::OK, "ready again after the restart: {:?}", ready.body);
    assert_eq!(ready.body["database"], "up");
    let recovered = loop {
        let probe = app.call(Method::POST, &format!("/conversations/{c}/messages"), 1, Some(json!({"content": "probe"}))).await;
        if probe.status == StatusCode::CREATED {
            break restarted.elapsed();
        }
        assert!(restarted.elapsed() < Duration::from_secs(15), "commands still fail after the restart: {:?}", probe.body);
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::SeqCst);
    let mut sent = Vec::new();
    for sender in senders {
        sent.extend(sender.await.expect("sender"));
    }

    // Every answer was quick, and either a success or 503 `unavailable`.
    let slowest = sent.iter().map(|s| s.elapsed).max().unwrap_or_default();
    assert!(slowest < ANSWER_BOUND, "a send took {slowest:?}");
    for s in &sent {
        if s.answer.status != StatusCode::CREATED {
            assert_unavailable(&format!("send {} (phase {} to {})", s.key, s.started_in, s.ended_in), &s.answer);
        }
    }
    let during: Vec<&Sent> = sent.iter().filter(|s| s.started_in == DOWN && s.ended_in == DOWN).collect();
    assert!(during.len() >= 6, "the load ran during the outage: {}", during.len());
    assert!(during.iter().all(|s| s.answer.status == StatusCode::SERVICE_UNAVAILABLE), "nothing succeeds while the database is down");
    assert!(sent.iter().any(|s| s.started_in == HEALTHY && s.answer.status == StatusCode::CREATED), "the load ran before");
    assert!(sent.iter().any(|s| s.started_in == RESTARTED && s.answer.status == StatusCode::CREATED), "the load ran after");

    // A refused send retried with its key is applied exactly once (or
    // answered from its first response, if that one committed after all).
    let mut message_ids: HashMap<String, String> = HashMap::new();
    for s in &sent {
        let answer = if s.answer.status == StatusCode::CREATED {
            &s.answer
        } else {
            let (_, retried) = send_keyed(&app, &c, s.user, &s.key, &s.content).await;
            assert_eq!(retried.status, StatusCode::CREATED, "retry of {}: {:?}", s.key, retried.body);
            message_ids.insert(s.content.clone(), retried.body["message_id"].as_str().expect("message_id").to_owned());
            continue;
        };
        message_ids.insert(s.content.clone(), answer.body["message_id"].as_str().expect("message_id").to_owned());
    }

    // The log holds each send exactly once, with the id it answered.
    let logged: Vec<(String, String)> = sqlx::query_as(
        "SELECT JSON_VALUE(data, '$.content'), JSON_VALUE(data, '$.message_id') FROM event_log \
         WHERE event_type = 'MessageSent' AND JSON_VALUE(data, '$.content') LIKE 'message %' ORDER BY position",
    )
    .fetch_all(&app.pool)
    .await
    .expect("log");
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for (content, message_id) in &logged {
        *counts.entry(content).or_default() += 1;
        assert_eq!(message_ids.get(content), Some(message_id), "{content} answered the logged id");
    }
    assert_eq!(logged.len(), sent.len(), "one event per send");
    assert!(counts.values().all(|&n| n == 1), "no send is applied twice");

    // Group commits were all-or-nothing: positions and stream versions are
    // dense, and everything written with the events is there.
    assert_log_is_whole(&app).await;

    // The projector, the hub and the publisher resumed.
    assert!(app.wait_projected(Duration::from_secs(30)).await, "the projector catches up");
    assert!(app.wait_published(Duration::from_secs(30)).await, "the publisher catches up");
    let published = app.consume_all(Duration::from_millis(700)).await;
    app.assert_published_exactly_once(&published).await;
    let live = app.read_model_rows().await;
    chat::projections::rebuild::rebuild(&app.pool, |_, _| {}).await.expect("rebuild");
    assert_eq!(app.read_model_rows().await, live, "the read models equal the log");

    let expected: Vec<String> =
        sqlx::query_scalar("SELECT JSON_VALUE(data, '$.message_id') FROM event_log WHERE event_type = 'MessageSent' ORDER BY position")
            .fetch_all(&app.pool)
            .await
            .expect("messages");
    let mut received = Vec::new();
    while received.len() < expected.len() {
        let frame = tokio::time::timeout(Duration::from_secs(10), frames.recv())
            .await
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!("{} of {} pushed", received.len(), expected.len()));
        assert!(frame.get("closed").is_none(), "the realtime connection survives the outage: {frame}");
        if frame["event"] == "message:new" {
            received.push(frame["data"]["id"].as_str().expect("id").to_owned());
        }
    }
    assert_eq!(received, expected, "every message pushed once, in order");
    eprintln!(
        "{} sends ({} during the outage), slowest {slowest:?}, commands accepted {recovered:?} after the restart",
        sent.len(),
        during.len()
    );
}

/// Positions are 1..=head, each stream's versions are 1..=its version, every
/// message has its lookup, and every idempotency key its stored response.
async fn assert_log_is_whole(app: &TestApp) {
    let (count, max, head): (i64, Option<u64>, u64) =
        sqlx::query_as("SELECT COUNT(*), MAX(position), (SELECT last_position FROM event_log_head) FROM event_log")
            .fetch_one(&app.pool)
            .await
            .expect("positions");
    assert_eq!((count as u64, max.unwrap_or(0)), (head, head), "positions are dense up to the head");
    let uneven: Vec<(String, i64, u32, Option<u32>)> = sqlx::query_as(
        "SELECT l.stream_id, COUNT(*), MAX(l.stream_version), s.version FROM event_log l \
         LEFT JOIN event_streams s ON s.stream_type = l.stream_type AND s.stream_id = l.stream_id \
         GROUP BY l.stream_type, l.stream_id, s.version HAVING COUNT(*) <> MAX(l.stream_version) OR s.version IS NULL OR s.version <> MAX(l.stream_version)",
    )
    .fetch_all(&app.pool)
    .await
    .expect("versions");
    assert!(uneven.is_empty(), "stream versions are dense and recorded: {uneven:?}");
    let without_lookup: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM event_log l WHERE l.event_type = 'MessageSent' AND NOT EXISTS \
         (SELECT 1 FROM stream_lookups k WHERE k.lookup_kind = 'message' AND k.lookup_key = JSON_VALUE(l.data, '$.message_id'))",
    )
    .fetch_one(&app.pool)
    .await
    .expect("lookups");
    assert_eq!(without_lookup, 0, "every message has its lookup");
    let unfinished: Vec<(String, Option<u16>)> = sqlx::query_as(
        "SELECT idempotency_key, response_status FROM idempotency_keys WHERE response_status IS NULL OR response_status <> 201",
    )
    .fetch_all(&app.pool)
    .await
    .expect("keys");
    assert!(unfinished.is_empty(), "every key holds its 201: {unfinished:?}");
    let keyed_events: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM event_log WHERE JSON_VALUE(metadata, '$.idempotency_key') IS NOT NULL")
            .fetch_one(&app.pool)
            .await
            .expect("keyed events");
    let keys: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM idempotency_keys").fetch_one(&app.pool).await.expect("keys");
    assert_eq!(keyed_events, keys, "one event per completed key");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_down_for_a_minute_commands_go_on_and_publication_catches_up_in_order() {
    let mut nats = NatsProcess::start().await;
    let app = spawn_app_with_nats(&nats.url()).await;
    app.register_users(1..=3).await;
    let c = app.create_group(1, &[2, 3]).await;
    let mut subscriber = Subscriber::connect(&app, 3, None).await;
    let mut sent = Vec::new();
    for i in 0..10 {
        sent.push(app.send(1 + i % 2, &c, &format!("before {i}")).await);
    }
    assert!(app.wait_published(Duration::from_secs(10)).await);
    let mut pushed = Vec::new();
    collect_pushes(&mut subscriber, &mut pushed, sent.len(), Duration::from_secs(10)).await;

    nats.stop();
    let outage = Instant::now();
    // A send every half second; meanwhile the subscriber's frames are read
    // and each push timed from its command's answer.
    let mut answered: HashMap<String, Instant> = HashMap::new();
    let mut push_delays = Vec::new();
    let mut next_send = Instant::now();
    let mut i = 0;
    while outage.elapsed() < Duration::from_secs(60) {
        if Instant::now() >= next_send {
            let started = Instant::now();
            let answer = app
                .call(Method::POST, &format!("/conversations/{c}/messages"), 1 + i % 2, Some(json!({"content": format!("during {i}")})))
                .await;
            assert!(started.elapsed() < ANSWER_BOUND, "a command took {:?}", started.elapsed());
            assert_eq!(answer.status, StatusCode::CREATED, "commands are accepted while NATS is down: {:?}", answer.body);
            let id = answer.body["message_id"].as_str().expect("message_id").to_owned();
            answered.insert(id.clone(), Instant::now());
            sent.push(id);
            if i % 10 == 0 {
                let (took, ready) = readiness(&app).await;
                assert!(took < ANSWER_BOUND, "/readyz took {took:?}");
                assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE, "{:?}", ready.body);
                assert_eq!((&ready.body["nats"], &ready.body["database"]), (&json!("down"), &json!("up")), "{:?}", ready.body);
                assert!(ready.body["publication_lag"]["events"].as_u64().unwrap_or(0) > 0, "nothing is published meanwhile");
            }
            i += 1;
            next_send += Duration::from_millis(500);
        }
        if let Some(frame) = subscriber.next(next_send.saturating_duration_since(Instant::now())).await {
            assert!(frame.get("closed").is_none(), "the realtime connection stays open: {frame}");
            if frame["event"] == "message:new" {
                let id = frame["data"]["id"].as_str().expect("id").to_owned();
                push_delays.push(answered.get(&id).map(Instant::elapsed).unwrap_or_default());
                pushed.push(id);
            }
        }
    }
    let during = pushed.len();
    collect_pushes(&mut subscriber, &mut pushed, sent.len(), Duration::from_secs(10)).await;
    push_delays.extend(sent[during..].iter().map(|id| answered[id].elapsed()));
    assert_eq!(pushed, sent, "pushed during the outage, in order");
    assert!(!app.wait_published(Duration::from_millis(100)).await, "nothing could be published");
    // The projector reads the event log while JetStream is silent: pushes
    // follow promptly, not at the pace of JetStream's request timeouts.
    push_delays.sort();
    let (p90, slowest) = (push_delays[push_delays.len() * 9 / 10], push_delays[push_delays.len() - 1]);
    assert!(p90 < Duration::from_secs(2), "90% of pushes within 2 s of the answer during the outage, not {p90:?}");

    nats.restart().await;
    let ready = wait_ready(&app, Duration::from_secs(20)).await;
    assert_eq!(ready.status, StatusCode::OK, "ready when NATS is back: {:?}", ready.body);
    assert_eq!(ready.body["nats"], "up");
    for i in 0..5 {
        sent.push(app.send(1 + i % 2, &c, &format!("after {i}")).await);
    }
    assert!(app.wait_published(Duration::from_secs(30)).await, "publication catches up when NATS returns");
    let published = app.consume_all(Duration::from_millis(700)).await;
    app.assert_published_exactly_once(&published).await;
    assert_eq!(published.len(), 3 + 1 + sent.len(), "3 users, 1 conversation, the messages");
    collect_pushes(&mut subscriber, &mut pushed, sent.len(), Duration::from_secs(10)).await;
    assert_eq!(pushed, sent, "every message pushed once, in order");
    subscriber.expect_silence(Duration::from_millis(500)).await;
    eprintln!("{i} sends during the outage; answer to push: p90 {p90:?}, slowest {slowest:?}");
}

/// Reads `message:new` frames into `pushed` until it holds `count` ids.
/// Reads `subscriber`'s frames as they come, as a live client does (one
/// left unread for the whole load would be dropped as a slow consumer once
/// its queue of 64 frames fills), until its connection closes.
fn read_in_background(mut subscriber: Subscriber) -> tokio::sync::mpsc::UnboundedReceiver<serde_json::Value> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(frame) = subscriber.next(Duration::from_secs(120)).await {
            let closed = frame.get("closed").is_some();
            if tx.send(frame).is_err() || closed {
                break;
            }
        }
    });
    rx
}

async fn collect_pushes(subscriber: &mut Subscriber, pushed: &mut Vec<String>, count: usize, timeout: Duration) {
    let deadline = tokio::time::Instant::now() + timeout;
    while pushed.len() < count {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let frame: Value =
            subscriber.next(left).await.unwrap_or_else(|| panic!("only {} of {count} messages pushed within {timeout:?}", pushed.len()));
        assert!(frame.get("closed").is_none(), "the realtime connection stays open: {frame}");
        if frame["event"] == "message:new" {
            pushed.push(frame["data"]["id"].as_str().expect("id").to_owned());
        }
    }
}
