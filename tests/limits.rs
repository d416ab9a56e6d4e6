//! Abuse limits: per-user command rate, realtime connections per user, open
//! connections, request head size, and deadlines for slow clients. Each test
//! runs an app with small limits of its own.

mod common;

use std::time::{Duration, Instant};

use chat::config::Limits;
use common::ws::Subscriber;
use common::{spawn_app_with_limits, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn limits() -> Limits {
    Limits { commands_per_second: 1_000, command_burst: 1_000, ..Limits::DEFAULT }
}

fn addr(app: &TestApp) -> String {
    app.base.trim_start_matches("http://").to_owned()
}

/// Reads until the server closes the connection (or `within` passes); answers
/// what was read and whether it closed.
async fn read_until_closed(stream: &mut TcpStream, within: Duration) -> (String, bool) {
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buffer)).await {
            Err(_) => return (String::from_utf8_lossy(&received).into_owned(), false),
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&received).into_owned(), true),
            Ok(Ok(n)) => received.extend_from_slice(&buffer[..n]),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_over_the_rate_limit_answer_429_and_change_nothing() {
    let app = spawn_app_with_limits(Limits { commands_per_second: 1, command_burst: 5, ..Limits::DEFAULT }).await;
    // The directory's backend (scope chat:admin) is not limited: ten registrations pass a burst of five.
    app.register_users(1..=10).await;
    let c = app.create_group(2, &[3]).await;
    for i in 0..4 {
        app.send(2, &c, &format!("within the burst {i}")).await;
    }
    let events = app.event_count().await;

    let refused = app.call(Method::POST, &format!("/conversations/{c}/messages"), 2, Some(json!({"content": "one too many"}))).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.code(), "rate_limited");
    assert_eq!(refused.headers["content-type"], "application/problem+json");
    let retry_after: u64 = refused.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry_after), "Retry-After {retry_after}");
    assert_eq!(app.event_count().await, events, "a refused command appends nothing");

    // Other users keep their own budget; queries are not counted.
    app.send(3, &c, "another user").await;
    let head = app.event_count().await; // positions are dense from 1
    assert_eq!(app.call(Method::GET, &format!("/conversations/{c}/messages?min_position={head}"), 2, None).await.status, StatusCode::OK);

    tokio::time::sleep(Duration::from_secs(retry_after)).await;
    app.send(2, &c, "after waiting").await;

    let metrics = app.request(Method::GET, "/metrics", None, None, &[]).await;
    let text = metrics.body.as_str().unwrap_or_default().to_owned();
    assert!(text.contains("chat_rate_limited_total"), "{text}");
    assert!(text.contains("chat_limit_commands_per_second"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_holds_at_most_the_configured_realtime_connections() {
    let app = spawn_app_with_limits(Limits { realtime_connections_per_user: 2, ..limits() }).await;
    app.register_users(1..=2).await;
    let first = Subscriber::connect(&app, 2, None).await;
    let _second = Subscriber::connect(&app, 2, None).await;

    let url = format!("{}/api/v1/ws?token={}", app.base.replacen("http://", "ws://", 1), app.token(2));
    match tokio_tungstenite::connect_async(&url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 429);
            assert!(response.headers().contains_key("retry-after"));
        }
        other => panic!("a third connection must be refused with 429, got {:?}", other.map(|(_, r)| r.status())),
    }
    // Another user is not affected.
    let _other = Subscriber::connect(&app, 1, None).await;

    // Closing one frees its place.
    first.close().await;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match tokio_tungstenite::connect_async(&url).await {
            Ok(_) => break,
            Err(_) if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(100)).await,
            Err(error) => panic!("a place was not freed by closing a connection: {error}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_cap_are_closed_and_the_others_still_served() {
    let app = spawn_app_with_limits(Limits { max_connections: 3, ..limits() }).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut stream = TcpStream::connect(addr(&app)).await.unwrap();
        stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: chat\r\n\r\n").await.unwrap();
        let mut buffer = [0u8; 1024];
        let n = stream.read(&mut buffer).await.unwrap();
        assert!(String::from_utf8_lossy(&buffer[..n]).starts_with("HTTP/1.1 200"));
        held.push(stream); // kept alive
    }
    let mut extra = TcpStream::connect(addr(&app)).await.unwrap();
    let _ = extra.write_all(b"GET /healthz HTTP/1.1\r\nHost: chat\r\n\r\n").await;
    let (answer, closed) = read_until_closed(&mut extra, Duration::from_secs(5)).await;
    assert!(closed && answer.is_empty(), "a fourth connection is closed unanswered, got {answer:?}");

    // The held connections are still served.
    held[0].write_all(b"GET /healthz HTTP/1.1\r\nHost: chat\r\n\r\n").await.unwrap();
    let mut buffer = [0u8; 1024];
    let n = held[0].read(&mut buffer).await.unwrap();
    assert!(String::from_utf8_lossy(&buffer[..n]).starts_with("HTTP/1.1 200"));

    // Closing one frees a place.
    drop(held.pop());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let answer = app.client.get(format!("{}/healthz", app.base)).send().await.expect("a new connection is served");
    assert_eq!(answer.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_trickling_its_headers_is_disconnected() {
    let app = spawn_app_with_limits(Limits { header_timeout_secs: 1, ..limits() }).await;
    let mut stream = TcpStream::connect(addr(&app)).await.unwrap();
    stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: chat\r\n").await.unwrap();
    let started = Instant::now();
    let mut closed = false;
    for i in 0..20 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        if stream.write_all(format!("X-Slow-{i}: a\r\n").as_bytes()).await.is_err() {
            closed = true;
            break;
        }
        let mut buffer = [0u8; 256];
        if let Ok(Ok(0) | Err(_)) = tokio::time::timeout(Duration::from_millis(1), stream.read(&mut buffer)).await {
            closed = true;
            break;
        }
    }
    let elapsed = started.elapsed();
    assert!(closed, "the server still waits for headers after {elapsed:?}");
    assert!(elapsed < Duration::from_secs(4), "closed only after {elapsed:?}");

    // An idle keep-alive connection is closed too, while a normal client is served.
    let mut idle = TcpStream::connect(addr(&app)).await.unwrap();
    let (_, closed) = read_until_closed(&mut idle, Duration::from_secs(4)).await;
    assert!(closed, "an idle connection is closed after the header deadline");
    assert_eq!(app.client.get(format!("{}/healthz", app.base)).send().await.unwrap().status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_sent_too_slowly_answers_408_and_changes_nothing() {
    let app = spawn_app_with_limits(Limits { body_timeout_secs: 1, ..limits() }).await;
    app.register_users(1..=2).await;
    let c = app.create_group(1, &[2]).await;
    let events = app.event_count().await;
    let mut stream = TcpStream::connect(addr(&app)).await.unwrap();
    let head = format!(
        "POST /api/v1/conversations/{c}/messages HTTP/1.1\r\nHost: chat\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"content\": \"hel",
        app.token(1)
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let (answer, _) = read_until_closed(&mut stream, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("request_timeout"), "{answer}");
    assert_eq!(app.event_count().await, events);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_head_over_the_limit_answers_431() {
    let app = spawn_app_with_limits(Limits { max_header_bytes: 16 * 1024, ..limits() }).await;
    let big = "a".repeat(20 * 1024);
    let answer = app.client.get(format!("{}/healthz", app.base)).header("x-big", big).send().await.unwrap();
    assert_eq!(answer.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    let fine = "a".repeat(8 * 1024);
    let answer = app.client.get(format!("{}/healthz", app.base)).header("x-big", fine).send().await.unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
}
