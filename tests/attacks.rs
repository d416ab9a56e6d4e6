//! Hostile input, one test per attack: forged tokens, another user's ids on
//! every path, oversized and deeply nested JSON, invalid UTF-8, injection
//! through the emoji path segment, a huge participant list. Each must be
//! refused with a clear 4xx problem, change nothing and reveal nothing.

mod common;

use common::{spawn_app, Answer, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// Sends raw bytes as a JSON body.
async fn raw_post(app: &TestApp, path: &str, user: i64, body: Vec<u8>) -> (StatusCode, Value) {
    let response = app
        .client
        .post(format!("{}/api/v1{path}", app.base))
        .bearer_auth(app.token(user))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("request sent");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn assert_problem(answer: &Answer, status: StatusCode, code: &str, what: &str) {
    assert_eq!((answer.status, answer.code()), (status, code), "{what}: {:?}", answer.body);
    assert_eq!(answer.headers["content-type"], "application/problem+json", "{what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_unsigned_and_expired_tokens_are_refused_everywhere() {
    let app = spawn_app().await;
    app.register_users(1..=2).await;
    let c = app.create_group(1, &[2]).await;
    let before = app.event_count().await;
    let forged = chat::http::JwtKeys::new("not-the-secret").issue(common::user(1), Some("chat:admin events:read"), 60).unwrap();
    let expired = app.jwt.issue(common::user(1), None, -3600).unwrap();
    // alg "none": header {"alg":"none","typ":"JWT"}, no signature.
    let unsigned = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiIxIiwiZXhwIjo0MTAyNDQ0ODAwfQ.";
    for token in [forged.as_str(), expired.as_str(), unsigned, "garbage", ""] {
        for (method, path, body) in [
            (Method::GET, "/api/v1/conversations".to_owned(), None),
            (Method::GET, format!("/api/v1/conversations/{c}/messages"), None),
            (Method::POST, format!("/api/v1/conversations/{c}/messages"), Some(json!({"content": "x"}))),
            (Method::PUT, "/api/v1/users/9".to_owned(), Some(json!({"first_name": "A", "last_name": "B"}))),
            (Method::GET, "/api/v1/events".to_owned(), None),
        ] {
            let answer = app.request(method, &path, Some(token), body, &[]).await;
            assert_problem(&answer, StatusCode::UNAUTHORIZED, "unauthorized", &path);
        }
    }
    let url = format!("{}/api/v1/ws?token={forged}", app.base.replacen("http://", "ws://", 1));
    match tokio_tungstenite::connect_async(&url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => assert_eq!(response.status(), 401),
        other => panic!("a forged token opened a WebSocket: {:?}", other.map(|(_, r)| r.status())),
    }
    assert_eq!(app.event_count().await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_users_ids_on_every_path_answer_404_like_ids_that_do_not_exist() {
    let app = spawn_app().await;
    app.register_users(1..=3).await;
    let c = app.create_group(1, &[2]).await;
    let m = app.send(2, &c, "private").await;
    app.call(Method::PUT, &format!("/messages/{m}/reactions/%F0%9F%91%8D"), 1, None).await;
    let before = app.event_count().await;
    let (missing_c, missing_m) = (uuid::Uuid::now_v7().to_string(), uuid::Uuid::now_v7().to_string());

    // User 3 is in the directory but not in the conversation.
    let attempts = |c: &str, m: &str| {
        vec![
            (Method::GET, format!("/conversations/{c}"), None),
            (Method::PATCH, format!("/conversations/{c}"), Some(json!({"name": "mine"}))),
            (Method::POST, format!("/conversations/{c}/archive"), None),
            (Method::POST, format!("/conversations/{c}/unarchive"), None),
            (Method::POST, format!("/conversations/{c}/participants"), Some(json!({"user_id": 3}))),
            (Method::PATCH, format!("/conversations/{c}/participants/me"), Some(json!({"is_muted": true}))),
            (Method::PATCH, format!("/conversations/{c}/participants/2"), Some(json!({"role": "OWNER"}))),
            (Method::DELETE, format!("/conversations/{c}/participants/2"), None),
            (Method::POST, format!("/conversations/{c}/messages"), Some(json!({"content": "hi"}))),
            (Method::GET, format!("/conversations/{c}/messages"), None),
            (Method::POST, format!("/conversations/{c}/read"), Some(json!({"message_id": m}))),
            (Method::PATCH, format!("/messages/{m}"), Some(json!({"content": "edited"}))),
            (Method::DELETE, format!("/messages/{m}"), None),
            (Method::PUT, format!("/messages/{m}/reactions/%F0%9F%91%8D"), None),
            (Method::DELETE, format!("/messages/{m}/reactions/%F0%9F%91%8D"), None),
        ]
    };
    for ((method, path, body), (_, missing_path, missing_body)) in attempts(&c, &m).into_iter().zip(attempts(&missing_c, &missing_m)) {
        let intruder = app.call(method.clone(), &path, 3, body).await;
        assert_problem(&intruder, StatusCode::NOT_FOUND, "not_found", &path);
        let missing = app.call(method, &missing_path, 3, missing_body).await;
        assert_eq!(intruder.body, missing.body, "{path}: the answer must not reveal that the id exists");
    }
    // Nor does the user's own list, or the realtime replay, show it.
    let list = app.call(Method::GET, "/conversations", 3, None).await;
    assert_eq!(list.body["items"].as_array().map(Vec::len), Some(0), "{:?}", list.body);
    let events = app.call(Method::GET, "/events", 3, None).await;
    assert_problem(&events, StatusCode::FORBIDDEN, "forbidden", "replay needs events:read");
    assert_eq!(app.event_count().await, before, "nothing was changed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deeply_nested_json_is_a_400_and_the_server_stays_up() {
    let app = spawn_app().await;
    app.register_users(1..=2).await;
    let c = app.create_group(1, &[2]).await;
    let before = app.event_count().await;
    let depth = 20_000; // 40 KB: under the body limit, far over any sane depth
    let nested = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    for body in [
        format!("{{\"content\": {nested}}}"),
        format!("{{\"content\": \"x\", \"message_type\": \"IMAGE\", \"media_url\": \"https://a.b/c\", \"media_metadata\": {{\"a\": {nested}}}}}"),
        nested.clone(),
    ] {
        let (status, problem) = raw_post(&app, &format!("/conversations/{c}/messages"), 1, body.into_bytes()).await;
        assert!(status == StatusCode::BAD_REQUEST || status == StatusCode::UNPROCESSABLE_ENTITY, "{status}: {problem}");
        assert!(problem["code"].is_string(), "{problem}");
    }
    // Objects nested inside media_metadata within its 16 KiB stay refused if too deep.
    let objects = format!("{}1{}", "{\"a\":".repeat(3_000), "}".repeat(3_000));
    let body = format!("{{\"message_type\": \"IMAGE\", \"media_url\": \"https://a.b/c\", \"media_metadata\": {objects}}}");
    let (status, _) = raw_post(&app, &format!("/conversations/{c}/messages"), 1, body.into_bytes()).await;
    assert!(status.is_client_error(), "{status}");
    assert_eq!(app.event_count().await, before);
    app.send(1, &c, "still serving").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_utf8_in_body_path_and_headers_is_refused() {
    let app = spawn_app().await;
    app.register_users(1..=2).await;
    let c = app.create_group(1, &[2]).await;
    let before = app.event_count().await;
    let mut body = b"{\"content\": \"caf".to_vec();
    body.extend_from_slice(&[0xC3, 0x28, 0xFF]);
    body.extend_from_slice(b"\"}");
    let (status, problem) = raw_post(&app, &format!("/conversations/{c}/messages"), 1, body).await;
    assert_eq!((status, problem["code"].as_str()), (StatusCode::BAD_REQUEST, Some("bad_request")), "{problem}");

    for path in [format!("/conversations/{c}%FF/messages"), "/users/%FF%FE".to_owned()] {
        let answer = app.call(Method::GET, &path, 1, None).await;
        assert!(answer.status.is_client_error(), "{path}: {}", answer.status);
        assert_eq!(answer.headers["content-type"], "application/problem+json", "{path}");
    }
    let answer = app
        .client
        .post(format!("{}/api/v1/conversations/{c}/messages", app.base))
        .bearer_auth(app.token(1))
        .header("idempotency-key", reqwest::header::HeaderValue::from_bytes(&[0x6B, 0xFF, 0xFE]).unwrap())
        .json(&json!({"content": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(app.event_count().await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_emoji_path_segment_is_data_never_code_or_a_path() {
    let app = spawn_app().await;
    app.register_users(1..=2).await;
    let c = app.create_group(1, &[2]).await;
    let m = app.send(2, &c, "react to me").await;
    let before = app.event_count().await;
    // Refused: too long, control characters, whitespace, invalid UTF-8, empty.
    for emoji in ["x".repeat(51), "%00".into(), "a%0Ab".into(), "%27%3B%20DROP%20TABLE%20messages%3B--".into(), "%FF".into(), "%20".into()]
    {
        let answer = app.call(Method::PUT, &format!("/messages/{m}/reactions/{emoji}"), 1, None).await;
        assert!(answer.status == StatusCode::UNPROCESSABLE_ENTITY || answer.status == StatusCode::NOT_FOUND, "{emoji}: {:?}", answer.body);
        assert_eq!(answer.headers["content-type"], "application/problem+json", "{emoji}");
    }
    assert_eq!(app.event_count().await, before, "no refused emoji appended anything");

    // Accepted as plain text: quotes, SQL and path syntax are stored and shown verbatim.
    let accepted = ["'OR'1'='1", "..%2F..%2Fusers", "%3Cscript%3E", "%F0%9F%91%8D", "%F0%9F%91%8E", "a", "A", "%2541"];
    let mut last = 0;
    for emoji in accepted {
        let answer = app.call(Method::PUT, &format!("/messages/{m}/reactions/{emoji}"), 1, None).await;
        assert_eq!(answer.status, StatusCode::CREATED, "{emoji}: {:?}", answer.body);
        last = answer.body["position"].as_u64().unwrap();
    }
    let position = app.call(Method::PUT, &format!("/messages/{m}/reactions/a"), 1, None).await;
    assert_eq!(position.status, StatusCode::OK, "the same reaction again");
    let page =
        app.request(Method::GET, &format!("/api/v1/conversations/{c}/messages?min_position={last}"), Some(&app.token(1)), None, &[]).await;
    let page = if page.status == StatusCode::OK { page } else { panic!("{:?}", page.body) };
    let mut shown: Vec<String> =
        page.body["items"][0]["reactions"].as_array().unwrap().iter().map(|r| r["emoji"].as_str().unwrap().to_owned()).collect();
    shown.sort();
    let mut expected = vec!["'OR'1'='1", "../../users", "<script>", "👍", "👎", "a", "A", "%41"];
    expected.sort();
    assert_eq!(shown, expected, "each emoji is its own reaction, stored verbatim (binary collation)");
    let messages: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM MESSAGES").fetch_one(&app.pool).await.unwrap();
    assert_eq!(messages, 1, "the MESSAGES table is intact");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_participant_list_of_100000_is_refused_whole() {
    let app = spawn_app().await;
    app.register_users(1..=2).await;
    let before = app.event_count().await;
    let ids: Vec<i64> = (2..100_002).collect();
    let body = serde_json::to_vec(&json!({"type": "GROUP", "name": "everyone", "participant_ids": ids})).unwrap();
    let (status, problem) = raw_post(&app, "/conversations", 1, body).await;
    assert_eq!((status, problem["code"].as_str()), (StatusCode::PAYLOAD_TOO_LARGE, Some("payload_too_large")), "{problem}");
    // Within the body limit, still more than 1,000: refused by the rule, naming the field.
    let ids: Vec<i64> = (2..6_002).collect();
    let body = serde_json::to_vec(&json!({"type": "GROUP", "name": "many", "participant_ids": ids})).unwrap();
    let (status, problem) = raw_post(&app, "/conversations", 1, body).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem["errors"][0]["field"], "participant_ids");
    assert_eq!(app.event_count().await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_below_the_handlers_are_problem_documents_too() {
    let app = spawn_app().await;
    // A plain GET on the WebSocket endpoint (no upgrade headers).
    let answer = app.call(Method::GET, "/ws", 1, None).await;
    assert!(answer.status.is_client_error(), "{}", answer.status);
    assert_eq!(answer.headers["content-type"], "application/problem+json");
    assert!(answer.code().len() > 3, "{:?}", answer.body);
}
