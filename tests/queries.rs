//! The query API: shapes field by field, paging, unread counts, read-your-writes.

mod common;

use std::collections::HashSet;

use common::{spawn_app, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// A query as `user`, waiting for `position` to be projected.
async fn get(app: &TestApp, user: i64, path: &str, position: u64) -> common::Answer {
    let sep = if path.contains('?') { '&' } else { '?' };
    app.call(Method::GET, &format!("{path}{sep}min_position={position}"), user, None).await
}

async fn post(app: &TestApp, user: i64, path: &str, body: Value) -> u64 {
    let answer = app.call(Method::POST, path, user, Some(body)).await;
    assert!(answer.status.is_success(), "{path}: {:?}", answer.body);
    answer.body["position"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conversation_items_have_the_documented_shape() {
    let app = spawn_app().await;
    app.register_users(1..=3).await;
    let posting = app.register_posting("Bike").await;
    let created = app
        .call(
            Method::POST,
            "/conversations",
            1,
            Some(json!({"type": "GROUP", "name": "Team", "posting_id": posting, "participant_ids": [2, 3]})),
        )
        .await;
    let id = created.body["conversation_id"].as_str().unwrap().to_owned();
    let position = post(&app, 2, &format!("/conversations/{id}/messages"), json!({"content": "hi"})).await;
    let page = get(&app, 3, "/conversations", position).await;
    assert_eq!(page.status, StatusCode::OK, "{:?}", page.body);
    let item = &page.body["items"][0];
    let keys: HashSet<&str> = item.as_object().unwrap().keys().map(String::as_str).collect();
    let expected: HashSet<&str> = [
        "id",
        "type",
        "name",
        "posting_id",
        "created_by",
        "is_archived",
        "last_message_at",
        "created_at",
        "updated_at",
        "participants",
        "unread_count",
        "is_muted",
        "notifications_enabled",
    ]
    .into_iter()
    .collect();
    assert_eq!(keys, expected);
    assert_eq!(item["id"], id.as_str());
    assert_eq!(item["type"], "GROUP");
    assert_eq!(item["name"], "Team");
    assert_eq!(item["posting_id"], posting.as_str());
    assert_eq!(item["created_by"], 1);
    assert_eq!(item["is_archived"], false);
    assert!(item["last_message_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(item["unread_count"], 1);
    assert_eq!(item["is_muted"], false);
    assert_eq!(item["notifications_enabled"], true);
    assert_eq!(
        item["participants"],
        json!([
            {"userId": 1, "role": "OWNER", "firstName": "First1", "lastName": "Last1"},
            {"userId": 2, "role": "MEMBER", "firstName": "First2", "lastName": "Last2"},
            {"userId": 3, "role": "MEMBER", "firstName": "First3", "lastName": "Last3"},
        ])
    );
    assert_eq!(page.body["next_offset"], Value::Null);
    let one = get(&app, 3, &format!("/conversations/{id}"), position).await;
    assert_eq!(one.body, *item);
    let stranger = get(&app, 1, "/conversations/not-a-uuid", 0).await;
    assert_eq!(stranger.status, StatusCode::NOT_FOUND);
    app.register_users([9]).await;
    let outsider = get(&app, 9, &format!("/conversations/{id}"), position).await;
    assert_eq!((outsider.status, outsider.code()), (StatusCode::NOT_FOUND, "not_found"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_items_have_the_documented_shape() {
    let app = spawn_app().await;
    app.register_users(1..=2).await;
    let c = app.create_group(1, &[2]).await;
    let first = app.send(1, &c, "hello").await;
    let image = app
        .call(
            Method::POST,
            &format!("/conversations/{c}/messages"),
            2,
            Some(
                json!({"message_type": "IMAGE", "media_url": "https://x.example/a.png", "media_metadata": {"w": 3}, "reply_to_id": first}),
            ),
        )
        .await;
    let second = image.body["message_id"].as_str().unwrap().to_owned();
    let react = app.call(Method::PUT, &format!("/messages/{second}/reactions/%F0%9F%8E%89"), 1, None).await;
    let edit = app.call(Method::PATCH, &format!("/messages/{first}"), 1, Some(json!({"content": "hello!"}))).await;
    let position = edit.body["position"].as_u64().unwrap().max(react.body["position"].as_u64().unwrap());
    let page = get(&app, 2, &format!("/conversations/{c}/messages"), position).await;
    assert_eq!(page.status, StatusCode::OK, "{:?}", page.body);
    let items = page.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    let newest = &items[0];
    let keys: HashSet<&str> = newest.as_object().unwrap().keys().map(String::as_str).collect();
    let expected: HashSet<&str> = [
        "id",
        "conversation_id",
        "sender_id",
        "content",
        "message_type",
        "media_url",
        "media_metadata",
        "reply_to_id",
        "is_edited",
        "is_deleted",
        "edited_at",
        "deleted_at",
        "created_at",
        "sender_first_name",
        "sender_last_name",
        "reactions",
    ]
    .into_iter()
    .collect();
    assert_eq!(keys, expected);
    assert_eq!(newest["id"], second.as_str());
    assert_eq!(newest["message_type"], "IMAGE");
    assert_eq!(newest["media_metadata"], json!({"w": 3}));
    assert_eq!(newest["reply_to_id"], first.as_str());
    assert_eq!(newest["sender_first_name"], "First2");
    assert_eq!(newest["reactions"], json!([{"id": react.body["reaction_id"], "emoji": "🎉", "userId": 1}]));
    let oldest = &items[1];
    assert_eq!(oldest["content"], "hello!");
    assert_eq!(oldest["is_edited"], true);
    assert!(oldest["edited_at"].as_str().is_some());
    assert_eq!(oldest["reactions"], json!([]));
    assert_eq!(page.body["next_before"], Value::Null);

    let deleted = app.call(Method::DELETE, &format!("/messages/{first}"), 1, None).await;
    let after = get(&app, 2, &format!("/conversations/{c}/messages"), deleted.body["position"].as_u64().unwrap()).await;
    assert_eq!(after.body["items"].as_array().unwrap().len(), 1, "deleted messages are not listed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paging_loses_and_repeats_nothing() {
    let app = spawn_app().await;
    app.register_users(1..=2).await;
    let c = app.create_group(1, &[2]).await;
    let mut sent = Vec::new();
    for i in 0..25 {
        sent.push(app.send(1 + i % 2, &c, &format!("m{i}")).await);
    }
    let head = app.event_count().await as u64;
    // before-cursor paging
    let mut seen = Vec::new();
    let mut path = format!("/conversations/{c}/messages?limit=10");
    loop {
        let page = get(&app, 1, &path, head).await;
        assert_eq!(page.status, StatusCode::OK, "{:?}", page.body);
        seen.extend(page.body["items"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap().to_owned()));
        match page.body["next_before"].as_str() {
            Some(before) => path = format!("/conversations/{c}/messages?limit=10&before={before}"),
            None => break,
        }
    }
    let newest_first: Vec<String> = sent.iter().rev().cloned().collect();
    assert_eq!(seen, newest_first);
    // offset paging, with an exactly full last page answering null
    let page = get(&app, 1, &format!("/conversations/{c}/messages?limit=5&offset=20"), head).await;
    assert_eq!(page.body["items"].as_array().unwrap().len(), 5);
    assert_eq!(page.body["next_before"], Value::Null);

    // conversations paging
    let mut conversations = vec![c.clone()];
    for _ in 0..6 {
        conversations.push(app.create_group(2, &[1]).await);
    }
    let head = app.event_count().await as u64;
    let mut listed = Vec::new();
    let mut offset = Some(0);
    while let Some(at) = offset {
        let page = get(&app, 1, &format!("/conversations?limit=3&offset={at}"), head).await;
        listed.extend(page.body["items"].as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap().to_owned()));
        offset = page.body["next_offset"].as_u64();
    }
    assert_eq!(listed.len(), 7);
    assert_eq!(listed.iter().collect::<HashSet<_>>().len(), 7);
    assert_eq!(listed[6], c, "the oldest activity comes last");
    // A new message makes its conversation the most recent, for every member.
    let older = conversations[1].clone();
    app.send(2, &older, "back on top").await;
    let head = app.event_count().await as u64;
    for user in [1, 2] {
        let page = get(&app, user, "/conversations?limit=2", head).await;
        assert_eq!(page.body["items"][0]["id"], older.as_str(), "user {user}: {:?}", page.body);
        assert_eq!(page.body["items"][0]["unread_count"], if user == 1 { 1 } else { 0 }, "user {user}: {:?}", page.body);
    }
    let bad = app.call(Method::GET, "/conversations?limit=0", 1, None).await;
    assert_eq!((bad.status, bad.code()), (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unread_counts_follow_sends_deletes_and_read_marks() {
    let app = spawn_app().await;
    app.register_users(1..=3).await;
    let c = app.create_group(1, &[2, 3]).await;
    let unread = |user: i64, position: u64| {
        let path = format!("/conversations/{c}");
        let app = &app;
        async move { get(app, user, &path, position).await.body["unread_count"].as_i64().unwrap() }
    };
    let m1 = app.send(1, &c, "1").await;
    let m2 = app.send(1, &c, "2").await;
    let _m3 = app.send(2, &c, "3").await;
    let head = app.event_count().await as u64;
    assert_eq!(unread(1, head).await, 1, "own messages never count");
    assert_eq!(unread(2, head).await, 2);
    assert_eq!(unread(3, head).await, 3);

    let read = post(&app, 3, &format!("/conversations/{c}/read"), json!({"message_id": m2})).await;
    assert_eq!(unread(3, read).await, 1);
    let older = post(&app, 3, &format!("/conversations/{c}/read"), json!({"message_id": m1})).await;
    assert_eq!(unread(3, older).await, 1, "an older read mark does not move it back");

    let deleted = app.call(Method::DELETE, &format!("/messages/{m1}"), 1, None).await;
    let at = deleted.body["position"].as_u64().unwrap();
    assert_eq!(unread(2, at).await, 1, "a deleted unread message stops counting");
    assert_eq!(unread(3, at).await, 1, "a deleted message already read changes nothing");

    app.register_users([4]).await;
    let added = post(&app, 1, &format!("/conversations/{c}/participants"), json!({"user_id": 4})).await;
    assert_eq!(unread(4, added).await, 2, "a new member has every non-deleted message unread");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archived_list_direct_lookup_and_lagging() {
    let app = spawn_app().await;
    app.register_users(1..=3).await;
    let d = app.create_direct(1, 2).await;
    let g = app.create_group(1, &[3]).await;
    let archived = app.call(Method::POST, &format!("/conversations/{g}/archive"), 1, None).await;
    let at = archived.body["position"].as_u64().unwrap();
    let active = get(&app, 1, "/conversations", at).await;
    let ids: Vec<&str> = active.body["items"].as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [d.as_str()]);
    let only_archived = get(&app, 1, "/conversations?archived=true", at).await;
    assert_eq!(only_archived.body["items"][0]["id"], g.as_str());
    assert_eq!(only_archived.body["items"][0]["is_archived"], true);

    let found = get(&app, 2, "/conversations/direct?user_id=1", at).await;
    assert_eq!((found.status, &found.body), (StatusCode::OK, &json!({"id": d})));
    let none = get(&app, 3, "/conversations/direct?user_id=1", at).await;
    assert_eq!(none.status, StatusCode::NOT_FOUND);
    let bad = get(&app, 3, "/conversations/direct?user_id=x", at).await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);

    // A position past the log's last one is no client's own write (the 503 of a real lag: tests/contract.rs).
    let beyond = app.call(Method::GET, &format!("/conversations?min_position={}", at + 1000), 1, None).await;
    assert_eq!((beyond.status, beyond.code()), (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"));
}
