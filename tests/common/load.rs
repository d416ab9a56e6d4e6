//! A client load for the crash and scale-out tests: sends with idempotency
//! keys retried until answered, WebSocket followers that resume with
//! `after_position`, and the event log as the audit reads it.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use super::TestApp;

/// A small deterministic generator (xorshift64*), seeded per run.
pub struct Rng(pub u64);

impl Rng {
    pub fn seeded() -> Self {
        Self((uuid::Uuid::new_v4().as_u128() as u64) | 1)
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A send the server acknowledged (2xx).
#[derive(Debug, Clone)]
pub struct Acked {
    pub key: String,
    pub conversation: String,
    pub content: String,
    pub message_id: String,
    pub position: u64,
    pub attempts: u32,
    pub replayed: bool,
    /// When the answer came.
    pub answered_at: Instant,
    /// Which of the bases answered it.
    pub answered_by: usize,
}

/// How a send ended for its client (fields are read through `Debug` in failure messages).
#[derive(Debug)]
#[allow(dead_code)]
pub enum Outcome {
    Acked(Acked),
    /// Never answered 2xx before the client gave up.
    Unanswered {
        key: String,
        content: String,
        last: String,
    },
    /// Answered with a status a retry cannot change (a bug in this test or the server).
    Refused {
        key: String,
        status: StatusCode,
        body: String,
    },
}

/// POST one message with its key until a 2xx, a definitive refusal, or `give_up` (read when a retry is due).
///
/// Each attempt goes to the next of `bases` (a client behind a load
/// balancer), starting with `bases[first]`; `path` is the conversation's
/// messages path under `/api/v1`.
#[allow(clippy::too_many_arguments)]
pub async fn send_until_answered(
    client: reqwest::Client,
    bases: Arc<Vec<String>>,
    first: usize,
    path: String,
    token: String,
    key: String,
    content: String,
    give_up: Arc<Mutex<Option<Instant>>>,
    permit: tokio::sync::OwnedSemaphorePermit,
) -> Outcome {
    let body = json!({ "content": content }).to_string();
    let mut permit = Some(permit);
    let mut attempts = 0;
    loop {
        let answered_by = (first + attempts as usize) % bases.len();
        let url = format!("{}/api/v1{path}", bases[answered_by]);
        attempts += 1;
        let sent = client
            .post(&url)
            .bearer_auth(&token)
            .header("idempotency-key", &key)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await;
        let last = match sent {
            Ok(response) => {
                let status = response.status();
                let replayed = response.headers().contains_key("idempotent-replayed");
                match response.text().await {
                    Ok(text) if status.is_success() => {
                        let answer: Value = serde_json::from_str(&text).expect("JSON answer");
                        return Outcome::Acked(Acked {
                            key,
                            conversation: url.rsplit('/').nth(1).expect("conversation in path").to_owned(),
                            content,
                            message_id: answer["message_id"].as_str().expect("message_id").to_owned(),
                            position: answer["position"].as_u64().expect("position"),
                            attempts,
                            replayed,
                            answered_at: Instant::now(),
                            answered_by,
                        });
                    }
                    Ok(text) => {
                        let retryable = status.is_server_error()
                            || status == StatusCode::TOO_MANY_REQUESTS
                            || (status == StatusCode::CONFLICT && text.contains("idempotency_in_progress"));
                        if !retryable {
                            return Outcome::Refused { key, status, body: text };
                        }
                        format!("{status} {text}")
                    }
                    Err(error) => format!("{status}, body lost: {error}"),
                }
            }
            Err(error) => format!("{error}"),
        };
        // Only first attempts count against the in-flight bound.
        permit.take();
        let deadline = *give_up.lock().unwrap();
        if deadline.is_some_and(|d| Instant::now() > d) {
            return Outcome::Unanswered { key, content, last };
        }
        tokio::time::sleep(Duration::from_millis(150 + (attempts as u64 % 4) * 50)).await;
    }
}

/// A WebSocket client that follows `user`'s events from position 0 and, each
/// time the connection ends (a crash), reconnects with `after_position` = the
/// last position it saw, to the next of `bases` (the first is `bases[0]`).
/// Returns its frames (without `ready`) and how many connections it made.
pub async fn follow(bases: Vec<String>, token: String, seen: Arc<AtomicU64>, stop: CancellationToken) -> (Vec<Value>, u32) {
    let mut frames = Vec::new();
    let mut connections = 0;
    let mut attempt = 0;
    while !stop.is_cancelled() {
        let ws_base = bases[attempt % bases.len()].replacen("http://", "ws://", 1);
        attempt += 1;
        let last = seen.load(Ordering::SeqCst);
        let url = format!("{ws_base}/api/v1/ws?token={token}&after_position={last}");
        let Ok(Ok((mut socket, _))) = tokio::time::timeout(Duration::from_secs(5), tokio_tungstenite::connect_async(url)).await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
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
                    let frame: Value = serde_json::from_str(text.as_str()).expect("JSON frame");
                    // Typing and presence are not events of the log: this audit is about the log's.
                    let ephemeral = frame["event"] == "presence" || frame["event"] == "typing";
                    if frame["event"] != "ready" && !ephemeral {
                        seen.store(frame["position"].as_u64().expect("frame position"), Ordering::SeqCst);
                        frames.push(frame);
                    }
                }
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                Some(Ok(_)) => {}
            }
        }
    }
    (frames, connections)
}

