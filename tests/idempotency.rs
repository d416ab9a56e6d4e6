//! `Idempotency-Key`: a retry answers the first response and appends nothing;
//! another body with the same key is refused; keys are per user.

mod common;

use common::spawn_app;
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_returns_the_first_response_and_appends_nothing() {
    let app = spawn_app().await;
    app.register_users(1..=2).await;
    let c = app.create_group(1, &[2]).await;
    let token = app.token(2);
    let path = format!("/api/v1/conversations/{c}/messages");
    let send = |content: &'static str, key: &'static str| {
        app.request(Method::POST, &path, Some(&token), Some(json!({"content": content})), &[("Idempotency-Key", key)])
    };
    let first = send("hello", "k-1").await;
    assert_eq!(first.status, StatusCode::CREATED);
    let count = app.event_count().await;
    let retry = send("hello", "k-1").await;
    assert_eq!(retry.status, StatusCode::CREATED);
    assert_eq!(retry.body, first.body, "same message id and position");
    assert_eq!(app.event_count().await, count, "nothing appended");

    let reused = send("other", "k-1").await;
    assert_eq!((reused.status, reused.code()), (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"));
    assert_eq!(app.event_count().await, count);

    // The same key from another user is another key.
    let other_token = app.token(1);
    let other =
        app.request(Method::POST, &path, Some(&other_token), Some(json!({"content": "hello"})), &[("Idempotency-Key", "k-1")]).await;
    assert_eq!(other.status, StatusCode::CREATED);
    assert_ne!(other.body["message_id"], first.body["message_id"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_command_can_be_retried_with_its_key() {
    let app = spawn_app().await;
    app.register_users(1..=3).await;
    let c = app.create_group(1, &[]).await;
    let token = app.token(1);
    let path = format!("/api/v1/conversations/{c}/participants");
    let add = || app.request(Method::POST, &path, Some(&token), Some(json!({"user_id": 9})), &[("Idempotency-Key", "add-9")]);
    assert_eq!(add().await.status, StatusCode::UNPROCESSABLE_ENTITY, "user 9 does not exist yet");
    app.register_users([9]).await;
    assert_eq!(add().await.status, StatusCode::CREATED, "the failed attempt did not consume the key");
    let replay = add().await;
    assert_eq!(replay.status, StatusCode::CREATED);
    assert_eq!(replay.headers["idempotent-replayed"], "true");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_op_answers_are_replayed_too() {
    let app = spawn_app().await;
    app.register_users(1..=2).await;
    let c = app.create_group(1, &[2]).await;
    let m = app.send(2, &c, "hi").await;
    let token = app.token(1);
    let path = format!("/api/v1/messages/{m}/reactions/%E2%9D%A4");
    let first = app.request(Method::PUT, &path, Some(&token), None, &[]).await;
    assert_eq!(first.status, StatusCode::CREATED);
    let keyed = app.request(Method::PUT, &path, Some(&token), None, &[("Idempotency-Key", "again")]).await;
    assert_eq!(keyed.status, StatusCode::OK);
    let replay = app.request(Method::PUT, &path, Some(&token), None, &[("Idempotency-Key", "again")]).await;
    assert_eq!((replay.status, &replay.body), (StatusCode::OK, &keyed.body));
    assert_eq!(replay.body["reaction_id"], first.body["reaction_id"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_retries_with_one_key_append_once() {
    let app = spawn_app().await;
    app.register_users(1..=2).await;
    let c = app.create_group(1, &[2]).await;
    let token = app.token(2);
    let path = format!("/api/v1/conversations/{c}/messages");
    let before = app.event_count().await;
    let attempts =
        (0..10).map(|_| app.request(Method::POST, &path, Some(&token), Some(json!({"content": "once"})), &[("Idempotency-Key", "burst")]));
    let answers = futures::future::join_all(attempts).await;
    let created: Vec<_> = answers.iter().filter(|a| a.status == StatusCode::CREATED).collect();
    assert!(!created.is_empty());
    for answer in &answers {
        assert!(answer.status == StatusCode::CREATED || answer.code() == "idempotency_in_progress", "{:?}", answer.body);
    }
    assert!(created.iter().all(|a| a.body == created[0].body), "every success is the first response");
    assert_eq!(app.event_count().await, before + 1, "exactly one message appended");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_keys_are_refused() {
    let app = spawn_app().await;
    app.register_users(1..=1).await;
    let token = app.token(1);
    let long = "k".repeat(256);
    let answer = app
        .request(
            Method::POST,
            "/api/v1/conversations",
            Some(&token),
            Some(json!({"type": "GROUP", "participant_ids": []})),
            &[("Idempotency-Key", &long)],
        )
        .await;
    assert_eq!((answer.status, answer.code()), (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_release_never_frees_a_key_another_request_took_over() {
    use chat::app::idempotency::{IdempotencyStore, Reservation};
    let app = spawn_app().await;
    let store = IdempotencyStore::new(app.pool.clone());
    let (first, second) = (IdempotencyStore::new_lease(), IdempotencyStore::new_lease());
    let user = common::user(1);
    assert_eq!(store.reserve(user, "k", "hash", &first).await.unwrap(), Reservation::Acquired);
    // The first request's lease runs out (it died, or the database was down); a retry takes the key over.
    sqlx::query("UPDATE idempotency_keys SET locked_at = locked_at - INTERVAL 31 SECOND").execute(&app.pool).await.unwrap();
    assert_eq!(store.reserve(user, "k", "hash", &second).await.unwrap(), Reservation::Acquired);

    // The first request's release, retried until the database answered, comes late: it frees nothing.
    store.release(user, "k", &first).await.unwrap();
    let holder: Option<String> =
        sqlx::query_scalar("SELECT lease_token FROM idempotency_keys WHERE idempotency_key = 'k'").fetch_optional(&app.pool).await.unwrap();
    assert_eq!(holder.as_deref(), Some(second.as_str()), "the retry still holds the key");
    store.release(user, "k", &second).await.unwrap();
    let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM idempotency_keys").fetch_one(&app.pool).await.unwrap();
    assert_eq!(left, 0, "its holder frees it");
}
