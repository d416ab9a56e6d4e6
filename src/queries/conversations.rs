//! A user's conversations, one conversation, and the DIRECT lookup.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{MySql, MySqlPool, QueryBuilder};

use crate::domain::{ConversationId, PostingId, UserId};
use crate::time::rfc3339;

/// One member in a conversation item (the original query's JSON shape).
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct ParticipantItem {
    #[serde(rename = "userId")]
    pub user_id: i32,
    pub role: String,
    #[serde(rename = "firstName")]
    pub first_name: String,
    #[serde(rename = "lastName")]
    pub last_name: String,
}

/// A conversation as the caller sees it: the row, its members, and the
/// caller's own unread count and settings.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ConversationItem {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub name: Option<String>,
    pub posting_id: Option<String>,
    pub created_by: i32,
    pub is_archived: bool,
    pub last_message_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub participants: Vec<ParticipantItem>,
    pub unread_count: i64,
    pub is_muted: bool,
    pub notifications_enabled: bool,
}

type Row = (
    String,
    String,
    Option<String>,
    Option<String>,
    i32,
    Option<bool>,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
    i64,
    Option<bool>,
    Option<bool>,
);

/// `SELECT <COLUMNS> FROM` the caller's membership joined with its conversation.
fn select_items() -> String {
    format!("SELECT {COLUMNS} FROM CONVERSATION_PARTICIPANTS cp JOIN CONVERSATIONS c ON c.id = cp.conversation_id")
}

/// The columns of a conversation item, from `c` (CONVERSATIONS) and `cp`
/// (the caller's CONVERSATION_PARTICIPANTS row); the unread count is derived
/// (see ARCHITECTURE.md, "Columns added").
const COLUMNS: &str = "c.id, c.type, c.name, c.posting_id, c.created_by, c.is_archived, c.last_message_at, c.created_at, \
    c.updated_at, c.last_message_seq - CAST(cp.last_read_seq AS SIGNED) - cp.unread_exempt, cp.is_muted, cp.notifications_enabled";

/// Display order of a user's conversations: most recent activity first.
const ACTIVITY_ORDER: &str = "ORDER BY COALESCE(c.last_message_at, c.created_at) DESC, c.id DESC";

/// The caller's conversations (archived or not), most recent activity first,
/// then by id descending; one more than `limit` tells whether a next page exists.
///
/// A deferred join: the page's ids are chosen from narrow rows (the
/// membership index and each conversation's activity time), and only the
/// page's rows are then read in full; sorting the full rows of a user in
/// 1,000 conversations cost twice as much.
pub async fn list(
    pool: &MySqlPool,
    user: UserId,
    archived: bool,
    limit: u32,
    offset: u64,
) -> Result<(Vec<ConversationItem>, bool), sqlx::Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM ( \
            SELECT cp.conversation_id AS id FROM CONVERSATION_PARTICIPANTS cp JOIN CONVERSATIONS c ON c.id = cp.conversation_id \
            WHERE cp.user_id = ? AND cp.conversation_archived = ? {ACTIVITY_ORDER} LIMIT ? OFFSET ? \
         ) page \
         JOIN CONVERSATIONS c ON c.id = page.id \
         JOIN CONVERSATION_PARTICIPANTS cp ON cp.conversation_id = page.id AND cp.user_id = ? \
         {ACTIVITY_ORDER}"
    );
    let mut rows: Vec<Row> =
        sqlx::query_as(&sql).bind(user.get()).bind(archived).bind(limit + 1).bind(offset).bind(user.get()).fetch_all(pool).await?;
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    Ok((with_participants(pool, rows).await?, more))
}

/// Every conversation the user is a member of (archived or not).
pub async fn membership_ids(pool: &MySqlPool, user: UserId) -> Result<Vec<ConversationId>, sqlx::Error> {
    let ids: Vec<String> = sqlx::query_scalar("SELECT conversation_id FROM CONVERSATION_PARTICIPANTS WHERE user_id = ?")
        .bind(user.get())
        .fetch_all(pool)
        .await?;
    Ok(ids.iter().filter_map(|id| id.parse::<uuid::Uuid>().ok().map(ConversationId)).collect())
}

/// One conversation, if the caller is in it.
pub async fn get(pool: &MySqlPool, user: UserId, id: ConversationId) -> Result<Option<ConversationItem>, sqlx::Error> {
    let sql = format!("{} WHERE cp.conversation_id = ? AND cp.user_id = ?", select_items());
    let rows: Vec<Row> = sqlx::query_as(&sql).bind(id.to_string()).bind(user.get()).fetch_all(pool).await?;
    Ok(with_participants(pool, rows).await?.pop())
}