/// One event of the log, as the audit reads it.
pub struct LoggedEvent {
    pub position: u64,
    pub stream_id: String,
    pub event_type: String,
    pub data: Value,
    pub metadata: Value,
}

pub async fn read_log(app: &TestApp) -> Vec<LoggedEvent> {
    let rows: Vec<(u64, String, String, String, String)> = sqlx::query_as(
        "SELECT position, stream_id, event_type, CAST(data AS CHAR), CAST(metadata AS CHAR) FROM event_log ORDER BY position",
    )
    .fetch_all(&app.pool)
    .await
    .expect("event log");
    rows.into_iter()
        .map(|(position, stream_id, event_type, data, metadata)| LoggedEvent {
            position,
            stream_id,
            event_type,
            data: serde_json::from_str(&data).expect("data JSON"),
            metadata: serde_json::from_str(&metadata).expect("metadata JSON"),
        })
        .collect()
}

/// The frames `user` must receive: (position, event, message id for `message:new`),
/// for every event of the conversations they are in (all joined at creation here).
pub fn expected_frames(log: &[LoggedEvent], conversations: &HashSet<String>) -> Vec<(u64, String, Option<String>)> {
    log.iter()
        .filter(|e| conversations.contains(&e.stream_id))
        .map(|e| match e.event_type.as_str() {
            "ConversationCreated" => (e.position, "conversation:created".to_owned(), None),
            "MessageSent" => (e.position, "message:new".to_owned(), e.data["message_id"].as_str().map(str::to_owned)),
            other => panic!("this test sends no {other}"),
        })
        .collect()
}

pub fn received(frames: &[Value]) -> Vec<(u64, String, Option<String>)> {
    frames
        .iter()
        .map(|f| {
            let id = (f["event"] == "message:new").then(|| f["data"]["id"].as_str().expect("message id").to_owned());
            (f["position"].as_u64().expect("position"), f["event"].as_str().expect("event").to_owned(), id)
        })
        .collect()
}

/// An open-loop load of sends: `rate` a second for `duration`, each by a
/// random member of a random group, with its own key `{prefix}-{n}`, its
/// first attempt on `bases[n % bases.len()]`.
pub struct SendLoad {
    pub groups: Vec<(String, Vec<i64>)>,
    pub bases: Vec<String>,
    pub tokens: HashMap<i64, String>,
    pub rate: u64,
    pub duration: Duration,
    pub prefix: &'static str,
    /// First attempts in flight at most (retries are not counted).
    pub max_in_flight: usize,
    pub request_timeout: Duration,
}

