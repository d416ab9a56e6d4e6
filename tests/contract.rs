//! What contract fuzzing (`.ci/contract`, schemathesis against the served
//! OpenAPI document) found, kept as regression tests: inputs that made the
//! server fail, and the document declaring every error answer it gives.

mod common;

use std::time::{Duration, Instant};

use chat::config::Role;
use chat::domain::UserId;
use common::{spawn_app, spawn_app_with_roles};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// A `min_position` past the log's last position can never be reached: it
/// used to wait out the read wait and answer 503 (a server error on input).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn min_position_past_the_event_log_is_refused_at_once() {
    let app = spawn_app().await;
    app.register_users(1..=2).await;
    let created = app.call(Method::POST, "/conversations", 1, Some(json!({"type": "DIRECT", "participant_ids": [2]}))).await;
    let at = created.body["position"].as_u64().expect("position");
    let conversation = created.body["conversation_id"].as_str().expect("id").to_owned();

    for path in [
        format!("/conversations?min_position={}", at + 1),
        format!("/conversations/{conversation}?min_position={}", i64::MAX),
        format!("/conversations/{conversation}/messages?min_position={}", at + 1000),
        format!("/conversations/direct?user_id=2&min_position={}", at + 1),
    ] {
        let started = Instant::now();
        let answer = app.call(Method::GET, &path, 1, None).await;
        assert_eq!((answer.status, answer.code()), (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"), "{path}: {:?}", answer.body);
        assert_eq!(answer.body["errors"][0]["field"], "min_position", "{path}");
        assert!(started.elapsed() < Duration::from_millis(1500), "{path} answered without waiting for the read models");
    }
    let reached = app.call(Method::GET, &format!("/conversations/{conversation}?min_position={at}"), 1, None).await;
    assert_eq!(reached.status, StatusCode::OK, "{:?}", reached.body);
}

/// A position the log holds but the read models have not applied still
/// answers 503 `projection_lagging` past the read wait (here: no projector runs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn min_position_the_read_models_have_not_reached_answers_projection_lagging() {
    let app = spawn_app_with_roles(&[Role::Api]).await;
    app.register_users(1..=2).await;
    let created = app.call(Method::POST, "/conversations", 1, Some(json!({"type": "GROUP", "name": "g", "participant_ids": [2]}))).await;
    let at = created.body["position"].as_u64().expect("position");
    let lagging = app.call(Method::GET, &format!("/conversations?min_position={at}"), 1, None).await;
    assert_eq!((lagging.status, lagging.code()), (StatusCode::SERVICE_UNAVAILABLE, "projection_lagging"), "{:?}", lagging.body);
    assert!(lagging.headers.contains_key("retry-after"));
}

/// A `stream_id` the log's ASCII column cannot hold used to fail in the
/// database after the 200 had begun: the client saw a broken chunked body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_replay_refuses_a_stream_id_the_log_cannot_hold() {
    let app = spawn_app().await;
    app.register_users(1..=1).await;
    let token = app.jwt.issue(UserId::new(1).expect("user"), Some("events:read"), 3600).expect("token");
    for stream_id in ["%C2%80", "%F0%9F%98%80", "a%00b", "a%20b"] {
        let answer = app.request(Method::GET, &format!("/api/v1/events?stream_id={stream_id}"), Some(&token), None, &[]).await;
        assert_eq!((answer.status, answer.code()), (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"), "{stream_id}");
        assert_eq!(answer.body["errors"][0]["field"], "stream_id");
        assert_eq!(answer.headers["content-type"], "application/problem+json");
    }
    let user_stream = app.request(Method::GET, "/api/v1/events?stream_id=1", Some(&token), None, &[]).await;
    assert_eq!(user_stream.status, StatusCode::OK);
    // One line of NDJSON reads as one JSON document; more stay text.
    let first: Value = match &user_stream.body {
        Value::String(ndjson) => serde_json::from_str(ndjson.lines().next().expect("an event")).expect("JSON"),
        event => event.clone(),
    };
    assert_eq!(first["stream_id"], "1");
}

/// The OpenAPI document declares the refusals of the shared layers where
/// they can happen, every one as `application/problem+json`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_declares_every_refusal_as_a_problem_document() {
    let app = spawn_app().await;
    let doc = app.request(Method::GET, "/api/v1/openapi.json", None, None, &[]).await;
    assert_eq!(doc.status, StatusCode::OK);
    let mut commands = 0;
    for (path, item) in doc.body["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("path item") {
            let responses = operation["responses"].as_object().expect("responses");
            let declares = |status: &str| responses.contains_key(status);
            let name = format!("{method} {path}");
            for (status, response) in responses {
                if status.starts_with('4') || (status.starts_with('5') && path != "/readyz") {
                    let content = response["content"].as_object().unwrap_or_else(|| panic!("{name} {status} has a body"));
                    assert_eq!(content.keys().collect::<Vec<_>>(), ["application/problem+json"], "{name} {status}");
                    assert_eq!(content["application/problem+json"]["schema"]["$ref"], "#/components/schemas/Problem", "{name} {status}");
                }
            }
            let secured = operation["security"].as_array().is_some_and(|s| !s.is_empty());
            if secured {
                assert!(declares("401") && declares("503"), "{name} declares 401 and 503");
                assert_eq!(responses["401"]["headers"]["WWW-Authenticate"]["schema"]["type"], "string", "{name}");
            }
            if operation.get("requestBody").is_some() {
                for status in ["400", "413", "415", "422"] {
                    assert!(declares(status), "{name} declares {status}");
                }
            }
            if operation["parameters"].as_array().is_some_and(|p| p.iter().any(|p| p["in"] == "path")) {
                assert!(declares("404"), "{name} declares 404");
            }
            // Typing is a signal, not a command (API.md: a command appends
            // events): nothing is stored, so there is nothing to retry safely.
            let is_signal = path.ends_with("/typing");
            if secured && method != "get" && is_signal {
                assert_eq!(responses["429"]["headers"]["Retry-After"]["schema"]["type"], "integer", "{name} declares 429 and Retry-After");
                assert!(responses.contains_key("204"), "{name} answers 204, no position");
            }
            if secured && method != "get" && !is_signal {
                commands += 1;
                assert_eq!(responses["429"]["headers"]["Retry-After"]["schema"]["type"], "integer", "{name} declares 429 and Retry-After");
                let key = operation["parameters"].as_array().and_then(|p| p.iter().find(|p| p["name"] == "Idempotency-Key"));
                let key = key.unwrap_or_else(|| panic!("{name} takes an Idempotency-Key"));
                assert_eq!((&key["schema"]["minLength"], &key["schema"]["maxLength"]), (&json!(1), &json!(255)), "{name}");
                assert!(declares("409"), "{name} declares 409 (idempotency_in_progress)");
            }
        }
    }
    assert_eq!(commands, 16, "every command of API.md is checked");
}
