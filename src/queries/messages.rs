//! A conversation's messages, newest first, with sender names and reactions.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{MySql, MySqlPool, QueryBuilder};

use crate::domain::{ConversationId, MessageId, UserId};
use crate::time::rfc3339;

/// One reaction in a message item (the original query's JSON shape).
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct ReactionItem {
    pub id: String,
    pub emoji: String,
    #[serde(rename = "userId")]
    pub user_id: i32,
}

/// A message as the original "get messages" query answered it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct MessageItem {
    pub id: String,
    pub conversation_id: String,
    pub sender_id: i32,
    pub content: Option<String>,
    pub message_type: String,
    pub media_url: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub media_metadata: Option<serde_json::Value>,
    pub reply_to_id: Option<String>,
    pub is_edited: bool,
    pub is_deleted: bool,
    pub edited_at: Option<String>,
    pub deleted_at: Option<String>,
    pub created_at: String,
    pub sender_first_name: String,
    pub sender_last_name: String,
    pub reactions: Vec<ReactionItem>,
}

/// Where a page of messages starts.
#[derive(Debug, Clone, Copy)]
pub enum Page {
    Offset(u64),
    /// Strictly older than the message with this sequence number.
    BeforeSeq(u64),
}

type Row = (
    String,
    String,
    i32,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<bool>,
    Option<bool>,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
    String,
    String,
);

/// True if `user` is a participant of `conversation`.
pub async fn is_participant(pool: &MySqlPool, user: UserId, conversation: ConversationId) -> Result<bool, sqlx::Error> {
    let found: Option<i32> = sqlx::query_scalar("SELECT user_id FROM CONVERSATION_PARTICIPANTS WHERE conversation_id = ? AND user_id = ?")
        .bind(conversation.to_string())
        .bind(user.get())
        .fetch_optional(pool)
        .await?;
    Ok(found.is_some())
}

/// The sequence number of a message of this conversation (the `before` cursor).
pub async fn seq_of(pool: &MySqlPool, conversation: ConversationId, message: MessageId) -> Result<Option<u64>, sqlx::Error> {
    sqlx::query_scalar("SELECT seq FROM MESSAGES WHERE id = ? AND conversation_id = ?")
        .bind(message.to_string())
        .bind(conversation.to_string())
        .fetch_optional(pool)
        .await
}

/// A page of non-deleted messages, newest first; one more than `limit` tells
/// whether an older page exists.
pub async fn page(pool: &MySqlPool, conversation: ConversationId, limit: u32, page: Page) -> Result<(Vec<MessageItem>, bool), sqlx::Error> {
    let mut q = QueryBuilder::<MySql>::new(
        "SELECT m.id, m.conversation_id, m.sender_id, m.content, m.message_type, m.media_url, CAST(m.media_metadata AS CHAR), \
         m.reply_to_id, m.is_edited, m.is_deleted, m.edited_at, m.deleted_at, m.created_at, u.first_name, u.last_name \
         FROM MESSAGES m JOIN app_users u ON u.id = m.sender_id WHERE m.conversation_id = ",
    );
    q.push_bind(conversation.to_string()).push(" AND m.is_deleted = FALSE");
    if let Page::BeforeSeq(seq) = page {
        q.push(" AND m.seq < ").push_bind(seq);
    }
    q.push(" ORDER BY m.seq DESC LIMIT ").push_bind(limit + 1);
    if let Page::Offset(offset) = page {
        q.push(" OFFSET ").push_bind(offset);
    }
    let mut rows: Vec<Row> = q.build_query_as().fetch_all(pool).await?;
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let mut reactions = reactions_of(pool, rows.iter().map(|r| r.0.clone()).collect()).await?;
    let items = rows.into_iter().map(|r| item(r, &mut reactions)).collect();
    Ok((items, more))
}

fn item(r: Row, reactions: &mut HashMap<String, Vec<ReactionItem>>) -> MessageItem {
    MessageItem {
        reactions: reactions.remove(&r.0).unwrap_or_default(),
        id: r.0,
        conversation_id: r.1,
        sender_id: r.2,
        content: r.3,
        message_type: r.4.unwrap_or_else(|| "TEXT".into()),
        media_url: r.5,
        media_metadata: r.6.and_then(|m| serde_json::from_str(&m).ok()),
        reply_to_id: r.7,
        is_edited: r.8.unwrap_or(false),
        is_deleted: r.9.unwrap_or(false),
        edited_at: r.10.map(rfc3339),
        deleted_at: r.11.map(rfc3339),
        created_at: r.12.map(rfc3339).unwrap_or_default(),
        sender_first_name: r.13,
        sender_last_name: r.14,
    }
}

async fn reactions_of(pool: &MySqlPool, messages: Vec<String>) -> Result<HashMap<String, Vec<ReactionItem>>, sqlx::Error> {
    let mut by_message: HashMap<String, Vec<ReactionItem>> = HashMap::new();
    if messages.is_empty() {
        return Ok(by_message);
    }
    let mut q = QueryBuilder::<MySql>::new(
        "SELECT id, message_id, CAST(emoji AS CHAR CHARACTER SET utf8mb4), user_id FROM MESSAGE_REACTIONS WHERE message_id IN (",
    );
    let mut list = q.separated(", ");
    for id in messages {
        list.push_bind(id);
    }
    q.push(") ORDER BY message_id, created_at, id");
    let rows: Vec<(String, String, String, i32)> = q.build_query_as().persistent(false).fetch_all(pool).await?;
    for (id, message_id, emoji, user_id) in rows {
        by_message.entry(message_id).or_default().push(ReactionItem { id, emoji, user_id });
    }
    Ok(by_message)
}

/// Messages by id (deleted ones included), for realtime payloads.
pub async fn by_ids(pool: &MySqlPool, ids: &[String]) -> Result<HashMap<String, MessageItem>, sqlx::Error> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let mut q = QueryBuilder::<MySql>::new(
        "SELECT m.id, m.conversation_id, m.sender_id, m.content, m.message_type, m.media_url, CAST(m.media_metadata AS CHAR), \
         m.reply_to_id, m.is_edited, m.is_deleted, m.edited_at, m.deleted_at, m.created_at, u.first_name, u.last_name \
         FROM MESSAGES m JOIN app_users u ON u.id = m.sender_id WHERE m.id IN (",
    );
    let mut list = q.separated(", ");
    for id in ids {
        list.push_bind(id.as_str());
    }
    q.push(")");
    let rows: Vec<Row> = q.build_query_as().persistent(false).fetch_all(pool).await?;
    let mut reactions = reactions_of(pool, rows.iter().map(|r| r.0.clone()).collect()).await?;
    Ok(rows.into_iter().map(|r| (r.0.clone(), item(r, &mut reactions))).collect())
}