/// One conversation as each of `users` sees it (their own unread count and
/// settings); a user no longer in it gets the shared part with defaults.
pub async fn for_users(pool: &MySqlPool, id: &str, users: &[UserId]) -> Result<HashMap<UserId, ConversationItem>, sqlx::Error> {
    // The same columns as `select_items`, with the member's id first.
    let sql = format!("{} WHERE cp.conversation_id = ? ORDER BY cp.user_id", select_items().replacen("SELECT ", "SELECT cp.user_id, ", 1));
    type MemberRow = (
        i32,
        String,
        String,
        Option<String>,
        Option<String>,
        i32,
        Option<bool>,
        Option<DateTime<Utc>>,
        Option<DateTime<Utc>>,
        Option<DateTime<Utc>>,
        i64,
        Option<bool>,
        Option<bool>,
    );
    let member_rows: Vec<MemberRow> = sqlx::query_as(&sql).bind(id).fetch_all(pool).await?;
    let member_ids: Vec<i32> = member_rows.iter().map(|r| r.0).collect();
    let rows: Vec<Row> = member_rows.into_iter().map(|r| (r.1, r.2, r.3, r.4, r.5, r.6, r.7, r.8, r.9, r.10, r.11, r.12)).collect();
    let items = with_participants(pool, rows).await?;
    let Some(shared) = items.first().cloned() else { return Ok(HashMap::new()) };
    let mut by_member: HashMap<i32, ConversationItem> = member_ids.into_iter().zip(items).collect();
    Ok(users
        .iter()
        .map(|user| {
            let item = by_member.remove(&user.get()).unwrap_or_else(|| ConversationItem {
                unread_count: 0,
                is_muted: false,
                notifications_enabled: true,
                ..shared.clone()
            });
            (*user, item)
        })
        .collect())
}

/// The caller's DIRECT conversation with `other` about `posting` (none counts as a value).
pub async fn find_direct(pool: &MySqlPool, user: UserId, other: UserId, posting: Option<PostingId>) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT c.id FROM CONVERSATION_PARTICIPANTS me \
         JOIN CONVERSATION_PARTICIPANTS other ON other.conversation_id = me.conversation_id AND other.user_id = ? \
         JOIN CONVERSATIONS c ON c.id = me.conversation_id \
         WHERE me.user_id = ? AND c.type = 'DIRECT' AND c.posting_id <=> ? LIMIT 1",
    )
    .bind(other.get())
    .bind(user.get())
    .bind(posting.map(|p| p.to_string()))
    .fetch_optional(pool)
    .await
}

/// Attaches the members of each conversation (one query for the page).
async fn with_participants(pool: &MySqlPool, rows: Vec<Row>) -> Result<Vec<ConversationItem>, sqlx::Error> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let mut q = QueryBuilder::<MySql>::new(
        "SELECT cp.conversation_id, cp.user_id, cp.role, u.first_name, u.last_name \
         FROM CONVERSATION_PARTICIPANTS cp JOIN app_users u ON u.id = cp.user_id WHERE cp.conversation_id IN (",
    );
    let mut list = q.separated(", ");
    for row in &rows {
        list.push_bind(row.0.clone());
    }
    q.push(") ORDER BY cp.conversation_id, cp.joined_at, cp.user_id");
    let members: Vec<(String, i32, Option<String>, String, String)> = q.build_query_as().persistent(false).fetch_all(pool).await?;
    let mut by_conversation: HashMap<String, Vec<ParticipantItem>> = HashMap::new();
    for (conversation, user_id, role, first_name, last_name) in members {
        let role = role.unwrap_or_else(|| "MEMBER".into());
        by_conversation.entry(conversation).or_default().push(ParticipantItem { user_id, role, first_name, last_name });
    }
    Ok(rows
        .into_iter()
        .map(|(id, kind, name, posting_id, created_by, archived, last_message_at, created_at, updated_at, unread, muted, notifications)| {
            ConversationItem {
                participants: by_conversation.get(&id).cloned().unwrap_or_default(),
                id,
                kind,
                name,
                posting_id,
                created_by,
                is_archived: archived.unwrap_or(false),
                last_message_at: last_message_at.map(rfc3339),
                created_at: created_at.map(rfc3339).unwrap_or_default(),
                updated_at: updated_at.map(rfc3339).unwrap_or_default(),
                unread_count: unread,
                is_muted: muted.unwrap_or(false),
                notifications_enabled: notifications.unwrap_or(true),
            }
        })
        .collect())
}
