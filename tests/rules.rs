//! Every validation and authorisation rule of API.md: a 4xx problem document
//! with the right `code`, and nothing appended.

mod common;

use common::{spawn_app, Answer, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// Sends the request and checks it is refused with `status` and `code`, and
/// that the event log did not change.
async fn refused(app: &TestApp, method: Method, path: &str, as_user: i64, body: Option<Value>, status: StatusCode, code: &str) -> Answer {
    let before = app.event_count().await;
    let answer = app.call(method.clone(), path, as_user, body).await;
    assert_eq!(answer.status, status, "{method} {path}: {:?}", answer.body);
    assert_eq!(answer.code(), code, "{method} {path}: {:?}", answer.body);
    assert_eq!(answer.headers["content-type"], "application/problem+json");
    assert_eq!(answer.body["status"], status.as_u16());
    assert!(answer.body["type"].is_string() && answer.body["title"].is_string() && answer.body["detail"].is_string());
    assert_eq!(app.event_count().await, before, "{method} {path} appended events");
    answer
}

fn field_of(answer: &Answer) -> String {
    answer.body["errors"][0]["field"].as_str().unwrap_or("").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authentication_is_required_and_checked() {
    let app = spawn_app().await;
    let before = app.event_count().await;
    let none = app.request(Method::POST, "/api/v1/conversations", None, Some(json!({"type": "GROUP", "participant_ids": []})), &[]).await;
    assert_eq!((none.status, none.code()), (StatusCode::UNAUTHORIZED, "unauthorized"));
    let forged = chat::http::JwtKeys::new("another-secret").issue(common::user(1), None, 60).unwrap();
    let bad = app.request(Method::POST, "/api/v1/conversations", Some(&forged), Some(json!({})), &[]).await;
    assert_eq!((bad.status, bad.code()), (StatusCode::UNAUTHORIZED, "unauthorized"));
    let expired = app.jwt.issue(common::user(1), None, -3600).unwrap();
    let old = app.request(Method::POST, "/api/v1/conversations", Some(&expired), Some(json!({})), &[]).await;
    assert_eq!(old.status, StatusCode::UNAUTHORIZED);
    assert_eq!(app.event_count().await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directory_needs_the_admin_scope_and_valid_fields() {
    let app = spawn_app().await;
    let body = json!({"first_name": "A", "last_name": "B"});
    refused(&app, Method::PUT, "/users/5", 5, Some(body.clone()), StatusCode::FORBIDDEN, "forbidden").await;
    let admin = app.admin_token();
    let before = app.event_count().await;
    for (path, body, field) in [
        ("/api/v1/users/5", json!({"first_name": "", "last_name": "B"}), "first_name"),
        ("/api/v1/users/5", json!({"first_name": "A", "last_name": "B", "email": "nope"}), "email"),
        ("/api/v1/users/5", json!({"first_name": "A", "last_name": "B", "role": "x"}), "role"),
        ("/api/v1/postings/0193a0c2-8c1e-7000-8000-000000000001", json!({"title": " "}), "title"),
    ] {
        let answer = app.request(Method::PUT, path, Some(&admin), Some(body), &[]).await;
        assert_eq!((answer.status, answer.code()), (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"), "{path}");
        assert_eq!(field_of(&answer), field);
    }
    for path in ["/api/v1/users/0", "/api/v1/users/2147483648", "/api/v1/users/abc", "/api/v1/postings/not-a-uuid"] {
        let body = if path.contains("users") { body.clone() } else { json!({"title": "x"}) };
        let answer = app.request(Method::PUT, path, Some(&admin), Some(body), &[]).await;
        assert_eq!((answer.status, answer.code()), (StatusCode::NOT_FOUND, "not_found"), "{path}");
    }
    assert_eq!(app.event_count().await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_form_errors() {
    let app = spawn_app().await;
    app.register_users(1..=2).await;
    let token = app.token(1);
    let before = app.event_count().await;
    let raw = |body: &'static str, content_type: &'static str| {
        app.client
            .post(format!("{}/api/v1/conversations", app.base))
            .bearer_auth(&token)
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    let malformed = raw("{\"type\": ", "application/json").await.unwrap();
    assert_eq!(malformed.status(), StatusCode::BAD_REQUEST);
    let wrong_type = raw("{}", "text/plain").await.unwrap();
    assert_eq!(wrong_type.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let array = raw("[1]", "application/json").await.unwrap();
    assert_eq!(array.status(), StatusCode::UNPROCESSABLE_ENTITY);
    // Data after the JSON value is malformed JSON.
    let trailing = raw(r#"{"type": "GROUP", "participant_ids": [2]} trailing"#, "application/json").await.unwrap();
    assert_eq!(trailing.status(), StatusCode::BAD_REQUEST);
    let problem: Value = trailing.json().await.unwrap();
    assert_eq!(problem["code"], "bad_request");
    // Well-formed JSON with a field of the wrong type: 422 naming the field.
    let wrong_field = raw(r#"{"type": 1, "participant_ids": [2]}"#, "application/json").await.unwrap();
    assert_eq!(wrong_field.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let problem: Value = wrong_field.json().await.unwrap();
    assert_eq!((problem["code"].as_str(), problem["errors"][0]["field"].as_str()), (Some("validation_failed"), Some("type")), "{problem}");
    let big = format!("{{\"type\":\"GROUP\",\"name\":\"{}\",\"participant_ids\":[]}}", "a".repeat(70 * 1024));
    let too_large = app
        .client
        .post(format!("{}/api/v1/conversations", app.base))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(too_large.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let problem: Value = too_large.json().await.unwrap();
    assert_eq!(problem["code"], "payload_too_large");
    assert_eq!(app.event_count().await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creation_rules() {
    let app = spawn_app().await;
    app.register_users(1..=3).await;
    let cases = [
        (json!({"type": "DIRECT", "participant_ids": []}), "participant_ids"),
        (json!({"type": "DIRECT", "participant_ids": [2, 3]}), "participant_ids"),
        (json!({"type": "DIRECT", "participant_ids": [1]}), "participant_ids"),
        (json!({"type": "DIRECT", "name": "x", "participant_ids": [2]}), "name"),
        (json!({"type": "GROUP", "name": "", "participant_ids": [2]}), "name"),
        (json!({"type": "GROUP", "name": "a".repeat(201), "participant_ids": [2]}), "name"),
        (json!({"type": "CHANNEL", "participant_ids": [2]}), "type"),
        (json!({"type": "GROUP", "participant_ids": [0]}), "participant_ids[0]"),
        (json!({"type": "GROUP", "participant_ids": ["2"]}), "participant_ids[0]"),
        (json!({"type": "GROUP", "participant_ids": (2..=1001).collect::<Vec<i64>>()}), "participant_ids"),
        (json!({"type": "GROUP", "participant_ids": [2, 99]}), "participant_ids"),
        (json!({"type": "GROUP", "posting_id": "nope", "participant_ids": []}), "posting_id"),
        (json!({"type": "GROUP", "posting_id": "0193a0c2-8c1e-7000-8000-000000000001", "participant_ids": []}), "posting_id"),
        (json!({"type": "GROUP", "participant_ids": [], "extra": true}), "extra"),
    ];
    for (body, field) in cases {
        let answer =
            refused(&app, Method::POST, "/conversations", 1, Some(body.clone()), StatusCode::UNPROCESSABLE_ENTITY, "validation_failed")
                .await;
        assert_eq!(field_of(&answer), field, "{body}");
    }
    // A creator missing from the directory is a missing reference too.
    refused(
        &app,
        Method::POST,
        "/conversations",
        50,
        Some(json!({"type": "GROUP", "participant_ids": [2]})),
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn membership_and_role_rules() {
    let app = spawn_app().await;
    app.register_users(1..=6).await;
    let g = app.create_group(1, &[2, 3]).await; // 1 OWNER, 2 and 3 MEMBER
    let d = app.create_direct(1, 2).await;
    let p = |c: &str, rest: &str| format!("/conversations/{c}{rest}");
    let (nf, fb, cf, vf) = (StatusCode::NOT_FOUND, StatusCode::FORBIDDEN, StatusCode::CONFLICT, StatusCode::UNPROCESSABLE_ENTITY);

    // Not a participant, or not a conversation id: 404, nothing revealed.
    refused(&app, Method::POST, &p(&g, "/messages"), 4, Some(json!({"content": "x"})), nf, "not_found").await;
    refused(&app, Method::PATCH, &p(&g, ""), 4, Some(json!({"name": "x"})), nf, "not_found").await;
    refused(&app, Method::POST, &p("not-a-uuid", "/archive"), 1, None, nf, "not_found").await;
    refused(&app, Method::POST, &p("0193a0c2-8c1e-7000-8000-000000000001", "/archive"), 1, None, nf, "not_found").await;
    refused(&app, Method::DELETE, &p(&g, "/participants/0"), 1, None, nf, "not_found").await;
    refused(&app, Method::DELETE, &p(&g, "/participants/5"), 1, None, nf, "not_found").await;

    // Role rules: 403.
    refused(&app, Method::PATCH, &p(&g, ""), 2, Some(json!({"name": "x"})), fb, "forbidden").await;
    refused(&app, Method::POST, &p(&g, "/participants"), 2, Some(json!({"user_id": 4})), fb, "forbidden").await;
    refused(&app, Method::DELETE, &p(&g, "/participants/3"), 2, None, fb, "forbidden").await;
    refused(&app, Method::POST, &p(&g, "/archive"), 2, None, fb, "forbidden").await;
    refused(&app, Method::PATCH, &p(&g, "/participants/3"), 2, Some(json!({"role": "ADMIN"})), fb, "forbidden").await;

    // State rules: 409.
    refused(&app, Method::POST, &p(&g, "/participants"), 1, Some(json!({"user_id": 2})), cf, "conflict").await;
    refused(&app, Method::DELETE, &p(&g, "/participants/1"), 1, None, cf, "conflict").await;
    refused(&app, Method::PATCH, &p(&g, "/participants/1"), 1, Some(json!({"role": "MEMBER"})), cf, "conflict").await;
    refused(&app, Method::POST, &p(&d, "/participants"), 1, Some(json!({"user_id": 3})), cf, "conflict").await;
    refused(&app, Method::DELETE, &p(&d, "/participants/2"), 2, None, cf, "conflict").await;
    refused(&app, Method::PATCH, &p(&d, ""), 1, Some(json!({"name": "x"})), cf, "conflict").await;
    refused(&app, Method::PATCH, &p(&d, "/participants/2"), 1, Some(json!({"role": "ADMIN"})), cf, "conflict").await;
    refused(&app, Method::POST, &p(&g, "/unarchive"), 1, None, cf, "conflict").await;

    // Form and references: 422.
    refused(&app, Method::POST, &p(&g, "/participants"), 1, Some(json!({"user_id": 4, "role": "OWNER"})), vf, "validation_failed").await;
    refused(&app, Method::POST, &p(&g, "/participants"), 1, Some(json!({"user_id": 99})), vf, "validation_failed").await;
    refused(&app, Method::PATCH, &p(&g, "/participants/me"), 2, Some(json!({})), vf, "validation_failed").await;
    refused(&app, Method::PATCH, &p(&g, "/participants/3"), 1, Some(json!({"role": "KING"})), vf, "validation_failed").await;

    // Archived: only unarchive, read, leave and own settings.
    assert_eq!(app.call(Method::POST, &p(&g, "/archive"), 1, None).await.status, StatusCode::OK);
    refused(&app, Method::POST, &p(&g, "/messages"), 2, Some(json!({"content": "x"})), cf, "conflict").await;
    refused(&app, Method::PATCH, &p(&g, ""), 1, Some(json!({"name": "x"})), cf, "conflict").await;
    refused(&app, Method::POST, &p(&g, "/participants"), 1, Some(json!({"user_id": 4})), cf, "conflict").await;
    refused(&app, Method::POST, &p(&g, "/archive"), 1, None, cf, "conflict").await;
    assert_eq!(
        app.call(Method::PATCH, &p(&g, "/participants/me"), 2, Some(json!({"notifications_enabled": false}))).await.status,
        StatusCode::OK
    );
    assert_eq!(app.call(Method::DELETE, &p(&g, "/participants/3"), 3, None).await.status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_rules() {
    let app = spawn_app().await;
    app.register_users(1..=4).await;
    let g = app.create_group(1, &[2, 3]).await;
    let other = app.create_group(1, &[]).await;
    let m = app.send(2, &g, "hello").await;
    let elsewhere = app.send(1, &other, "elsewhere").await;
    let send = format!("/conversations/{g}/messages");
    let (nf, fb, cf, vf) = (StatusCode::NOT_FOUND, StatusCode::FORBIDDEN, StatusCode::CONFLICT, StatusCode::UNPROCESSABLE_ENTITY);

    for (body, field) in [
        (json!({"content": "   "}), "content"),
        (json!({}), "content"),
        (json!({"content": "a".repeat(10_001)}), "content"),
        (json!({"message_type": "SYSTEM", "content": "x"}), "message_type"),
        (json!({"message_type": "IMAGE"}), "media_url"),
        (json!({"message_type": "FILE", "media_url": "ftp://x.example/f"}), "media_url"),
        (json!({"message_type": "IMAGE", "media_url": format!("https://x.example/{}", "a".repeat(500))}), "media_url"),
        (json!({"message_type": "IMAGE", "media_url": "https://x.example/a", "media_metadata": [1]}), "media_metadata"),
        (json!({"content": "x", "reply_to_id": "nope"}), "reply_to_id"),
        (json!({"content": "x", "reply_to_id": elsewhere}), "reply_to_id"),
        (json!({"content": 5}), "content"),
    ] {
        let answer = refused(&app, Method::POST, &send, 2, Some(body.clone()), vf, "validation_failed").await;
        assert_eq!(field_of(&answer), field, "{body}");
    }
    let big_metadata = json!({"message_type": "IMAGE", "media_url": "https://x.example/a", "media_metadata": {"k": "a".repeat(17_000)}});
    let answer = refused(&app, Method::POST, &send, 2, Some(big_metadata), vf, "validation_failed").await;
    assert_eq!(field_of(&answer), "media_metadata");

    // Edits and deletes.
    refused(&app, Method::PATCH, &format!("/messages/{m}"), 3, Some(json!({"content": "x"})), fb, "forbidden").await;
    refused(&app, Method::PATCH, &format!("/messages/{m}"), 4, Some(json!({"content": "x"})), nf, "not_found").await;
    refused(&app, Method::PATCH, &format!("/messages/{m}"), 2, Some(json!({"content": " "})), vf, "validation_failed").await;
    refused(&app, Method::PATCH, "/messages/nope", 2, Some(json!({"content": "x"})), nf, "not_found").await;
    refused(&app, Method::PATCH, "/messages/0193a0c2-8c1e-7000-8000-000000000001", 2, Some(json!({"content": "x"})), nf, "not_found").await;
    refused(&app, Method::DELETE, &format!("/messages/{m}"), 3, None, fb, "forbidden").await;

    // Reactions: emoji form, absence.
    refused(&app, Method::PUT, &format!("/messages/{m}/reactions/a%20b"), 2, None, vf, "validation_failed").await;
    refused(&app, Method::PUT, &format!("/messages/{m}/reactions/{}", "x".repeat(51)), 2, None, vf, "validation_failed").await;
    refused(&app, Method::PUT, "/messages/nope/reactions/%F0%9F%91%8D", 2, None, nf, "not_found").await;
    refused(&app, Method::DELETE, &format!("/messages/{m}/reactions/%F0%9F%91%8D"), 2, None, nf, "not_found").await;

    // Read marks must name a message of this conversation.
    refused(&app, Method::POST, &format!("/conversations/{g}/read"), 2, Some(json!({"message_id": elsewhere})), vf, "validation_failed")
        .await;
    refused(&app, Method::POST, &format!("/conversations/{g}/read"), 2, Some(json!({"message_id": "x"})), vf, "validation_failed").await;

    // A deleted message can be neither edited, deleted nor reacted to.
    assert_eq!(app.call(Method::DELETE, &format!("/messages/{m}"), 1, None).await.status, StatusCode::OK, "an OWNER deletes");
    refused(&app, Method::PATCH, &format!("/messages/{m}"), 2, Some(json!({"content": "x"})), cf, "conflict").await;
    refused(&app, Method::DELETE, &format!("/messages/{m}"), 2, None, cf, "conflict").await;
    refused(&app, Method::PUT, &format!("/messages/{m}/reactions/%F0%9F%91%8D"), 2, None, cf, "conflict").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_routes_and_methods_are_problems() {
    let app = spawn_app().await;
    let missing = app.call(Method::GET, "/nothing-here", 1, None).await;
    assert_eq!((missing.status, missing.code()), (StatusCode::NOT_FOUND, "not_found"));
    let method = app.call(Method::PUT, "/conversations", 1, None).await;
    assert_eq!(method.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(method.headers["content-type"], "application/problem+json");
}
