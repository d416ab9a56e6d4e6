//! Contention: concurrent commands on one stream all succeed (the server
//! retries version conflicts), versions have no gaps, and DIRECT creation
//! raced from both users gives one conversation.

mod common;

use std::collections::HashSet;

use common::spawn_app;
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_concurrent_sends_to_one_conversation_all_succeed() {
    let app = spawn_app().await;
    app.register_users(1..=10).await;
    let c = app.create_group(1, &(2..=10).collect::<Vec<_>>()).await;
    let path = format!("/conversations/{c}/messages");
    let sends = (0..100).map(|i| app.call(Method::POST, &path, 1 + (i % 10), Some(json!({"content": format!("message {i}")}))));
    let answers = futures::future::join_all(sends).await;
    for answer in &answers {
        assert_eq!(answer.status, StatusCode::CREATED, "{:?}", answer.body);
    }
    let positions: HashSet<u64> = answers.iter().map(|a| a.body["position"].as_u64().unwrap()).collect();
    assert_eq!(positions.len(), 100, "every send has its own position");

    let versions: Vec<u32> = sqlx::query_scalar("SELECT stream_version FROM event_log WHERE stream_id = ? ORDER BY stream_version")
        .bind(&c)
        .fetch_all(&app.pool)
        .await
        .unwrap();
    assert_eq!(versions, (1..=101).collect::<Vec<u32>>(), "stream versions have no gap");
    let seqs: Vec<String> =
        sqlx::query_scalar("SELECT data FROM event_log WHERE stream_id = ? AND event_type = 'MessageSent' ORDER BY stream_version")
            .bind(&c)
            .fetch_all(&app.pool)
            .await
            .unwrap();
    let seqs: Vec<u64> = seqs.iter().map(|d| serde_json::from_str::<serde_json::Value>(d).unwrap()["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=100).collect::<Vec<u64>>(), "messages are numbered in log order");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn positions_follow_commit_order() {
    let app = spawn_app().await;
    app.register_users(1..=4).await;
    let groups = futures::future::join_all((0..4).map(|_| app.create_group(1, &[2, 3, 4]))).await;
    let sends =
        (0..80).map(|i| app.call(Method::POST, &format!("/conversations/{}/messages", groups[i % 4]), 2, Some(json!({"content": "x"}))));
    futures::future::join_all(sends).await;
    let positions: Vec<u64> = sqlx::query_scalar("SELECT position FROM event_log ORDER BY position").fetch_all(&app.pool).await.unwrap();
    assert_eq!(positions, (1..=positions.len() as u64).collect::<Vec<_>>(), "positions are dense from 1");
    let head: u64 = sqlx::query_scalar("SELECT last_position FROM event_log_head").fetch_one(&app.pool).await.unwrap();
    assert_eq!(head, positions.len() as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_creation_raced_from_both_users_gives_one_conversation() {
    let app = spawn_app().await;
    app.register_users(1..=2).await;
    for round in 0..5 {
        let posting = app.register_posting(&format!("posting {round}")).await;
        let before = app.event_count().await;
        let from_a =
            app.call(Method::POST, "/conversations", 1, Some(json!({"type": "DIRECT", "posting_id": posting, "participant_ids": [2]})));
        let from_b =
            app.call(Method::POST, "/conversations", 2, Some(json!({"type": "DIRECT", "posting_id": posting, "participant_ids": [1]})));
        let (a, b) = tokio::join!(from_a, from_b);
        assert!(a.status.is_success() && b.status.is_success(), "{:?} {:?}", a.body, b.body);
        assert_eq!(a.body["conversation_id"], b.body["conversation_id"], "one conversation");
        assert_eq!(a.body["position"], b.body["position"]);
        let mut statuses = [a.status.as_u16(), b.status.as_u16()];
        statuses.sort();
        assert_eq!(statuses, [200, 201], "one created it, the other found it");
        assert_eq!(app.event_count().await, before + 1, "one ConversationCreated");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_no_op_raced_with_the_command_it_repeats_answers_a_committed_position() {
    let app = spawn_app().await;
    app.register_users(1..=2).await;
    let c = app.create_group(1, &[2]).await;
    let mut messages = Vec::new();
    for i in 0..40 {
        messages.push(app.send(1, &c, &format!("m{i}")).await);
    }
    // Each round marks a newer message read and, at the same time, an older
    // one: whichever is decided second may be a no-op whose answer names the
    // first one's event while its commit is still in flight.
    for pair in messages.chunks(2) {
        let (older, newer) = (&pair[0], &pair[1]);
        let path = format!("/conversations/{c}/read");
        let (a, b) = tokio::join!(
            app.call(Method::POST, &path, 2, Some(json!({"message_id": newer}))),
            app.call(Method::POST, &path, 2, Some(json!({"message_id": older}))),
        );
        for answer in [a, b] {
            assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
            let position = answer.body["position"].as_u64().unwrap();
            let found: Option<u64> = sqlx::query_scalar("SELECT position FROM event_log WHERE position = ?")
                .bind(position)
                .fetch_optional(&app.pool)
                .await
                .unwrap();
            assert_eq!(found, Some(position), "the answer names a committed event, not {position}");
        }
    }
}