impl SendLoad {
    /// Starts issuing sends; the task answers every send's own task once the
    /// load's duration is over. Clients give up retrying at `give_up`.
    pub fn start(self, give_up: Arc<Mutex<Option<Instant>>>) -> JoinHandle<Vec<JoinHandle<Outcome>>> {
        let client =
            reqwest::Client::builder().timeout(self.request_timeout).pool_max_idle_per_host(self.max_in_flight).build().expect("client");
        let in_flight = Arc::new(Semaphore::new(self.max_in_flight));
        let bases = Arc::new(self.bases);
        let mut rng = Rng::seeded();
        tokio::spawn(async move {
            let mut tasks = Vec::new();
            let started = Instant::now();
            let mut ticker = tokio::time::interval(Duration::from_millis(20));
            while started.elapsed() < self.duration {
                ticker.tick().await;
                for _ in 0..self.rate / 50 {
                    let permit = in_flight.clone().acquire_owned().await.expect("semaphore");
                    let (conversation, members) = &self.groups[rng.below(self.groups.len() as u64) as usize];
                    let user = members[rng.below(members.len() as u64) as usize];
                    let n = tasks.len();
                    tasks.push(tokio::spawn(send_until_answered(
                        client.clone(),
                        bases.clone(),
                        n % bases.len(),
                        format!("/conversations/{conversation}/messages"),
                        self.tokens[&user].clone(),
                        format!("{}-{n}", self.prefix),
                        format!("{} message {n} from {user}", self.prefix),
                        give_up.clone(),
                        permit,
                    )));
                }
            }
            tasks
        })
    }
}

/// Every send's outcome, sorted: acknowledged, never answered, refused for good.
pub async fn outcomes(tasks: Vec<JoinHandle<Outcome>>) -> (Vec<Acked>, Vec<Outcome>, Vec<Outcome>) {
    let (mut acked, mut unanswered, mut refused) = (Vec::new(), Vec::new(), Vec::new());
    for task in tasks {
        match task.await.expect("a send task") {
            Outcome::Acked(a) => acked.push(a),
            u @ Outcome::Unanswered { .. } => unanswered.push(u),
            r @ Outcome::Refused { .. } => refused.push(r),
        }
    }
    (acked, unanswered, refused)
}

/// A following user, the last position it saw, and its `follow` task.
pub type Follower = (i64, Arc<AtomicU64>, JoinHandle<(Vec<Value>, u32)>);

/// Waits (up to 30 s) until each follower has seen the last event of its
/// conversations, stops them, and checks that each received every event of
/// its conversations once, in order. Answers each one's connection count.
pub async fn check_followers(
    followers: Vec<Follower>,
    log: &[LoggedEvent],
    conversations_of: impl Fn(i64) -> HashSet<String>,
    stop: &CancellationToken,
) -> Vec<u32> {
    let waited = Instant::now();
    for (user, seen, _) in &followers {
        let target = expected_frames(log, &conversations_of(*user)).last().map(|f| f.0).unwrap_or(0);
        while seen.load(Ordering::SeqCst) < target && waited.elapsed() < Duration::from_secs(30) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    stop.cancel();
    let mut connections = Vec::new();
    for (user, _, task) in followers {
        let (frames, made) = task.await.expect("a follower task");
        connections.push(made);
        let expected = expected_frames(log, &conversations_of(user));
        let got = received(&frames);
        assert_eq!(got.len(), expected.len(), "user {user}: one frame per event of their conversations");
        assert!(got == expected, "user {user} received every event of their conversations once, in order");
    }
    connections
}

/// Registers users `1..=users` and creates `groups` GROUPs of `size`
/// consecutive users (wrapping, so each user is in `groups * size / users`);
/// answers each group's id and members, its owner first.
pub async fn set_up_groups(app: &TestApp, users: i64, groups: i64, size: i64) -> Vec<(String, Vec<i64>)> {
    app.register_users(1..=users).await;
    let mut made = Vec::new();
    for g in 0..groups {
        let members: Vec<i64> = (0..size).map(|i| (g * (users / groups) + i) % users + 1).collect();
        made.push((app.create_group(members[0], &members[1..]).await, members));
    }
    made
}

/// The groups `user` is a member of.
pub fn conversations_of(groups: &[(String, Vec<i64>)], user: i64) -> HashSet<String> {
    groups.iter().filter(|(_, members)| members.contains(&user)).map(|(id, _)| id.clone()).collect()
}
