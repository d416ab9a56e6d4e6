//! The projectors: rebuild equals live, a crash mid-batch changes nothing,
//! a redelivered event changes nothing, and the main queries use their indexes.

mod common;

use std::time::Duration;

use chat::config::Role;
use chat::projections::{apply_batch, ProjectedEvent, Tables};
use common::{spawn_app, spawn_app_sharing_with_roles, spawn_app_with_roles, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::json;
use sqlx::Connection;

/// A history that touches every table and every kind of event, including
/// changes to rows of earlier batches and several changes within one batch.
async fn build_history(app: &TestApp) {
    app.register_users(1..=6).await;
    let posting = app.register_posting("Bike").await;
    let admin = app.admin_token();
    app.request(Method::PUT, "/api/v1/users/6", Some(&admin), Some(json!({"first_name": "Six", "last_name": "Renamed"})), &[]).await;
    app.request(Method::PUT, &format!("/api/v1/postings/{posting}"), Some(&admin), Some(json!({"title": "Bicycle"})), &[]).await;
    let g = app.create_group(1, &[2, 3]).await;
    let direct =
        app.call(Method::POST, "/conversations", 4, Some(json!({"type": "DIRECT", "posting_id": posting, "participant_ids": [5]}))).await;
    let d = direct.body["conversation_id"].as_str().unwrap().to_owned();
    let mut messages = Vec::new();
    for i in 0..12 {
        messages.push(app.send(1 + i % 3, &g, &format!("group {i}")).await);
    }
    let dm = app.send(4, &d, "direct").await;
    let calls: Vec<(Method, String, i64, Option<serde_json::Value>)> = vec![
        (Method::PATCH, format!("/conversations/{g}"), 1, Some(json!({"name": "Renamed"}))),
        (Method::POST, format!("/conversations/{g}/participants"), 1, Some(json!({"user_id": 4, "role": "ADMIN"}))),
        (Method::PATCH, format!("/conversations/{g}/participants/2"), 1, Some(json!({"role": "ADMIN"}))),
        (Method::PATCH, format!("/conversations/{g}/participants/me"), 3, Some(json!({"is_muted": true, "notifications_enabled": false}))),
        (Method::PATCH, format!("/messages/{}", messages[0]), 1, Some(json!({"content": "edited"}))),
        (Method::DELETE, format!("/messages/{}", messages[1]), 2, None),
        (Method::PUT, format!("/messages/{}/reactions/%F0%9F%91%8D", messages[2]), 1, None),
        (Method::PUT, format!("/messages/{}/reactions/%E2%9D%A4", messages[2]), 2, None),
        (Method::DELETE, format!("/messages/{}/reactions/%E2%9D%A4", messages[2]), 2, None),
        (Method::POST, format!("/conversations/{g}/read"), 2, Some(json!({"message_id": messages[5]}))),
        (Method::POST, format!("/conversations/{g}/read"), 3, Some(json!({"message_id": messages[11]}))),
        (Method::DELETE, format!("/messages/{}", messages[10]), 1, None),
        (Method::POST, format!("/conversations/{d}/read"), 5, Some(json!({"message_id": dm}))),
        (Method::DELETE, format!("/conversations/{g}/participants/3"), 3, None),
        (Method::PATCH, format!("/conversations/{g}/participants/4"), 1, Some(json!({"role": "OWNER"}))),
        (Method::POST, format!("/conversations/{d}/archive"), 5, None),
    ];
    for (method, path, user, body) in calls {
        let answer = app.call(method.clone(), &path, user, body).await;
        assert!(answer.status.is_success(), "{method} {path}: {:?}", answer.body);
    }
    app.send(2, &g, "after").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebuild_equals_live_and_the_api_stays_up() {
    let app = spawn_app().await;
    build_history(&app).await;
    assert!(app.wait_projected(Duration::from_secs(10)).await);
    let live = app.read_model_rows().await;
    assert!(live.iter().all(|(_, rows)| !rows.is_empty()), "every table has rows");

    let pool = app.pool.clone();
    let rebuild = tokio::spawn(async move { chat::projections::rebuild::rebuild(&pool, |_, _| {}).await });
    // The API keeps answering during the rebuild.
    for _ in 0..5 {
        let answer = app.call(Method::GET, "/conversations", 1, None).await;
        assert_eq!(answer.status, StatusCode::OK);
    }
    let keys_before = read_model_keys(&app).await;
    let report = rebuild.await.unwrap().expect("rebuild");
    assert_eq!(report.position, app.event_count().await as u64);
    assert_eq!(app.read_model_rows().await, live, "rebuilt tables equal the live ones, row for row");
    assert_eq!(read_model_keys(&app).await, keys_before, "the same keys and foreign keys");

    // And the live projector carries on on the swapped tables.
    let c = app.create_group(1, &[2]).await;
    let position = app.send(2, &c, "after rebuild").await;
    let _ = position;
    assert!(app.wait_projected(Duration::from_secs(10)).await);
    let page = app.call(Method::GET, &format!("/conversations/{c}/messages?min_position={}", app.event_count().await), 1, None).await;
    assert_eq!(page.body["items"][0]["content"], "after rebuild");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_projector_killed_mid_batch_then_restarted_gives_the_same_tables() {
    let writer = spawn_app_with_roles(&[Role::Api, Role::Publisher]).await;
    build_history(&writer).await;
    let head = writer.event_count().await as u64;

    // A projector applies half the log in a transaction and dies before COMMIT.
    let stored = chat::event_store::EventReader::new(writer.pool.clone()).events_after(0, (head / 2) as u32).await.unwrap();
    let batch: Vec<ProjectedEvent> = stored.iter().map(|e| ProjectedEvent::from_stored(e).unwrap()).collect();
    {
        let mut conn = sqlx::MySqlConnection::connect(&writer.database_url).await.unwrap();
        let mut tx = conn.begin().await.unwrap();
        apply_batch(&mut tx, &Tables::live(), &batch).await.unwrap();
        drop(tx);
        drop(conn);
    }
    assert!(writer.read_model_rows().await.iter().all(|(_, rows)| rows.is_empty()), "nothing of the dead batch remains");

    // A new projector starts from the checkpoint and applies everything.
    let projector = spawn_app_sharing_with_roles(&writer, &[Role::Projector]).await;
    assert!(projector.wait_projected(Duration::from_secs(20)).await);
    let restarted = writer.read_model_rows().await;
    chat::projections::rebuild::rebuild(&writer.pool, |_, _| {}).await.unwrap();
    assert_eq!(writer.read_model_rows().await, restarted, "the same tables as a projector that never stopped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tables_do_not_depend_on_where_batches_end() {
    let writer = spawn_app_with_roles(&[Role::Api, Role::Publisher]).await;
    build_history(&writer).await;
    let head = writer.event_count().await as u32;
    let stored = chat::event_store::EventReader::new(writer.pool.clone()).events_after(0, head).await.unwrap();
    let events: Vec<ProjectedEvent> = stored.iter().map(|e| ProjectedEvent::from_stored(e).unwrap()).collect();

    // One batch for the whole log: every row is built in memory.
    chat::projections::rebuild::rebuild(&writer.pool, |_, _| {}).await.unwrap();
    let whole = writer.read_model_rows().await;
    assert!(whole.iter().all(|(_, rows)| !rows.is_empty()), "every table has rows");

    // Small batches: rows of earlier batches are changed by SQL.
    for size in [1, 2, 5, 11] {
        let mut conn = sqlx::MySqlConnection::connect(&writer.database_url).await.unwrap();
        for table in ["MESSAGE_REACTIONS", "MESSAGES", "CONVERSATION_PARTICIPANTS", "CONVERSATIONS", "POSTINGS", "app_users"] {
            sqlx::query(&format!("DELETE FROM {table}")).execute(&mut conn).await.unwrap();
        }
        for batch in events.chunks(size) {
            let mut tx = conn.begin().await.unwrap();
            apply_batch(&mut tx, &Tables::live(), batch).await.unwrap();
            tx.commit().await.unwrap();
        }
        assert_eq!(writer.read_model_rows().await, whole, "batches of {size} give the tables of one batch");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_event_delivered_twice_changes_nothing() {
    let app = spawn_app().await;
    build_history(&app).await;
    assert!(app.wait_published(Duration::from_secs(10)).await);
    assert!(app.wait_projected(Duration::from_secs(10)).await);
    let before = app.read_model_rows().await;
    let checkpoint: u64 =
        sqlx::query_scalar("SELECT position FROM projection_checkpoints WHERE name = 'read_models'").fetch_one(&app.pool).await.unwrap();

    // Deliver every event again (new message ids, so JetStream stores them).
    let published = app.consume_all(Duration::from_millis(500)).await;
    let client = async_nats::connect(app.nats_url.as_str()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    for message in &published {
        let payload = serde_json::to_vec(&message.payload).unwrap();
        js.publish(message.subject.clone(), payload.into()).await.unwrap().await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(app.read_model_rows().await, before);
    let after: u64 =
        sqlx::query_scalar("SELECT position FROM projection_checkpoints WHERE name = 'read_models'").fetch_one(&app.pool).await.unwrap();
    assert_eq!(after, checkpoint);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn main_queries_use_their_indexes() {
    let app = spawn_app().await;
    build_history(&app).await;
    assert!(app.wait_projected(Duration::from_secs(10)).await);
    let explain = |sql: &'static str| {
        let pool = app.pool.clone();
        async move {
            let rows = sqlx::query(&format!("EXPLAIN {sql}")).fetch_all(&pool).await.expect("explain");
            rows.iter()
                .map(|row| {
                    use sqlx::Row;
                    let table: Option<String> = row.try_get("table").ok();
                    let key: Option<String> = row.try_get("key").ok().flatten();
                    (table.unwrap_or_default(), key.unwrap_or_default())
                })
                .collect::<Vec<_>>()
        }
    };
    let list = explain(
        "SELECT c.id FROM CONVERSATION_PARTICIPANTS cp JOIN CONVERSATIONS c ON c.id = cp.conversation_id \
         WHERE cp.user_id = 1 AND cp.conversation_archived = FALSE ORDER BY COALESCE(c.last_message_at, c.created_at) DESC, c.id DESC LIMIT 21",
    )
    .await;
    assert!(list.contains(&("cp".into(), "ix_participants_user_memberships".into())), "{list:?}");
    assert!(list.contains(&("c".into(), "PRIMARY".into())), "{list:?}");
    let messages = explain(
        "SELECT m.id FROM MESSAGES m JOIN app_users u ON u.id = m.sender_id \
         WHERE m.conversation_id = 'x' AND m.is_deleted = FALSE ORDER BY m.seq DESC LIMIT 51",
    )
    .await;
    assert!(
        messages
            .iter()
            .any(|(table, key)| table == "m" && (key == "ix_messages_conversation_visible" || key == "uq_messages_conversation_seq")),
        "{messages:?}"
    );
    let reactions = explain("SELECT id FROM MESSAGE_REACTIONS WHERE message_id IN ('a', 'b') ORDER BY message_id, created_at, id").await;
    assert!(reactions.iter().any(|(_, key)| key.starts_with("ix_reactions") || key.starts_with("uq_reactions")), "{reactions:?}");
    let members = explain("SELECT user_id FROM CONVERSATION_PARTICIPANTS WHERE conversation_id IN ('a', 'b')").await;
    assert!(members.iter().any(|(_, key)| key == "uq_participants_conversation_user"), "{members:?}");
}

/// Every index (with its columns) and foreign key of the read-model tables,
/// constraint names without their rebuild generation.
async fn read_model_keys(app: &TestApp) -> Vec<String> {
    let mut keys: Vec<String> = sqlx::query_scalar(
        "SELECT CAST(CONCAT(table_name, '.', index_name, ':', non_unique, ':', GROUP_CONCAT(column_name ORDER BY seq_in_index)) AS CHAR) \
         FROM information_schema.statistics WHERE table_schema = DATABASE() AND table_name NOT LIKE '%\\_\\_%' \
         GROUP BY table_name, index_name, non_unique",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    let foreign: Vec<String> = sqlx::query_scalar(
        "SELECT CAST(CONCAT(table_name, '.', SUBSTRING_INDEX(constraint_name, '__g', 1), '->', referenced_table_name, ':', delete_rule) AS CHAR) \
         FROM information_schema.referential_constraints WHERE constraint_schema = DATABASE()",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    keys.extend(foreign);
    keys.sort();
    keys
}
