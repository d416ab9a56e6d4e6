//! Realtime over WebSocket: every event type with its data, membership
//! changes, push-then-query, resume, several processes, slow subscribers.

mod common;

use std::time::Duration;

use common::ws::Subscriber;
use common::{spawn_app, spawn_app_sharing};
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn participants_receive_every_event_type_and_outsiders_nothing() {
    let app = spawn_app().await;
    app.register_users(1..=3).await;
    app.register_users([9]).await;
    let mut bob = Subscriber::connect(&app, 2, None).await;
    let mut outsider = Subscriber::connect(&app, 9, None).await;
    let c = app.create_group(1, &[2, 3]).await;
    let created = bob.until("conversation:created").await;
    let item = &created.last().unwrap()["data"];
    assert_eq!(item["id"], c.as_str());
    assert_eq!(item["participants"].as_array().unwrap().len(), 3);
    assert_eq!(item["unread_count"], 0);

    let m = app.send(1, &c, "hello").await;
    let new = bob.until("message:new").await;
    let message = &new.last().unwrap()["data"];
    assert_eq!((message["id"].as_str(), message["content"].as_str()), (Some(m.as_str()), Some("hello")));
    assert_eq!(message["sender_first_name"], "First1");
    assert_eq!(message["reactions"], json!([]));
    // Push, then query: the read model already has it.
    let page = app.call(Method::GET, &format!("/conversations/{c}/messages"), 2, None).await;
    assert_eq!(page.body["items"][0]["id"], m.as_str());

    let calls = [
        (Method::PATCH, format!("/messages/{m}"), 1, Some(json!({"content": "hello!"})), "message:edited"),
        (Method::PUT, format!("/messages/{m}/reactions/%F0%9F%91%8D"), 3, None, "message:reaction"),
        (Method::POST, format!("/conversations/{c}/read"), 3, Some(json!({"message_id": m})), "message:read"),
        (Method::PATCH, format!("/conversations/{c}"), 1, Some(json!({"name": "Renamed"})), "conversation:updated"),
        (Method::POST, format!("/conversations/{c}/archive"), 1, None, "conversation:archived"),
        (Method::POST, format!("/conversations/{c}/unarchive"), 1, None, "conversation:unarchived"),
        (Method::DELETE, format!("/messages/{m}"), 1, None, "message:deleted"),
    ];
    for (method, path, user, body, event) in calls {
        let answer = app.call(method, &path, user, body).await;
        assert!(answer.status.is_success(), "{path}: {:?}", answer.body);
        let frames = bob.until(event).await;
        let frame = frames.last().unwrap();
        assert_eq!(frame["position"], answer.body["position"], "{event} carries the command's position");
        let data = &frame["data"];
        match event {
            "message:edited" => assert_eq!(data["content"], "hello!"),
            "message:reaction" => {
                assert_eq!(
                    data,
                    &json!({"message_id": m, "conversation_id": c, "action": "added", "id": answer.body["reaction_id"], "emoji": "👍", "userId": 3})
                )
            }
            "message:read" => assert_eq!(data, &json!({"conversation_id": c, "user_id": 3, "message_id": m})),
            "conversation:updated" => assert_eq!(data["name"], "Renamed"),
            "conversation:archived" | "conversation:unarchived" => assert_eq!(data, &json!({"id": c})),
            "message:deleted" => {
                assert_eq!((data["id"].as_str(), data["conversation_id"].as_str()), (Some(m.as_str()), Some(c.as_str())));
                assert!(data["deleted_at"].as_str().is_some_and(|t| t.ends_with('Z')));
            }
            _ => {}
        }
    }
    outsider.expect_silence(Duration::from_millis(300)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_added_and_removed_mid_stream() {
    let app = spawn_app().await;
    app.register_users(1..=3).await;
    let c = app.create_group(1, &[2]).await;
    let mut carol = Subscriber::connect(&app, 3, None).await;
    app.send(1, &c, "before carol").await;
    let added = app.call(Method::POST, &format!("/conversations/{c}/participants"), 1, Some(json!({"user_id": 3}))).await;
    let frames = carol.until("conversation:updated").await;
    assert_eq!(frames.len(), 1, "nothing from before she joined: {frames:?}");
    assert_eq!(frames[0]["position"], added.body["position"]);
    assert_eq!(frames[0]["data"]["unread_count"], 1, "her own unread count");
    app.send(2, &c, "welcome").await;
    assert_eq!(carol.until("message:new").await.last().unwrap()["data"]["content"], "welcome");

    let removed = app.call(Method::DELETE, &format!("/conversations/{c}/participants/3"), 1, None).await;
    let last = carol.until("conversation:updated").await;
    let update = last.last().unwrap();
    assert_eq!(update["position"], removed.body["position"]);
    let members: Vec<i64> = update["data"]["participants"].as_array().unwrap().iter().map(|p| p["userId"].as_i64().unwrap()).collect();
    assert_eq!(members, [1, 2], "the update comes without her");
    app.send(1, &c, "after carol").await;
    carol.expect_silence(Duration::from_millis(500)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_after_twenty_missed_events_then_live() {
    let app = spawn_app().await;
    app.register_users(1..=2).await;
    let c = app.create_group(1, &[2]).await;
    let other = app.create_group(1, &[]).await;
    let mut bob = Subscriber::connect(&app, 2, None).await;
    app.send(1, &c, "seen").await;
    let seen = bob.until("message:new").await.last().unwrap()["position"].as_u64().unwrap();
    bob.close().await;

    let mut missed = Vec::new();
    for i in 0..20 {
        missed.push(app.send(1, &c, &format!("missed {i}")).await);
        app.send(1, &other, "not for bob").await;
    }
    assert!(app.wait_projected(Duration::from_secs(10)).await);
    let again_at = app.event_count().await as u64;
    let mut again = Subscriber::connect(&app, 2, Some(seen)).await;
    // Strict: every missed event before `ready`, in order, once each.
    let replayed: Vec<String> = again.replayed.iter().map(|f| f["data"]["id"].as_str().unwrap().to_owned()).collect();
    assert!(again.replayed.iter().all(|f| f["event"] == "message:new"));
    assert_eq!(replayed, missed, "exactly the missed events, in order, before ready");
    assert!(again.ready_at >= again_at, "ready {} is at or past the log's head at connect time {again_at}", again.ready_at);
    let live = app.send(1, &c, "live").await;
    let frames = again.until("message:new").await;
    assert_eq!(frames.len(), 1, "no duplicate: {frames:?}");
    assert_eq!(frames[0]["data"]["id"], live.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_on_one_process_sees_commands_sent_to_another() {
    let first = spawn_app().await;
    let second = spawn_app_sharing(&first).await;
    first.register_users(1..=2).await;
    let c = first.create_group(1, &[2]).await;
    let mut bob = Subscriber::connect(&second, 2, None).await;
    let m = first.send(1, &c, "across processes").await;
    let frames = bob.until("message:new").await;
    assert_eq!(frames.last().unwrap()["data"]["id"], m.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_never_reads_is_dropped_and_others_keep_up() {
    let app = spawn_app().await;
    app.register_users(1..=3).await;
    let c = app.create_group(1, &[2, 3]).await;
    // A client with a tiny receive buffer that never reads.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let addr: std::net::SocketAddr = app.base.trim_start_matches("http://").parse().unwrap();
    let stream = socket.connect(addr).await.unwrap();
    let url = format!("ws://{addr}/api/v1/ws?token={}", app.token(3));
    let (_stalled, _) = tokio_tungstenite::client_async(url, stream).await.unwrap();
    assert!(app.wait_projected(Duration::from_secs(10)).await);
    let mut bob = Subscriber::connect(&app, 2, None).await;

    // Enough to fill the kernel buffers (up to 4 MiB on loopback) and the 64-frame queue.
    let content = "x".repeat(9000);
    let mut worst = Duration::ZERO;
    for _ in 0..700 {
        let sent = std::time::Instant::now();
        let answer = app.call(Method::POST, &format!("/conversations/{c}/messages"), 1, Some(json!({"content": content}))).await;
        assert_eq!(answer.status, StatusCode::CREATED);
        let frames = bob.until("message:new").await;
        assert_eq!(frames.len(), 1);
        worst = worst.max(sent.elapsed());
    }
    assert!(worst < Duration::from_secs(2), "the reading subscriber kept up (worst {worst:?})");
    let metrics = app.client.get(format!("{}/metrics", app.base)).send().await.unwrap().text().await.unwrap();
    let dropped = metrics
        .lines()
        .find(|l| l.starts_with("chat_realtime_slow_consumers_dropped_total"))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0);
    assert!(dropped >= 1.0, "the stalled subscriber was dropped:\n{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_change_pushes_the_new_roles_to_every_participant() {
    let app = spawn_app().await;
    app.register_users(1..=3).await;
    let c = app.create_group(1, &[2, 3]).await;
    let mut bob = Subscriber::connect(&app, 2, None).await;
    let mut carol = Subscriber::connect(&app, 3, None).await;
    let mut alice = Subscriber::connect(&app, 1, None).await;
    let roles = |frame: &serde_json::Value| -> Vec<(i64, String)> {
        let mut roles: Vec<(i64, String)> = frame["data"]["participants"]
            .as_array()
            .expect("participants")
            .iter()
            .map(|p| (p["userId"].as_i64().unwrap(), p["role"].as_str().unwrap().to_owned()))
            .collect();
        roles.sort();
        roles
    };
    let changed = app.call(Method::PATCH, &format!("/conversations/{c}/participants/2"), 1, Some(json!({"role": "ADMIN"}))).await;
    assert_eq!(changed.status, StatusCode::OK, "{:?}", changed.body);
    for subscriber in [&mut alice, &mut bob, &mut carol] {
        let frames = subscriber.until("conversation:updated").await;
        let update = frames.last().unwrap();
        assert_eq!(update["position"], changed.body["position"]);
        assert_eq!(roles(update), [(1, "OWNER".to_owned()), (2, "ADMIN".to_owned()), (3, "MEMBER".to_owned())]);
    }
    // A transfer of ownership: both roles change in one push.
    let transferred = app.call(Method::PATCH, &format!("/conversations/{c}/participants/3"), 1, Some(json!({"role": "OWNER"}))).await;
    assert_eq!(transferred.status, StatusCode::OK, "{:?}", transferred.body);
    for subscriber in [&mut alice, &mut bob, &mut carol] {
        let frames = subscriber.until("conversation:updated").await;
        let update = frames.last().unwrap();
        assert_eq!(update["position"], transferred.body["position"]);
        assert_eq!(roles(update), [(1, "ADMIN".to_owned()), (2, "ADMIN".to_owned()), (3, "OWNER".to_owned())]);
    }
}
