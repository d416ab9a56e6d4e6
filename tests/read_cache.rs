//! The read cache never answers what the database would not: along a scripted
//! history, every query of a cached process (with the projector in it, and
//! one following a projector elsewhere) equals, byte for byte, what a process
//! without a cache answers at the same position; and after a push, a query
//! without `min_position` already shows what was pushed.

mod common;

use std::time::Duration;

use common::ws::Subscriber;
use common::{spawn_api_sharing, spawn_app, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// Every query the cache serves, as each user would ask it.
fn queries(group: &str, direct: &str, first_message: Option<&str>) -> Vec<(i64, String)> {
    let mut paths = Vec::new();
    for user in 1..=4 {
        paths.push((user, "/conversations".to_owned()));
        paths.push((user, "/conversations?archived=true".to_owned()));
        paths.push((user, "/conversations?limit=1&offset=1".to_owned()));
        paths.push((user, format!("/conversations/{group}")));
        paths.push((user, format!("/conversations/{direct}")));
        paths.push((user, format!("/conversations/{group}/messages")));
        paths.push((user, format!("/conversations/{group}/messages?limit=2&offset=1")));
        if let Some(first) = first_message {
            paths.push((user, format!("/conversations/{group}/messages?limit=2&before={first}")));
        }
        paths.push((user, format!("/conversations/{direct}/messages")));
        paths.push((user, "/conversations/direct?user_id=2".to_owned()));
    }
    paths
}

async fn answer(app: &TestApp, user: i64, path: &str, position: Option<u64>) -> (StatusCode, Value) {
    let path = match position {
        None => path.to_owned(),
        Some(position) => format!("{path}{}min_position={position}", if path.contains('?') { '&' } else { '?' }),
    };
    let answer = app.call(Method::GET, &path, user, None).await;
    (answer.status, answer.body)
}

/// Asks every query of every app at `position` and compares them with the uncached app.
async fn compare_all(uncached: &TestApp, cached: &[&TestApp], paths: &[(i64, String)], position: u64, step: &str) {
    for (user, path) in paths {
        let expected = answer(uncached, *user, path, Some(position)).await;
        assert_ne!(expected.0, StatusCode::SERVICE_UNAVAILABLE, "{step}: {path}");
        for (n, app) in cached.iter().enumerate() {
            let got = answer(app, *user, path, Some(position)).await;
            assert_eq!(got, expected, "{step}: user {user} {path} on cached app {n}");
        }
    }
}

fn position(answer: &common::Answer) -> u64 {
    answer.body["position"].as_u64().unwrap_or_else(|| panic!("a position in {:?}", answer.body))
}

#[tokio::test]
async fn cached_answers_equal_uncached_ones_along_a_history() {
    let app = spawn_app().await;
    let follower = spawn_api_sharing(&app, 64).await;
    let uncached = spawn_api_sharing(&app, 0).await;
    app.register_users(1..=4).await;
    let group = app.create_group(1, &[2, 3]).await;
    let direct = app.create_direct(1, 2).await;
    let first = app.send(2, &group, "first").await;
    let last = app.send(3, &group, "second").await;
    let paths = queries(&group, &direct, Some(&first));
    let start = app.call(Method::POST, &format!("/conversations/{group}/messages"), 1, Some(json!({"content": "third"}))).await;
    compare_all(&uncached, &[&app, &follower], &paths, position(&start), "start").await;

    let g = format!("/conversations/{group}");
    let steps: Vec<(&str, Method, String, i64, Option<Value>)> = vec![
        ("send", Method::POST, format!("{g}/messages"), 2, Some(json!({"content": "fourth"}))),
        ("read", Method::POST, format!("{g}/read"), 2, Some(json!({"message_id": last}))),
        ("edit", Method::PATCH, format!("/messages/{last}"), 3, Some(json!({"content": "second, edited"}))),
        ("react", Method::PUT, format!("/messages/{first}/reactions/%F0%9F%8E%89"), 1, None),
        ("unreact", Method::DELETE, format!("/messages/{first}/reactions/%F0%9F%8E%89"), 1, None),
        ("delete", Method::DELETE, format!("/messages/{last}"), 3, None),
        ("rename", Method::PATCH, g.clone(), 1, Some(json!({"name": "renamed"}))),
        ("add", Method::POST, format!("{g}/participants"), 1, Some(json!({"user_id": 4}))),
        ("role", Method::PATCH, format!("{g}/participants/4"), 1, Some(json!({"role": "ADMIN"}))),
        ("mute", Method::PATCH, format!("{g}/participants/me"), 2, Some(json!({"is_muted": true}))),
        ("remove", Method::DELETE, format!("{g}/participants/3"), 1, None),
        ("archive", Method::POST, format!("{g}/archive"), 1, None),
        ("unarchive", Method::POST, format!("{g}/unarchive"), 1, None),
        ("direct message", Method::POST, format!("/conversations/{direct}/messages"), 2, Some(json!({"content": "hi"}))),
    ];
    for (step, method, path, user, body) in steps {
        // Every query is cached (asked just before) when the step happens.
        let done = app.call(method, &path, user, body).await;
        assert!(done.status.is_success(), "{step}: {:?}", done.body);
        compare_all(&uncached, &[&app, &follower], &paths, position(&done), step).await;
    }
    // A profile shows in every answer that names the user.
    let admin = app.admin_token();
    let profile = json!({"first_name": "Renamed", "last_name": "User"});
    let done = app.request(Method::PUT, "/api/v1/users/2", Some(&admin), Some(profile), &[]).await;
    assert_eq!(done.status, StatusCode::OK, "{:?}", done.body);
    compare_all(&uncached, &[&app, &follower], &paths, position(&done), "profile").await;
    let list = answer(&follower, 1, "/conversations", Some(position(&done))).await.1;
    assert!(list.to_string().contains("Renamed"), "{list}");
}

#[tokio::test]
async fn after_a_push_a_query_without_min_position_shows_it() {
    let app = spawn_app().await;
    app.register_users(1..=2).await;
    let group = app.create_group(1, &[2]).await;
    let warm = app.call(Method::POST, &format!("/conversations/{group}/messages"), 2, Some(json!({"content": "warm"}))).await;
    assert_eq!(answer(&app, 1, "/conversations", Some(position(&warm))).await.0, StatusCode::OK);
    let mut subscriber = Subscriber::connect(&app, 1, None).await;
    for n in 0..20 {
        // Cached before the send, so a stale answer would be there to serve.
        let before = answer(&app, 1, &format!("/conversations/{group}/messages"), None).await;
        assert_eq!(before.0, StatusCode::OK);
        let content = format!("message {n}");
        app.send(2, &group, &content).await;
        loop {
            let frame = subscriber.next(Duration::from_secs(10)).await.expect("a push");
            if frame["event"] == "message:new" && frame["data"]["content"] == content {
                break;
            }
        }
        let page = answer(&app, 1, &format!("/conversations/{group}/messages"), None).await.1;
        assert_eq!(page["items"][0]["content"], content, "the pushed message is in the page");
        let list = answer(&app, 1, "/conversations", None).await.1;
        assert_eq!(list["items"][0]["unread_count"], n + 2, "{list}");
    }
}
