//! Operations endpoints and graceful shutdown.

mod common;

use std::time::Duration;

use common::{spawn_app, spawn_app_sharing};
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_readiness_and_metrics_need_no_token() {
    let app = spawn_app().await;
    let health = app.request(Method::GET, "/healthz", None, None, &[]).await;
    assert_eq!(health.status, StatusCode::OK);
    let ready = app.request(Method::GET, "/readyz", None, None, &[]).await;
    assert_eq!(ready.status, StatusCode::OK, "{:?}", ready.body);
    assert_eq!(ready.body["status"], "ready");
    assert_eq!(ready.body["database"], "up");
    assert_eq!(ready.body["nats"], "up");
    assert!(ready.body["projection_lag"]["events"].is_u64());
    assert!(ready.body["projection_lag"]["seconds"].is_number());

    app.register_users([1]).await;
    let metrics = app.client.get(format!("{}/metrics", app.base)).send().await.unwrap();
    assert_eq!(metrics.status(), StatusCode::OK);
    let text = metrics.text().await.unwrap();
    assert!(text.contains("chat_append_batch_requests"), "{text}");
    // Durations are Prometheus histograms, which add up across processes.
    assert!(text.contains("# TYPE chat_append_batch_seconds histogram"), "{text}");
    assert!(text.contains("chat_append_batch_seconds_bucket{le=\"0.01\"}"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_carries_the_security_headers_and_no_cors_grant() {
    let app = spawn_app().await;
    app.register_users([1]).await;
    let token = app.token(1);
    let answers = [
        app.client.get(format!("{}/healthz", app.base)).send().await.unwrap(),
        app.client.get(format!("{}/api/v1/nowhere", app.base)).send().await.unwrap(),
        app.client
            .get(format!("{}/api/v1/conversations", app.base))
            .bearer_auth(&token)
            .header("Origin", "https://evil.example")
            .send()
            .await
            .unwrap(),
    ];
    for answer in answers {
        for (name, value) in chat::http::SECURITY_HEADERS {
            assert_eq!(answer.headers().get(name).and_then(|v| v.to_str().ok()), Some(value), "{name} on {}", answer.url());
        }
        assert!(answer.headers().get("access-control-allow-origin").is_none(), "no CORS grant by default");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_grants_only_the_configured_origins() {
    let app = common::spawn_app_with_cors(&["https://app.example"]).await;
    let preflight = |origin: &str| {
        app.client
            .request(reqwest::Method::OPTIONS, format!("{}/api/v1/conversations", app.base))
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "POST")
            .header("Access-Control-Request-Headers", "authorization, content-type, idempotency-key")
            .send()
    };
    let allowed = preflight("https://app.example").await.unwrap();
    assert!(allowed.status().is_success(), "{}", allowed.status());
    assert_eq!(allowed.headers()["access-control-allow-origin"], "https://app.example");
    let methods = allowed.headers()["access-control-allow-methods"].to_str().unwrap().to_owned();
    assert!(methods.contains("POST") && methods.contains("DELETE"), "{methods}");
    let refused = preflight("https://evil.example").await.unwrap();
    assert!(refused.headers().get("access-control-allow-origin").is_none());

    let token = app.token(1);
    let answer = app.client.get(format!("{}/api/v1/conversations", app.base)).bearer_auth(&token).header("Origin", "https://app.example");
    let answer = answer.send().await.unwrap();
    assert_eq!(answer.headers()["access-control-allow-origin"], "https://app.example");
    assert_eq!(answer.headers()["x-content-type-options"], "nosniff", "security headers still there");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_document_describes_every_command() {
    let app = spawn_app().await;
    let doc = app.request(Method::GET, "/api/v1/openapi.json", None, None, &[]).await;
    assert_eq!(doc.status, StatusCode::OK);
    assert!(doc.body["openapi"].as_str().unwrap().starts_with("3.1"), "{}", doc.body["openapi"]);
    let paths = doc.body["paths"].as_object().unwrap();
    for (path, method) in [
        ("/api/v1/conversations", "post"),
        ("/api/v1/conversations/{id}", "patch"),
        ("/api/v1/conversations/{id}/archive", "post"),
        ("/api/v1/conversations/{id}/unarchive", "post"),
        ("/api/v1/conversations/{id}/participants", "post"),
        ("/api/v1/conversations/{id}/participants/{user_id}", "delete"),
        ("/api/v1/conversations/{id}/participants/{user_id}", "patch"),
        ("/api/v1/conversations/{id}/participants/me", "patch"),
        ("/api/v1/conversations/{id}/messages", "post"),
        ("/api/v1/messages/{id}", "patch"),
        ("/api/v1/messages/{id}", "delete"),
        ("/api/v1/messages/{id}/reactions/{emoji}", "put"),
        ("/api/v1/messages/{id}/reactions/{emoji}", "delete"),
        ("/api/v1/conversations/{id}/read", "post"),
        ("/api/v1/users/{id}", "put"),
        ("/api/v1/postings/{id}", "put"),
        ("/healthz", "get"),
        ("/readyz", "get"),
        ("/api/v1/conversations", "get"),
        ("/api/v1/conversations/{id}", "get"),
        ("/api/v1/conversations/{id}/messages", "get"),
        ("/api/v1/conversations/direct", "get"),
        ("/api/v1/events", "get"),
        ("/api/v1/events/schema", "get"),
        ("/api/v1/ws", "get"),
        ("/api/v1/conversations/{id}/typing", "post"),
        ("/api/v1/presence", "get"),
    ] {
        assert!(paths.get(path).and_then(|p| p.get(method)).is_some(), "{method} {path} is documented");
    }
    assert!(doc.body["components"]["schemas"]["Problem"].is_object());
    // The realtime protocol: every frame and every socket command.
    for schema in [
        "RealtimeEventFrame",
        "RealtimeCommandFrame",
        "RealtimeAckFrame",
        "RealtimeTypingData",
        "RealtimePresenceData",
        "PresenceAnswer",
        "TypingBody",
    ] {
        assert!(doc.body["components"]["schemas"][schema].is_object(), "{schema} is documented");
    }
    let realtime = &doc.body["x-realtime"];
    for command in chat::http::SOCKET_COMMANDS {
        assert!(realtime["client_commands"].as_array().unwrap().iter().any(|c| c == command), "{command}");
        assert!(realtime["command_data"][command].is_string(), "{command}");
    }
    for event in ["ready", "typing", "presence", "ack", "conversation:updated"] {
        assert!(realtime["server_events"].as_array().unwrap().iter().any(|e| e == event), "{event}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_commands_in_flight_and_publishes_them() {
    let mut app = spawn_app().await;
    app.register_users(1..=2).await;
    let c = app.create_group(1, &[2]).await;
    let sends: Vec<_> = (0..50)
        .map(|i| tokio::spawn(app.call(Method::POST, &format!("/conversations/{c}/messages"), 2, Some(json!({"content": format!("{i}")})))))
        .collect();
    tokio::time::sleep(Duration::from_millis(20)).await;
    app.stop().await;
    let mut accepted = 0;
    for send in sends {
        if let Ok(answer) = send.await {
            if answer.status == StatusCode::CREATED {
                accepted += 1;
            }
        }
    }
    let messages: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM event_log WHERE event_type = 'MessageSent'").fetch_one(&app.pool).await.unwrap();
    assert!(messages >= accepted, "every accepted command is in the log ({messages} < {accepted})");
    let (head, cursor): (u64, u64) =
        sqlx::query_as("SELECT h.last_position, c.last_position FROM event_log_head h JOIN publication_cursor c ON c.name = 'jetstream'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(cursor, head, "everything committed was published before the process stopped");
    let again = spawn_app_sharing(&app).await;
    let published = again.consume_all(Duration::from_millis(500)).await;
    again.assert_published_exactly_once(&published).await;
}
