//! Resume, strictly, while another user keeps sending: on every reconnect
//! with `after_position=N`, the events missed since N come first, in order,
//! then `ready` (at or past the log's head when the client connected), then
//! only live events after it; together, exactly the conversation's events
//! after N, each once. 50 reconnects in a row, over WebSocket and over
//! Socket.IO with the official client.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::js_client::JsClient;
use common::ws::Subscriber;
use common::{spawn_app, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::json;

const RUNS: usize = 50;

/// The sends accepted so far: message id → position.
type Sent = Arc<Mutex<HashMap<String, u64>>>;

/// What one connection received.
#[derive(Debug)]
struct Run {
    after: u64,
    /// The log's head just before the client connected.
    head_before: u64,
    replayed: Vec<u64>,
    ready: u64,
    live: Vec<u64>,
}

impl Run {
    /// The position the client resumes from next: the last one it saw.
    fn last_seen(&self) -> u64 {
        self.live.last().copied().unwrap_or(self.ready).max(self.ready)
    }
}

/// Sends to `conversation` as user 1 (and to `other`, which the subscriber
/// is not in) until `stop`; records every accepted send.
fn start_sender(app: &TestApp, conversation: String, other: String, stop: Arc<AtomicBool>) -> (Sent, tokio::task::JoinHandle<()>) {
    let sent: Sent = Arc::default();
    let (client, base, token, record) = (app.client.clone(), app.base.clone(), app.token(1), sent.clone());
    let task = tokio::spawn(async move {
        let mut i = 0u64;
        while !stop.load(Ordering::Relaxed) {
            i += 1;
            let target = if i % 3 == 0 { &other } else { &conversation };
            let answer = client
                .post(format!("{base}/api/v1/conversations/{target}/messages"))
                .bearer_auth(&token)
                .json(&json!({"content": format!("m{i}")}))
                .send()
                .await
                .expect("send");
            assert_eq!(answer.status(), StatusCode::CREATED);
            let body: serde_json::Value = answer.json().await.expect("answer");
            if target == &conversation {
                let id = body["message_id"].as_str().expect("message id").to_owned();
                record.lock().unwrap().insert(id, body["position"].as_u64().expect("position"));
            }
            tokio::time::sleep(Duration::from_millis(4)).await;
        }
    });
    (sent, task)
}

async fn head(app: &TestApp) -> u64 {
    sqlx::query_scalar("SELECT last_position FROM event_log_head WHERE id = 1").fetch_one(&app.pool).await.expect("head")
}

/// Checks every run against the accepted sends (all recorded by now).
fn verify(runs: &[Run], sent: &HashMap<String, u64>) {
    let mut positions: Vec<u64> = sent.values().copied().collect();
    positions.sort();
    let mut reconnects_with_a_replay = 0;
    for (i, run) in runs.iter().enumerate() {
        assert!(run.ready >= run.head_before, "run {i}: ready {} before the head at connect time {}: {run:?}", run.ready, run.head_before);
        assert!(run.replayed.windows(2).all(|w| w[0] < w[1]), "run {i}: replay out of order: {run:?}");
        assert!(
            run.replayed.iter().all(|p| *p > run.after && *p <= run.ready),
            "run {i}: a replayed event outside (after, ready]: {run:?}"
        );
        assert!(run.live.windows(2).all(|w| w[0] < w[1]), "run {i}: live events out of order: {run:?}");
        assert!(run.live.iter().all(|p| *p > run.ready), "run {i}: a live event at or before ready: {run:?}");
        let received: Vec<u64> = run.replayed.iter().chain(&run.live).copied().collect();
        let expected: Vec<u64> = positions.iter().copied().filter(|p| *p > run.after && *p <= run.last_seen()).collect();
        assert_eq!(received, expected, "run {i}: exactly the events after {}, once each: {run:?}", run.after);
        reconnects_with_a_replay += usize::from(!run.replayed.is_empty());
    }
    assert!(reconnects_with_a_replay > RUNS / 2, "most reconnects had missed events to replay ({reconnects_with_a_replay})");
}

async fn conversation_and_noise(app: &TestApp) -> (String, String) {
    app.register_users(1..=2).await;
    let c = app.create_group(1, &[2]).await;
    let other = app.create_group(1, &[]).await;
    assert!(app.wait_projected(Duration::from_secs(10)).await);
    (c, other)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_resume_is_strict_fifty_times_in_a_row_under_a_concurrent_sender() {
    let app = spawn_app().await;
    let (c, other) = conversation_and_noise(&app).await;
    let mut after = head(&app).await;
    let stop = Arc::new(AtomicBool::new(false));
    let (sent, sender) = start_sender(&app, c.clone(), other, stop.clone());
    let mut runs = Vec::new();
    for i in 0..RUNS {
        // Offline for a while: the sender goes on.
        tokio::time::sleep(Duration::from_millis(20 + (i as u64 % 5) * 10)).await;
        let head_before = head(&app).await;
        let mut bob = Subscriber::connect(&app, 2, Some(after)).await;
        let replayed = bob.replayed.iter().map(|f| f["position"].as_u64().expect("position")).collect();
        let mut run = Run { after, head_before, replayed, ready: bob.ready_at, live: Vec::new() };
        // A few live events, then away again.
        while run.live.len() < 3 {
            let frame = bob.next(Duration::from_secs(5)).await.expect("live events keep coming");
            assert_eq!(frame["event"], "message:new", "{frame}");
            run.live.push(frame["position"].as_u64().expect("position"));
        }
        after = run.last_seen();
        runs.push(run);
        bob.close().await;
    }
    stop.store(true, Ordering::Relaxed);
    sender.await.expect("sender");
    verify(&runs, &sent.lock().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socket_io_resume_is_strict_fifty_times_in_a_row_under_a_concurrent_sender() {
    let app = spawn_app().await;
    let (c, other) = conversation_and_noise(&app).await;
    let mut after = head(&app).await;
    let stop = Arc::new(AtomicBool::new(false));
    let (sent, sender) = start_sender(&app, c.clone(), other, stop.clone());
    let token = app.token(2);
    // Socket.IO events carry no position: a message's comes from its send's answer.
    let position_of = |id: &str| {
        let sent = sent.clone();
        let id = id.to_owned();
        async move {
            for _ in 0..200 {
                if let Some(position) = sent.lock().unwrap().get(&id) {
                    return *position;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            panic!("message {id} was never answered to its sender");
        }
    };
    let mut runs = Vec::new();
    for i in 0..RUNS {
        tokio::time::sleep(Duration::from_millis(10 + (i as u64 % 5) * 10)).await;
        let head_before = head(&app).await;
        let mut bob = JsClient::connect(&app, &token, Some(after)).await;
        let mut run = Run { after, head_before, replayed: Vec::new(), ready: 0, live: Vec::new() };
        for event in bob.until("ready").await {
            match event["event"].as_str() {
                Some("ready") => run.ready = event["data"]["position"].as_u64().expect("ready position"),
                Some("message:new") => run.replayed.push(position_of(event["data"]["id"].as_str().expect("id")).await),
                _ => panic!("unexpected before ready: {event}"),
            }
        }
        while run.live.len() < 2 {
            let event = bob.next(Duration::from_secs(5)).await.expect("live events keep coming");
            assert_eq!(event["event"], "message:new", "{event}");
            run.live.push(position_of(event["data"]["id"].as_str().expect("id")).await);
        }
        after = run.last_seen();
        runs.push(run);
    }
    stop.store(true, Ordering::Relaxed);
    sender.await.expect("sender");
    verify(&runs, &sent.lock().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_position_past_the_head_is_refused() {
    let app = spawn_app().await;
    app.register_users([2]).await;
    let base = app.base.replacen("http://", "ws://", 1);
    let url = format!("{base}/api/v1/ws?token={}&after_position={}", app.token(2), head(&app).await + 1000);
    match tokio_tungstenite::connect_async(url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => assert_eq!(response.status(), 422),
        other => panic!("expected 422, got {other:?}"),
    }
    let answer = app.call(Method::GET, "/conversations", 2, None).await;
    assert_eq!(answer.status, StatusCode::OK);
}
