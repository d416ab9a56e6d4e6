//! Commands over the realtime connection, acknowledged: the same
//! validation, authorisation, rate limit and idempotency as over HTTP.

mod common;

use std::time::Duration;

use chat::config::Limits;
use common::js_client::JsClient;
use common::ws::Subscriber;
use common::{spawn_app, spawn_app_with_limits};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

fn refused(ack: &Value, status: u16, code: &str) {
    assert_eq!(ack["ok"], false, "{ack}");
    assert_eq!((ack["error"]["status"].as_u64(), ack["error"]["code"].as_str()), (Some(u64::from(status)), Some(code)), "{ack}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_message_command_over_the_websocket_is_acknowledged_and_takes_effect() {
    let app = spawn_app().await;
    app.register_users(1..=3).await;
    let c = app.create_group(1, &[2, 3]).await;
    let mut alice = Subscriber::connect(&app, 1, None).await;
    let mut bob = Subscriber::connect(&app, 2, None).await;

    let sent = bob.command("message:send", "send-1", json!({"conversation_id": c, "content": "over the socket"})).await;
    assert_eq!(sent["ok"], true, "{sent}");
    assert_eq!(sent["id"], "send-1");
    let m = sent["message_id"].as_str().expect("message id").to_owned();
    let pushed = alice.until("message:new").await;
    let frame = pushed.last().unwrap();
    assert_eq!((frame["data"]["id"].as_str(), frame["data"]["content"].as_str()), (Some(m.as_str()), Some("over the socket")));
    assert_eq!(frame["position"], sent["position"]);
    // Read through HTTP: the same message.
    let page = app.call(Method::GET, &format!("/conversations/{c}/messages?min_position={}", sent["position"]), 1, None).await;
    assert_eq!(page.body["items"][0]["id"], m.as_str());

    let steps = [
        ("message:edit", json!({"message_id": m, "content": "edited"}), "message:edited"),
        ("message:react", json!({"message_id": m, "emoji": "👍"}), "message:reaction"),
        ("message:unreact", json!({"message_id": m, "emoji": "👍"}), "message:reaction"),
        ("conversation:read", json!({"conversation_id": c, "message_id": m}), "message:read"),
        ("message:delete", json!({"message_id": m}), "message:deleted"),
    ];
    for (i, (command, data, event)) in steps.into_iter().enumerate() {
        let ack = bob.command(command, &format!("step-{i}"), data).await;
        assert_eq!(ack["ok"], true, "{command}: {ack}");
        let frames = alice.until(event).await;
        assert_eq!(frames.last().unwrap()["position"], ack["position"], "{command}");
        if command == "message:react" {
            assert!(ack["reaction_id"].is_string(), "{ack}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_socket_commands_answer_the_problem_http_would_and_change_nothing() {
    let app = spawn_app().await;
    app.register_users(1..=3).await;
    app.register_users([9]).await;
    let c = app.create_group(1, &[2]).await;
    let m = app.send(1, &c, "alice's").await;
    let mut bob = Subscriber::connect(&app, 2, None).await;
    let mut outsider = Subscriber::connect(&app, 9, None).await;
    let before = app.event_count().await;

    let blank = bob.command("message:send", "a", json!({"conversation_id": c, "content": "  "})).await;
    refused(&blank, 422, "validation_failed");
    assert_eq!(blank["error"]["errors"][0]["field"], "content");
    refused(&bob.command("message:send", "b", json!({"content": "no conversation"})).await, 422, "validation_failed");
    refused(
        &bob.command("message:send", "c", json!({"conversation_id": c, "content": "x", "colour": "red"})).await,
        422,
        "validation_failed",
    );
    refused(&bob.command("message:fly", "d", json!({})).await, 422, "validation_failed");
    refused(&bob.command("message:edit", "e", json!({"message_id": m, "content": "not mine"})).await, 403, "forbidden");
    refused(&bob.command("message:send", "f", json!({"conversation_id": "not-a-uuid", "content": "x"})).await, 404, "not_found");
    refused(&outsider.command("message:send", "g", json!({"conversation_id": c, "content": "let me in"})).await, 404, "not_found");
    refused(&outsider.command("message:delete", "h", json!({"message_id": m})).await, 404, "not_found");
    // Not a command at all: 400, with no id to answer to.
    bob.send_text("{not json").await;
    refused(&bob.ack(None).await, 400, "bad_request");
    assert_eq!(app.event_count().await, before, "nothing was appended");
    // The connection still works.
    assert_eq!(bob.command("message:send", "ok", json!({"conversation_id": c, "content": "fine"})).await["ok"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_command_id_is_one_event_and_the_same_answer() {
    let app = spawn_app().await;
    app.register_users(1..=2).await;
    let c = app.create_group(1, &[2]).await;
    let mut bob = Subscriber::connect(&app, 2, None).await;
    let before = app.event_count().await;
    let key = uuid::Uuid::new_v4().to_string();
    let data = json!({"conversation_id": c, "content": "once"});
    let first = bob.command("message:send", &key, data.clone()).await;
    let again = bob.command("message:send", &key, data.clone()).await;
    assert_eq!(first["ok"], true, "{first}");
    assert_eq!((&again["message_id"], &again["position"]), (&first["message_id"], &first["position"]));
    // From another connection of the same user, and over HTTP with the key as Idempotency-Key.
    let mut other = Subscriber::connect(&app, 2, None).await;
    assert_eq!(other.command("message:send", &key, data.clone()).await["message_id"], first["message_id"]);
    let over_http = app
        .request(
            Method::POST,
            &format!("/api/v1/conversations/{c}/messages"),
            Some(&app.token(2)),
            Some(json!({"content": "once"})),
            &[("idempotency-key", &key)],
        )
        .await;
    assert_eq!(over_http.body["message_id"], first["message_id"]);
    assert_eq!(app.event_count().await, before + 1, "one event");
    // The same id with another body is refused.
    refused(&bob.command("message:send", &key, json!({"conversation_id": c, "content": "different"})).await, 422, "validation_failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socket_commands_share_the_users_rate_limit_with_http() {
    let app = spawn_app_with_limits(Limits { commands_per_second: 1, command_burst: 3, ..Limits::DEFAULT }).await;
    app.register_users(1..=2).await;
    let c = app.create_group(1, &[2]).await;
    let mut bob = Subscriber::connect(&app, 2, None).await;
    let http = app.call(Method::POST, &format!("/conversations/{c}/messages"), 2, Some(json!({"content": "http"}))).await;
    assert_eq!(http.status, StatusCode::CREATED);
    let mut acks = Vec::new();
    for i in 0..4 {
        acks.push(bob.command("message:send", &format!("r{i}"), json!({"conversation_id": c, "content": format!("ws {i}")})).await);
    }
    let accepted = acks.iter().filter(|a| a["ok"] == true).count();
    assert_eq!(accepted, 2, "a burst of 3, one spent over HTTP: {acks:?}");
    refused(acks.last().unwrap(), 429, "rate_limited");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socket_io_commands_are_acknowledged_like_http_answers() {
    let app = spawn_app().await;
    app.register_users(1..=2).await;
    app.register_users([9]).await;
    let c = app.create_group(1, &[2]).await;
    let mut alice = Subscriber::connect(&app, 1, None).await;
    let mut bob = JsClient::connect(&app, &app.token(2), None).await;
    bob.until("ready").await;
    let before = app.event_count().await;

    let key = uuid::Uuid::new_v4().to_string();
    let sent = bob.command("message:send", json!({"conversation_id": c, "content": "from socket.io", "id": key})).await;
    assert_eq!(sent["ok"], true, "{sent}");
    assert!(sent["position"].is_u64() && sent["message_id"].is_string(), "{sent}");
    let pushed = alice.until("message:new").await;
    assert_eq!(pushed.last().unwrap()["data"]["id"], sent["message_id"]);
    let again = bob.command("message:send", json!({"conversation_id": c, "content": "from socket.io", "id": key})).await;
    assert_eq!(again["message_id"], sent["message_id"], "the same id is the same command");
    assert_eq!(app.event_count().await, before + 1);

    let m = sent["message_id"].as_str().unwrap().to_owned();
    let reacted = bob.command("message:react", json!({"message_id": m, "emoji": "🎉"})).await;
    assert_eq!(reacted["ok"], true, "{reacted}");
    let blank = bob.command("message:edit", json!({"message_id": m, "content": ""})).await;
    refused(&blank, 422, "validation_failed");
    let mut outsider = JsClient::connect(&app, &app.token(9), None).await;
    outsider.until("ready").await;
    refused(&outsider.command("message:delete", json!({"message_id": m})).await, 404, "not_found");
    let read = bob.command("conversation:read", json!({"conversation_id": c, "message_id": m})).await;
    assert_eq!(read["ok"], true, "{read}");
    assert!(alice.until("message:read").await.last().unwrap()["data"]["user_id"] == 2);
    tokio::time::sleep(Duration::from_millis(50)).await;
}
