//! Presence across processes: online while a user holds a realtime
//! connection on any process, offline when the last one closes or when its
//! process dies (its heartbeat lapses), pushed to contacts only, coalesced.

mod common;

use std::time::{Duration, Instant};

use common::server_process::ServerProcess;
use common::ws::Subscriber;
use common::{spawn_app, spawn_app_sharing, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::Value;

async fn next_presence(subscriber: &mut Subscriber, user: i64, timeout: Duration) -> Option<Value> {
    let deadline = Instant::now() + timeout;
    while let Some(remaining) = deadline.checked_duration_since(Instant::now()) {
        let frame = subscriber.next(remaining).await?;
        if frame["event"] == "presence" && frame["data"]["user_id"] == user {
            return Some(frame["data"].clone());
        }
    }
    None
}

async fn presence_of(app: &TestApp, asker: i64, users: &[i64]) -> Vec<Value> {
    let query: Vec<String> = users.iter().map(|u| format!("user_id={u}")).collect();
    let answer = app.call(Method::GET, &format!("/presence?{}", query.join("&")), asker, None).await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    answer.body["items"].as_array().expect("items").clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_follows_connections_across_processes_and_only_contacts_hear_of_it() {
    let first = spawn_app().await;
    let second = spawn_app_sharing(&first).await;
    first.register_users(1..=2).await;
    first.register_users([9]).await;
    first.create_group(1, &[2]).await;
    assert!(first.wait_projected(Duration::from_secs(10)).await);
    let mut bob = Subscriber::connect_with_signals(&second, 2).await;
    let mut stranger = Subscriber::connect_with_signals(&second, 9).await;

    let alice = Subscriber::connect(&first, 1, None).await;
    let online = next_presence(&mut bob, 1, Duration::from_secs(5)).await.expect("bob hears alice come online");
    assert_eq!(online["status"], "online");
    let items = presence_of(&second, 2, &[1, 9, 2]).await;
    let statuses: Vec<(i64, &str)> = items.iter().map(|i| (i["user_id"].as_i64().unwrap(), i["status"].as_str().unwrap())).collect();
    assert_eq!(statuses, [(1, "online"), (9, "unknown"), (2, "online")], "9 shares no conversation with bob");
    assert!(items[1]["last_seen_at"].is_null());

    alice.close().await;
    let offline = next_presence(&mut bob, 1, Duration::from_secs(5)).await.expect("and go offline");
    assert_eq!(offline["status"], "offline");
    assert!(offline["last_seen_at"].as_str().is_some_and(|t| t.ends_with('Z')), "{offline}");
    let items = presence_of(&first, 2, &[1]).await;
    assert_eq!(items[0]["status"], "offline");
    assert_eq!(items[0]["last_seen_at"], offline["last_seen_at"]);
    assert!(next_presence(&mut stranger, 1, Duration::from_millis(300)).await.is_none(), "not a contact");

    // Bad queries.
    for query in ["", "user_id=abc", "user_id=0"] {
        let answer = first.call(Method::GET, &format!("/presence?{query}"), 2, None).await;
        assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY, "{query}");
    }
    let many: Vec<String> = (1..=101).map(|u| format!("user_id={u}")).collect();
    let answer = first.call(Method::GET, &format!("/presence?{}", many.join("&")), 2, None).await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flapping_client_does_not_storm_its_contacts() {
    let app = spawn_app().await;
    app.register_users(1..=2).await;
    app.create_group(1, &[2]).await;
    assert!(app.wait_projected(Duration::from_secs(10)).await);
    let mut bob = Subscriber::connect_with_signals(&app, 2).await;
    let started = Instant::now();
    for _ in 0..20 {
        Subscriber::connect(&app, 1, None).await.close().await;
    }
    let elapsed = started.elapsed();
    let mut pushes = 0;
    while next_presence(&mut bob, 1, Duration::from_millis(2_500)).await.is_some() {
        pushes += 1;
    }
    // At most one push per second of flapping, plus the last change.
    let bound = elapsed.as_secs() as usize + 2;
    assert!(pushes <= bound, "{pushes} presence pushes for 20 reconnects in {elapsed:?}");
    let items = presence_of(&app, 2, &[1]).await;
    assert_eq!(items[0]["status"], "offline");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_process_takes_its_users_offline_within_thirty_seconds() {
    let app = TestApp::for_process("presence").await;
    let mut process = ServerProcess::start(&app).await;
    let survivor = spawn_app_sharing(&app).await;
    survivor.register_users(1..=2).await;
    survivor.create_group(1, &[2]).await;
    assert!(survivor.wait_projected(Duration::from_secs(10)).await);
    let mut bob = Subscriber::connect_with_signals(&survivor, 2).await;
    // Alice's connection is on the process that will die.
    let _alice = Subscriber::connect(&app, 1, None).await;
    let online = next_presence(&mut bob, 1, Duration::from_secs(5)).await.expect("online");
    assert_eq!(online["status"], "online");

    process.kill();
    let killed = Instant::now();
    let offline = next_presence(&mut bob, 1, Duration::from_secs(30)).await.expect("offline within 30 s of the kill");
    assert_eq!(offline["status"], "offline");
    eprintln!("offline {:?} after SIGKILL", killed.elapsed());
    assert_eq!(presence_of(&survivor, 2, &[1]).await[0]["status"], "offline");
}
