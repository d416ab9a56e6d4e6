//! Analytics replay: NDJSON paging and filters, follow, export, event
//! schemas, and upcasting of events stored under an older schema version.

mod common;

use std::time::Duration;

use common::{spawn_app, TestApp};
use futures::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

fn events_token(app: &TestApp) -> String {
    app.jwt.issue(common::user(1), Some("events:read"), 3600).unwrap()
}

/// GET /api/v1/events with `query`, as parsed lines.
async fn replay(app: &TestApp, query: &str) -> Vec<Value> {
    let response = app.client.get(format!("{}/api/v1/events?{query}", app.base)).bearer_auth(events_token(app)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/x-ndjson");
    let text = response.text().await.unwrap();
    text.lines().filter(|l| !l.is_empty()).map(|l| serde_json::from_str(l).unwrap()).collect()
}

async fn some_history(app: &TestApp) -> String {
    app.register_users(1..=3).await;
    let c = app.create_group(1, &[2, 3]).await;
    for i in 0..30 {
        app.send(1 + i % 3, &c, &format!("m{i}")).await;
    }
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paging_with_after_and_limit_gives_every_event_once_in_order() {
    let app = spawn_app().await;
    some_history(&app).await;
    let total = app.event_count().await as u64;
    let mut positions = Vec::new();
    let mut after = 0;
    loop {
        let page = replay(&app, &format!("after={after}&limit=7")).await;
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 7);
        positions.extend(page.iter().map(|e| e["position"].as_u64().unwrap()));
        after = page.last().unwrap()["position"].as_u64().unwrap();
    }
    assert_eq!(positions, (1..=total).collect::<Vec<_>>());
    let line = &replay(&app, "after=0&limit=1").await[0];
    for field in ["position", "event_id", "stream_id", "stream_version", "type", "schema_version", "data", "metadata", "recorded_at"] {
        assert!(line.get(field).is_some(), "{field} in {line}");
    }
    assert!(line["metadata"]["user_id"].is_number());
    assert!(line["schema_version"].is_u64());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn type_and_stream_filters() {
    let app = spawn_app().await;
    let c = some_history(&app).await;
    let other = app.create_group(2, &[1]).await;
    app.send(2, &other, "elsewhere").await;
    let sent = replay(&app, "type=MessageSent&limit=1000").await;
    assert_eq!(sent.len(), 31);
    assert!(sent.iter().all(|e| e["type"] == "MessageSent"));
    let two = replay(&app, "type=UserRegistered,ConversationCreated&limit=1000").await;
    assert_eq!(two.len(), 3 + 2);
    let repeated = replay(&app, "type=UserRegistered&type=ConversationCreated&limit=1000").await;
    assert_eq!(repeated, two);
    let stream = replay(&app, &format!("stream_id={c}&limit=1000")).await;
    assert_eq!(stream.len(), 31);
    assert!(stream.iter().all(|e| e["stream_id"] == c.as_str()));
    let versions: Vec<u64> = stream.iter().map(|e| e["stream_version"].as_u64().unwrap()).collect();
    assert_eq!(versions, (1..=31).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_needs_its_scope_and_known_types() {
    let app = spawn_app().await;
    let plain = app.call(Method::GET, "/events", 1, None).await;
    assert_eq!((plain.status, plain.code()), (StatusCode::FORBIDDEN, "forbidden"));
    let token = events_token(&app);
    let unknown = app.request(Method::GET, "/api/v1/events?type=Nope", Some(&token), None, &[]).await;
    assert_eq!((unknown.status, unknown.code()), (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"));
    let bad = app.request(Method::GET, "/api/v1/events?limit=0", Some(&token), None, &[]).await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    let none = app.request(Method::GET, "/api/v1/events", None, None, &[]).await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_streams_events_appended_after_the_request_began() {
    let mut app = spawn_app().await;
    let c = some_history(&app).await;
    let head = app.event_count().await;
    let response = app
        .client
        .get(format!("{}/api/v1/events?after={head}&follow=true", app.base))
        .bearer_auth(events_token(&app))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.bytes_stream();
    let message = app.send(2, &c, "live").await;
    let mut buffer = String::new();
    let line = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let chunk = body.next().await.expect("stream open").expect("chunk");
            buffer.push_str(std::str::from_utf8(&chunk).unwrap());
            if let Some(line) = buffer.lines().find(|l| !l.is_empty()) {
                return serde_json::from_str::<Value>(line).unwrap();
            }
        }
    })
    .await
    .expect("the new event arrives");
    assert_eq!(line["position"], head + 1);
    assert_eq!(line["data"]["message_id"], message.as_str());
    // Shutdown ends the response cleanly.
    app.stop().await;
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(chunk) = body.next().await {
            if chunk.is_err() {
                return false;
            }
        }
        true
    })
    .await;
    assert_eq!(ended, Ok(true), "the stream ends without error at shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_writes_the_same_lines_as_the_endpoint() {
    let app = spawn_app().await;
    some_history(&app).await;
    let mut out = Vec::new();
    let filter = chat::replay::EventFilter { after: 5, until: Some(20), types: vec![], stream_id: None };
    let report = chat::replay::export(&app.pool, &filter, &mut out, |_| {}).await.unwrap();
    assert_eq!(report.events, 15);
    let exported: Vec<Value> = String::from_utf8(out).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(exported, replay(&app, "after=5&limit=15").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_committed_schema_file_matches_the_code_and_is_served() {
    let committed: Value = serde_json::from_str(include_str!("../schemas/events.schema.json")).unwrap();
    assert_eq!(committed, chat::domain::schema::event_schemas(), "run `chat events schema --output schemas/events.schema.json`");
    let app = spawn_app().await;
    let served = app.request(Method::GET, "/api/v1/events/schema", None, None, &[]).await;
    assert_eq!(served.status, StatusCode::OK);
    assert_eq!(served.body, committed);
    for event_type in chat::replay::known_event_types() {
        assert!(served.body[&event_type].as_object().is_some_and(|v| !v.is_empty()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_stored_under_an_older_version_are_read_in_the_current_shape() {
    let app = spawn_app().await;
    app.register_users(1..=3).await;
    // A ConversationCreated as schema version 1 wrote it, appended straight to the log.
    let conversation = uuid::Uuid::now_v7().to_string();
    let v1 = json!({"conversation_id": conversation, "type": "GROUP", "name": "Old", "posting_id": null, "created_by": 1, "participant_ids": [1, 2]});
    let mut tx = app.pool.begin().await.unwrap();
    let head: u64 =
        sqlx::query_scalar("SELECT last_position FROM event_log_head WHERE id = 1 FOR UPDATE").fetch_one(&mut *tx).await.unwrap();
    sqlx::query(
        "INSERT INTO event_log (position, event_id, stream_type, stream_id, stream_version, event_type, schema_version, data, metadata, recorded_at) \
         VALUES (?, ?, 'conversation', ?, 1, 'ConversationCreated', 1, ?, '{\"user_id\":1,\"correlation_id\":\"t\",\"causation_id\":\"t\"}', NOW(3))",
    )
    .bind(head + 1)
    .bind(uuid::Uuid::now_v7().to_string())
    .bind(&conversation)
    .bind(v1.to_string())
    .execute(&mut *tx)
    .await
    .unwrap();
    sqlx::query("INSERT INTO event_streams (stream_type, stream_id, version) VALUES ('conversation', ?, 1)")
        .bind(&conversation)
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query("UPDATE event_log_head SET last_position = ? WHERE id = 1").bind(head + 1).execute(&mut *tx).await.unwrap();
    tx.commit().await.unwrap();

    let expected = json!([{"user_id": 1, "role": "OWNER"}, {"user_id": 2, "role": "MEMBER"}]);
    // Replay.
    let line = &replay(&app, &format!("after={head}&limit=1")).await[0];
    assert_eq!(line["schema_version"], 2);
    assert_eq!(line["data"]["participants"], expected);
    assert!(line["data"].get("participant_ids").is_none());
    // The aggregate: the OWNER can add a member; a MEMBER cannot.
    let add = app.call(Method::POST, &format!("/conversations/{conversation}/participants"), 1, Some(json!({"user_id": 3}))).await;
    assert_eq!(add.status, StatusCode::CREATED, "{:?}", add.body);
    let refused = app.call(Method::PATCH, &format!("/conversations/{conversation}"), 2, Some(json!({"name": "x"}))).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    // The projectors.
    let position = add.body["position"].as_u64().unwrap();
    let item = app.call(Method::GET, &format!("/conversations/{conversation}?min_position={position}"), 2, None).await;
    assert_eq!(item.status, StatusCode::OK, "{:?}", item.body);
    assert_eq!(item.body["participants"][0]["role"], "OWNER");
    assert_eq!(item.body["participants"].as_array().unwrap().len(), 3);
    // JetStream.
    assert!(app.wait_published(Duration::from_secs(10)).await);
    let published = app.consume_all(Duration::from_millis(500)).await;
    let created = published.iter().find(|m| m.position == head + 1).expect("published");
    assert_eq!(created.schema_version, "2");
    assert_eq!(created.payload["data"]["participants"], expected);
}
