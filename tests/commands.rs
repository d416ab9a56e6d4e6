//! Every command's success path, over HTTP against the real app, checking the
//! answer and the events appended.

mod common;

use common::spawn_app;
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directory_commands_register_and_update() {
    let app = spawn_app().await;
    let admin = app.admin_token();
    let put = |body| app.request(Method::PUT, "/api/v1/users/7", Some(&admin), Some(body), &[]);
    let first = put(json!({"first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.com"})).await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(first.body, json!({"position": 1}));
    let again = put(json!({"first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.com"})).await;
    assert_eq!(again.body, json!({"position": 1}), "an identical PUT appends nothing");
    let changed = put(json!({"first_name": "Augusta", "last_name": "Lovelace"})).await;
    assert_eq!(changed.body, json!({"position": 2}));
    assert_eq!(app.stream_types("7").await, ["UserRegistered", "UserProfileUpdated"]);

    let posting = app.register_posting("Flat in Berlin").await;
    let retitled =
        app.request(Method::PUT, &format!("/api/v1/postings/{posting}"), Some(&admin), Some(json!({"title": "Flat in Bonn"})), &[]).await;
    assert_eq!(retitled.status, StatusCode::OK);
    assert_eq!(app.stream_types(&posting).await, ["PostingPublished", "PostingRetitled"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_lifecycle_appends_one_event_per_change() {
    let app = spawn_app().await;
    app.register_users(1..=4).await;
    let posting = app.register_posting("Bike").await;
    let created = app
        .call(
            Method::POST,
            "/conversations",
            1,
            Some(json!({"type": "GROUP", "name": "Team", "posting_id": posting, "participant_ids": [2, 3]})),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    let id = created.body["conversation_id"].as_str().unwrap().to_owned();
    assert_eq!(uuid::Uuid::parse_str(&id).unwrap().get_version_num(), 7, "new ids are UUIDv7");
    assert_eq!(created.body["position"], 6);

    let c = format!("/conversations/{id}");
    let ok = |a: common::Answer, status: StatusCode| {
        assert_eq!(a.status, status, "{:?}", a.body);
        assert!(a.body["position"].as_u64().unwrap() > 0);
    };
    ok(app.call(Method::PATCH, &c, 1, Some(json!({"name": "Renamed"}))).await, StatusCode::OK);
    ok(app.call(Method::POST, &format!("{c}/participants"), 1, Some(json!({"user_id": 4, "role": "ADMIN"}))).await, StatusCode::CREATED);
    ok(app.call(Method::PATCH, &format!("{c}/participants/3"), 1, Some(json!({"role": "ADMIN"}))).await, StatusCode::OK);
    ok(app.call(Method::PATCH, &format!("{c}/participants/me"), 2, Some(json!({"is_muted": true}))).await, StatusCode::OK);
    ok(app.call(Method::DELETE, &format!("{c}/participants/4"), 3, None).await, StatusCode::OK);
    ok(app.call(Method::DELETE, &format!("{c}/participants/2"), 2, None).await, StatusCode::OK);
    ok(app.call(Method::PATCH, &format!("{c}/participants/3"), 1, Some(json!({"role": "OWNER"}))).await, StatusCode::OK);
    ok(app.call(Method::POST, &format!("{c}/archive"), 3, None).await, StatusCode::OK);
    ok(app.call(Method::POST, &format!("{c}/unarchive"), 1, None).await, StatusCode::OK);

    assert_eq!(
        app.stream_types(&id).await,
        [
            "ConversationCreated",
            "ConversationRenamed",
            "ParticipantAdded",
            "ParticipantRoleChanged",
            "ParticipantSettingsChanged",
            "ParticipantRemoved",
            "ParticipantRemoved",
            "OwnershipTransferred",
            "ConversationArchived",
            "ConversationUnarchived",
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_lifecycle_with_reactions_and_read_marks() {
    let app = spawn_app().await;
    app.register_users(1..=2).await;
    let c = app.create_group(1, &[2]).await;
    let first = app.send(2, &c, "hello").await;
    let image = app
        .call(
            Method::POST,
            &format!("/conversations/{c}/messages"),
            1,
            Some(json!({"message_type": "IMAGE", "media_url": "https://cdn.example/a.png", "media_metadata": {"w": 10}, "reply_to_id": first})),
        )
        .await;
    assert_eq!(image.status, StatusCode::CREATED, "{:?}", image.body);
    let second = image.body["message_id"].as_str().unwrap().to_owned();

    let edited = app.call(Method::PATCH, &format!("/messages/{first}"), 2, Some(json!({"content": "hello!"}))).await;
    assert_eq!(edited.status, StatusCode::OK);

    let react = app.call(Method::PUT, &format!("/messages/{first}/reactions/%F0%9F%91%8D"), 1, None).await;
    assert_eq!(react.status, StatusCode::CREATED);
    let reaction_id = react.body["reaction_id"].as_str().unwrap().to_owned();
    let again = app.call(Method::PUT, &format!("/messages/{first}/reactions/%F0%9F%91%8D"), 1, None).await;
    assert_eq!(again.status, StatusCode::OK, "a repeated reaction answers 200");
    assert_eq!(again.body["reaction_id"], reaction_id.as_str());
    assert_eq!(again.body["position"], react.body["position"], "with the position that created it");
    let removed = app.call(Method::DELETE, &format!("/messages/{first}/reactions/%F0%9F%91%8D"), 1, None).await;
    assert_eq!(removed.status, StatusCode::OK);

    let read = app.call(Method::POST, &format!("/conversations/{c}/read"), 2, Some(json!({"message_id": second}))).await;
    assert_eq!(read.status, StatusCode::OK);
    let older = app.call(Method::POST, &format!("/conversations/{c}/read"), 2, Some(json!({"message_id": first}))).await;
    assert_eq!(older.status, StatusCode::OK, "an older read mark is accepted and changes nothing");

    let deleted = app.call(Method::DELETE, &format!("/messages/{second}"), 1, None).await;
    assert_eq!(deleted.status, StatusCode::OK);

    assert_eq!(
        app.stream_types(&c).await,
        [
            "ConversationCreated",
            "MessageSent",
            "MessageSent",
            "MessageEdited",
            "ReactionAdded",
            "ReactionRemoved",
            "MessagesRead",
            "MessageDeleted"
        ]
    );
    let data: String =
        sqlx::query_scalar("SELECT data FROM event_log WHERE event_type = 'MessageSent' AND stream_version = 3 AND stream_id = ?")
            .bind(&c)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    let data: serde_json::Value = serde_json::from_str(&data).unwrap();
    assert_eq!(data["seq"], 2);
    assert_eq!(data["reply_to_id"], first.as_str());
    assert_eq!(data["media_metadata"], json!({"w": 10}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_creation_returns_the_existing_conversation() {
    let app = spawn_app().await;
    app.register_users(1..=3).await;
    let created = app.call(Method::POST, "/conversations", 1, Some(json!({"type": "DIRECT", "participant_ids": [2]}))).await;
    assert_eq!(created.status, StatusCode::CREATED);
    let again = app.call(Method::POST, "/conversations", 2, Some(json!({"type": "DIRECT", "participant_ids": [1, 2]}))).await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.body, created.body, "same id and the position that created it");

    // Another posting, or another pair, is another conversation.
    let posting = app.register_posting("Sofa").await;
    let about =
        app.call(Method::POST, "/conversations", 1, Some(json!({"type": "DIRECT", "posting_id": posting, "participant_ids": [2]}))).await;
    assert_eq!(about.status, StatusCode::CREATED);
    assert_ne!(about.body["conversation_id"], created.body["conversation_id"]);

    // Archived, it is still found and stays archived.
    let id = created.body["conversation_id"].as_str().unwrap();
    assert_eq!(app.call(Method::POST, &format!("/conversations/{id}/archive"), 2, None).await.status, StatusCode::OK);
    let archived = app.call(Method::POST, "/conversations", 2, Some(json!({"type": "DIRECT", "participant_ids": [1]}))).await;
    assert_eq!(archived.status, StatusCode::OK);
    assert_eq!(archived.body["conversation_id"], id);
    assert_eq!(*app.stream_types(id).await.last().unwrap(), "ConversationArchived");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_carry_metadata() {
    let app = spawn_app().await;
    app.register_users(1..=2).await;
    let c = app.create_group(1, &[2]).await;
    let token = app.token(2);
    let answer = app
        .request(
            Method::POST,
            &format!("/api/v1/conversations/{c}/messages"),
            Some(&token),
            Some(json!({"content": "hi"})),
            &[("x-request-id", "req-123"), ("idempotency-key", "key-1")],
        )
        .await;
    assert_eq!(answer.status, StatusCode::CREATED);
    let (metadata, schema_version, event_id): (String, u16, String) =
        sqlx::query_as("SELECT metadata, schema_version, event_id FROM event_log WHERE position = ?")
            .bind(answer.body["position"].as_u64().unwrap())
            .fetch_one(&app.pool)
            .await
            .unwrap();
    let metadata: serde_json::Value = serde_json::from_str(&metadata).unwrap();
    assert_eq!(metadata, json!({"user_id": 2, "correlation_id": "req-123", "causation_id": "req-123", "idempotency_key": "key-1"}));
    assert_eq!(schema_version, 1);
    assert_eq!(uuid::Uuid::parse_str(&event_id).unwrap().get_version_num(), 7);
}
