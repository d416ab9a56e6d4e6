//! Realtime over Socket.IO, with the official JavaScript `socket.io-client`
//! v4 run by Node.js (`tests/socketio/client.js`; `npm ci --prefix tests/socketio`).

mod common;

use std::time::Duration;

use common::js_client::JsClient;
use common::spawn_app;
use reqwest::Method;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socket_io_client_receives_every_event_type() {
    let app = spawn_app().await;
    app.register_users(1..=3).await;
    app.register_users([9]).await;
    let mut bob = JsClient::connect(&app, &app.token(2), None).await;
    let ready = bob.until("ready").await;
    assert!(ready[0]["data"]["position"].is_u64());
    let mut outsider = JsClient::connect(&app, &app.token(9), None).await;
    outsider.until("ready").await;

    let c = app.create_group(1, &[2, 3]).await;
    let created = bob.until("conversation:created").await;
    assert_eq!(created.last().unwrap()["data"]["id"], c.as_str());
    assert_eq!(created.last().unwrap()["data"]["participants"].as_array().unwrap().len(), 3);
    let m = app.send(1, &c, "hello").await;
    let new = bob.until("message:new").await;
    assert_eq!(new.last().unwrap()["data"]["id"], m.as_str());
    assert_eq!(new.last().unwrap()["data"]["sender_first_name"], "First1");

    let steps = [
        (Method::PATCH, format!("/messages/{m}"), 1, Some(json!({"content": "edited"})), "message:edited"),
        (Method::PUT, format!("/messages/{m}/reactions/%F0%9F%91%8D"), 3, None, "message:reaction"),
        (Method::POST, format!("/conversations/{c}/read"), 3, Some(json!({"message_id": m})), "message:read"),
        (Method::PATCH, format!("/conversations/{c}"), 1, Some(json!({"name": "Renamed"})), "conversation:updated"),
        (Method::POST, format!("/conversations/{c}/archive"), 1, None, "conversation:archived"),
        (Method::POST, format!("/conversations/{c}/unarchive"), 1, None, "conversation:unarchived"),
        (Method::DELETE, format!("/messages/{m}"), 1, None, "message:deleted"),
    ];
    for (method, path, user, body, event) in steps {
        let answer = app.call(method, &path, user, body).await;
        assert!(answer.status.is_success(), "{path}: {:?}", answer.body);
        let data = bob.until(event).await.last().unwrap()["data"].clone();
        match event {
            "message:edited" => assert_eq!(data["content"], "edited"),
            "message:reaction" => {
                assert_eq!((data["action"].as_str(), data["emoji"].as_str(), data["userId"].as_i64()), (Some("added"), Some("👍"), Some(3)))
            }
            "message:read" => assert_eq!(data, json!({"conversation_id": c, "user_id": 3, "message_id": m})),
            "conversation:updated" => assert_eq!(data["name"], "Renamed"),
            "conversation:archived" | "conversation:unarchived" => assert_eq!(data, json!({"id": c})),
            "message:deleted" => assert_eq!(data["id"], m.as_str()),
            _ => {}
        }
    }
    assert!(outsider.next(Duration::from_millis(300)).await.is_none(), "a non-participant receives nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socket_io_resume_and_refused_handshake() {
    let app = spawn_app().await;
    app.register_users(1..=2).await;
    let c = app.create_group(1, &[2]).await;
    assert!(app.wait_projected(Duration::from_secs(10)).await);
    let seen = app.event_count().await as u64;
    let mut missed = Vec::new();
    for i in 0..5 {
        missed.push(app.send(1, &c, &format!("missed {i}")).await);
    }
    assert!(app.wait_projected(Duration::from_secs(10)).await);
    let mut bob = JsClient::connect(&app, &app.token(2), Some(seen)).await;
    let frames = bob.until("ready").await;
    let replayed: Vec<&str> = frames.iter().filter(|f| f["event"] == "message:new").map(|f| f["data"]["id"].as_str().unwrap()).collect();
    assert_eq!(replayed, missed.iter().map(String::as_str).collect::<Vec<_>>());

    let mut forged = JsClient::connect(&app, "not-a-token", None).await;
    let refused = forged.next(Duration::from_secs(10)).await.expect("an answer");
    assert_eq!(refused["event"], "connect_error");
}
