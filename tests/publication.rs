//! Publication on NATS JetStream: every event exactly once, in position
//! order, with the documented subject and headers, through NATS outages and
//! restarts of the app.

mod common;

use std::time::Duration;

use common::nats_process::NatsProcess;
use common::{spawn_app, spawn_app_with_nats};
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_sees_each_event_once_with_subject_and_headers() {
    let app = spawn_app().await;
    app.register_users(1..=3).await;
    let c = app.create_group(1, &[2, 3]).await;
    for i in 0..20 {
        app.send(1 + i % 3, &c, &format!("m{i}")).await;
    }
    assert!(app.wait_published(Duration::from_secs(10)).await, "publisher catches up");
    let published = app.consume_all(Duration::from_millis(700)).await;
    app.assert_published_exactly_once(&published).await;
    assert!(published.iter().any(|m| m.subject == format!("{}.conversation.{c}.MessageSent", app.subject_prefix)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarting_the_app_publishes_nothing_twice() {
    let mut app = spawn_app().await;
    app.register_users(1..=2).await;
    let c = app.create_group(1, &[2]).await;
    app.send(2, &c, "before").await;
    assert!(app.wait_published(Duration::from_secs(10)).await);
    app.stop().await;
    // Forget the cursor: the publisher must find its place from the stream itself.
    sqlx::query("DELETE FROM publication_cursor").execute(&app.pool).await.unwrap();
    let config_app = common::spawn_app_sharing(&app).await;
    config_app.send(2, &c, "after").await;
    assert!(config_app.wait_published(Duration::from_secs(10)).await);
    let published = config_app.consume_all(Duration::from_millis(700)).await;
    config_app.assert_published_exactly_once(&published).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publication_survives_a_nats_outage() {
    let mut nats = NatsProcess::start().await;
    let app = spawn_app_with_nats(&nats.url()).await;
    app.register_users(1..=3).await;
    let c = app.create_group(1, &[2, 3]).await;
    for i in 0..10 {
        app.send(1 + i % 3, &c, &format!("before {i}")).await;
    }
    assert!(app.wait_published(Duration::from_secs(10)).await);

    nats.stop();
    for i in 0..30 {
        let answer = app
            .call(Method::POST, &format!("/conversations/{c}/messages"), 1 + i % 3, Some(json!({"content": format!("during {i}")})))
            .await;
        assert_eq!(answer.status, StatusCode::CREATED, "commands are accepted while NATS is down");
    }
    assert!(!app.wait_published(Duration::from_millis(500)).await, "nothing can be published now");
    let ready = app.request(Method::GET, "/readyz", None, None, &[]).await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(ready.body["nats"], "down");

    nats.restart().await;
    for i in 0..5 {
        app.send(1 + i % 3, &c, &format!("after {i}")).await;
    }
    assert!(app.wait_published(Duration::from_secs(30)).await, "publication catches up when NATS returns");
    let published = app.consume_all(Duration::from_millis(700)).await;
    app.assert_published_exactly_once(&published).await;
    assert_eq!(published.len(), 3 + 1 + 45, "3 users, 1 conversation, 45 messages");
}
