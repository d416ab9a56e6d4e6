//! Crash safety of the real binary: `chat serve` killed with SIGKILL at random
//! moments under a few hundred sends per second, and restarted on the same
//! database and stream. Clients retry unanswered requests with the same
//! `Idempotency-Key`, as a real client does. Afterwards:
//!
//! * every acknowledged (2xx) send is in the event log exactly once, at the
//!   position it was answered with, and no send was applied twice;
//! * messages are numbered 1, 2, 3... in every conversation;
//! * the JetStream stream holds every event exactly once, in order;
//! * the read models equal a rebuild from the log;
//! * WebSocket subscribers that reconnected (with `after_position` = the last
//!   position seen) through every crash, and a fresh one resuming from 0,
//!   received every event of their conversations exactly once, in order.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::load::{check_followers, expected_frames, follow, outcomes, read_log, received, Acked, LoggedEvent, Rng, SendLoad};
use common::server_process::ServerProcess;
use common::ws::Subscriber;
use common::TestApp;
use tokio_util::sync::CancellationToken;

/// Users 1..=USERS; GROUPS conversations of GROUP_SIZE consecutive users (wrapping), each user in two.
const USERS: i64 = 60;
const GROUPS: i64 = 12;
const GROUP_SIZE: i64 = 10;
/// Sends started per second (open loop), and for how long.
const RATE: u64 = 250;
const LOAD: Duration = Duration::from_secs(40);
/// Each kill happens at a random moment of one of these windows (seconds into the load).
const KILL_WINDOWS: [(u64, u64); 4] = [(4, 9), (13, 18), (22, 27), (31, 36)];
/// First attempts in flight at most (retries are not counted).
const MAX_IN_FLIGHT: usize = 128;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// A request reserved by a killed process keeps its `Idempotency-Key` for 30 s
/// (`app/idempotency.rs`), so a retry may answer 409 `idempotency_in_progress`
/// that long after the crash; clients give up this long after the last kill.
const RETRY_FOR_AFTER_LAST_KILL: Duration = Duration::from_secs(45);
/// Users whose WebSocket follows the whole run, reconnecting after each crash.
const FOLLOWERS: [i64; 2] = [1, 2];
/// A user who connects at the end with `after_position=0`.
const LATE_SUBSCRIBER: i64 = 7;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_load_loses_and_duplicates_no_acknowledged_command() {
    let started = Instant::now();
    // Declared before the server, so dropped after it: the database and the stream go last.
    let app = TestApp::for_process("crash").await;
    let mut server = ServerProcess::start(&app).await;
    let mut rng = Rng::seeded();

    // Setup: users and groups, before any crash.
    let groups = common::load::set_up_groups(&app, USERS, GROUPS, GROUP_SIZE).await;
    let conversations_of = |user: i64| common::load::conversations_of(&groups, user);

    let stop_followers = CancellationToken::new();
    let followers: Vec<_> = FOLLOWERS
        .iter()
        .map(|&user| {
            let seen = Arc::new(AtomicU64::new(0));
            let task = tokio::spawn(follow(vec![app.base.clone()], app.token(user), seen.clone(), stop_followers.clone()));
            (user, seen, task)
        })
        .collect();

    // The load: RATE sends per second, each by a random member of a random group, each with its own key.
    let give_up = Arc::new(Mutex::new(None));
    let generator = SendLoad {
        groups: groups.clone(),
        bases: vec![app.base.clone()],
        tokens: (1..=USERS).map(|u| (u, app.token(u))).collect(),
        rate: RATE,
        duration: LOAD,
        prefix: "crash",
        max_in_flight: MAX_IN_FLIGHT,
        request_timeout: REQUEST_TIMEOUT,
    }
    .start(give_up.clone());

    // The crashes.
    let load_started = Instant::now();
    let mut kills = Vec::new();
    for (from, to) in KILL_WINDOWS {
        let at = Duration::from_millis(from * 1000 + rng.below((to - from) * 1000));
        tokio::time::sleep(at.saturating_sub(load_started.elapsed())).await;
        let pid = server.pid();
        server.kill();
        let killed_at = load_started.elapsed();
        tokio::time::sleep(Duration::from_millis(rng.below(500))).await;
        server.restart(&app.base).await;
        kills.push((killed_at, pid, load_started.elapsed() - killed_at));
    }
    *give_up.lock().unwrap() = Some(Instant::now() + RETRY_FOR_AFTER_LAST_KILL);

    let tasks = generator.await.unwrap();
    let issued = tasks.len();
    let (acked, unanswered, refused) = outcomes(tasks).await;
    let load_ended = load_started.elapsed();
    assert!(refused.is_empty(), "sends refused for good: {:?}", &refused[..refused.len().min(5)]);

    // Everything committed reaches JetStream and the read models.
    assert!(app.wait_published(Duration::from_secs(60)).await, "the publisher caught up");
    assert!(app.wait_projected(Duration::from_secs(60)).await, "the projector caught up");

    // 1. The event log: every acknowledged send exactly once, at its answered position; nothing twice.
    let log = read_log(&app).await;
    let sent: Vec<&LoggedEvent> = log.iter().filter(|e| e.event_type == "MessageSent").collect();
    let mut by_message_id: HashMap<&str, Vec<&LoggedEvent>> = HashMap::new();
    let mut by_content: HashMap<&str, usize> = HashMap::new();
    let mut by_key: HashMap<&str, usize> = HashMap::new();
    for event in &sent {
        by_message_id.entry(event.data["message_id"].as_str().expect("message_id")).or_default().push(event);
        *by_content.entry(event.data["content"].as_str().expect("content")).or_default() += 1;
        *by_key.entry(event.metadata["idempotency_key"].as_str().expect("every send had a key")).or_default() += 1;
    }
    let lost: Vec<&Acked> = acked.iter().filter(|a| !by_message_id.contains_key(a.message_id.as_str())).collect();
    assert!(lost.is_empty(), "{} acknowledged sends are not in the log, e.g. {:?}", lost.len(), &lost[..lost.len().min(5)]);
    for a in &acked {
        let events = &by_message_id[a.message_id.as_str()];
        assert_eq!(events.len(), 1, "message {} is in the log once", a.message_id);
        let event = events[0];
        assert_eq!(event.position, a.position, "{} was answered with its event's position", a.key);
        assert_eq!((event.stream_id.as_str(), event.data["content"].as_str()), (a.conversation.as_str(), Some(a.content.as_str())));
        assert_eq!(event.metadata["idempotency_key"], a.key.as_str());
    }
    let twice: Vec<_> = by_content.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "sends applied twice: {twice:?}");
    assert!(by_key.values().all(|n| *n == 1), "one MessageSent per idempotency key");
    assert!(
        unanswered.is_empty(),
        "{} sends were never answered 2xx within {RETRY_FOR_AFTER_LAST_KILL:?} of the last kill, e.g. {:?}",
        unanswered.len(),
        &unanswered[..unanswered.len().min(3)]
    );
    assert_eq!(sent.len(), acked.len(), "every send in the log was acknowledged once (no extra, no double)");
    let mut seqs: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    for event in &sent {
        seqs.entry(event.stream_id.as_str()).or_default().push(event.data["seq"].as_u64().expect("seq"));
    }
    for (conversation, seq) in &seqs {
        assert!(seq.iter().copied().eq(1..=seq.len() as u64), "messages of {conversation} are numbered 1, 2, 3... in log order");
    }

    // 2. JetStream: each event exactly once, in position order.
    let published = app.consume_all(Duration::from_secs(3)).await;
    app.assert_published_exactly_once(&published).await;

    // 3. WebSocket: followers (through every crash) and a late subscriber from 0.
    let head = log.last().map(|e| e.position).unwrap_or(0);
    let follower_connections = check_followers(followers, &log, conversations_of, &stop_followers).await;
    for (user, connections) in FOLLOWERS.iter().zip(&follower_connections) {
        assert!(*connections > KILL_WINDOWS.len() as u32, "user {user} reconnected after each crash ({connections} connections)");
    }
    let late = Subscriber::connect(&app, LATE_SUBSCRIBER, Some(0)).await;
    assert!(late.ready_at >= head, "live from the head after replaying");
    let expected = expected_frames(&log, &conversations_of(LATE_SUBSCRIBER));
    assert!(received(&late.replayed) == expected, "a resume from 0 replays every event of the user's conversations once, in order");
    late.close().await;

    // 4. The read models equal a rebuild from the log.
    let live = app.read_model_rows().await;
    let messages = live.iter().find(|(table, _)| table == "MESSAGES").map(|(_, rows)| rows.len()).unwrap_or(0);
    assert_eq!(messages, acked.len(), "one MESSAGES row per acknowledged send");
    chat::projections::rebuild::rebuild(&app.pool, |_, _| {}).await.expect("rebuild");
    assert!(app.read_model_rows().await == live, "the read models equal a rebuild from the log");

    server.stop(Duration::from_secs(20)).await;
    let replayed = acked.iter().filter(|a| a.replayed).count();
    let retried = acked.iter().filter(|a| a.attempts > 1).count();
    eprintln!(
        "crash safety: {issued} sends issued, {} acknowledged ({retried} after a retry, {replayed} replayed from their key), \
         {} events, kills at {:?} (restart took {:?}), load with retries {:.1} s, follower connections {follower_connections:?}, \
         total {:.1} s",
        acked.len(),
        log.len(),
        kills.iter().map(|k| k.0).collect::<Vec<_>>(),
        kills.iter().map(|k| k.2).collect::<Vec<_>>(),
        load_ended.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}
