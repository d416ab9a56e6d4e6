//! Typing indicators across two processes: delivered to the other
//! participants (not the typist, not outsiders, not someone just removed),
//! expiring by themselves, coalesced to one push per 2 s.

mod common;

use std::time::{Duration, Instant};

use common::ws::Subscriber;
use common::{spawn_app, spawn_app_sharing, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// The typing frames about `user` arriving within `window`.
async fn typing_frames(subscriber: &mut Subscriber, user: i64, window: Duration) -> Vec<(Duration, Value)> {
    let start = Instant::now();
    let mut frames = Vec::new();
    while let Some(remaining) = window.checked_sub(start.elapsed()) {
        let Some(frame) = subscriber.next(remaining).await else { break };
        if frame["event"] == "typing" && frame["data"]["user_id"] == user {
            frames.push((start.elapsed(), frame["data"].clone()));
        }
    }
    frames
}

async fn next_typing(subscriber: &mut Subscriber, timeout: Duration) -> Option<Value> {
    let deadline = Instant::now() + timeout;
    while let Some(remaining) = deadline.checked_duration_since(Instant::now()) {
        let frame = subscriber.next(remaining).await?;
        if frame["event"] == "typing" {
            return Some(frame);
        }
    }
    None
}

async fn typing(app: &TestApp, user: i64, conversation: &str, state: &str) -> StatusCode {
    app.call(Method::POST, &format!("/conversations/{conversation}/typing"), user, Some(json!({"state": state}))).await.status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typing_reaches_the_other_participants_on_every_process_and_expires() {
    let first = spawn_app().await;
    let second = spawn_app_sharing(&first).await;
    first.register_users(1..=3).await;
    first.register_users([9]).await;
    let c = first.create_group(1, &[2, 3]).await;
    assert!(first.wait_projected(Duration::from_secs(10)).await);
    let mut alice = Subscriber::connect_with_signals(&first, 1).await;
    let mut bob = Subscriber::connect_with_signals(&first, 2).await;
    let mut carol = Subscriber::connect_with_signals(&second, 3).await;
    let mut outsider = Subscriber::connect_with_signals(&second, 9).await;

    // Over the socket, acknowledged.
    let ack = alice.command("typing:start", "t1", json!({"conversation_id": c})).await;
    assert_eq!(ack["ok"], true, "{ack}");
    let started = Instant::now();
    for subscriber in [&mut bob, &mut carol] {
        let frame = next_typing(subscriber, Duration::from_secs(3)).await.expect("typing arrives");
        assert_eq!(frame["data"], json!({"conversation_id": c, "user_id": 1, "state": "started"}));
        assert!(frame["position"].is_u64(), "{frame}");
    }
    // No refresh: it ends by itself after 6 s.
    let stopped = next_typing(&mut carol, Duration::from_secs(9)).await.expect("stopped by itself");
    assert_eq!(stopped["data"]["state"], "stopped");
    let after = started.elapsed();
    assert!(after >= Duration::from_millis(5_500) && after < Duration::from_secs(8), "expired after {after:?}");
    assert_eq!(next_typing(&mut bob, Duration::from_secs(3)).await.expect("bob too")["data"]["state"], "stopped");
    assert!(next_typing(&mut alice, Duration::from_millis(200)).await.is_none(), "never to the typist");
    assert!(next_typing(&mut outsider, Duration::from_millis(200)).await.is_none(), "never to outsiders");

    // Outsiders cannot type; bad states are refused.
    assert_eq!(typing(&second, 9, &c, "started").await, StatusCode::NOT_FOUND);
    assert_eq!(typing(&second, 1, &c, "maybe").await, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(typing(&second, 1, "not-a-uuid", "started").await, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typing_is_coalesced_to_one_push_per_two_seconds() {
    let first = spawn_app().await;
    let second = spawn_app_sharing(&first).await;
    first.register_users(1..=2).await;
    let c = first.create_group(1, &[2]).await;
    assert!(first.wait_projected(Duration::from_secs(10)).await);
    let mut bob = Subscriber::connect_with_signals(&second, 2).await;
    // A storm of changes, through both processes.
    for i in 0..10 {
        let app = if i % 2 == 0 { &first } else { &second };
        assert_eq!(typing(app, 1, &c, if i % 2 == 0 { "started" } else { "stopped" }).await, StatusCode::NO_CONTENT);
    }
    let frames = typing_frames(&mut bob, 1, Duration::from_millis(3_500)).await;
    let states: Vec<&str> = frames.iter().map(|(_, d)| d["state"].as_str().unwrap()).collect();
    assert_eq!(states, ["started", "stopped"], "the first change at once, the last 2 s later: {frames:?}");
    let gap = frames[1].0 - frames[0].0;
    assert!(gap >= Duration::from_millis(1_900), "at most one push per 2 s: {frames:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_participant_stops_receiving_typing_at_once() {
    let app = spawn_app().await;
    app.register_users(1..=3).await;
    let c = app.create_group(1, &[2, 3]).await;
    let mut carol = Subscriber::connect_with_signals(&app, 3).await;
    let removed = app.call(Method::DELETE, &format!("/conversations/{c}/participants/3"), 1, None).await;
    assert_eq!(removed.status, StatusCode::OK);
    carol.until("conversation:updated").await;
    assert_eq!(typing(&app, 2, &c, "started").await, StatusCode::NO_CONTENT);
    assert!(next_typing(&mut carol, Duration::from_millis(800)).await.is_none(), "carol left");
    assert_eq!(typing(&app, 3, &c, "started").await, StatusCode::NOT_FOUND, "and cannot type there");
}
