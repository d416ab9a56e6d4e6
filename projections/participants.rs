//! `CONVERSATION_PARTICIPANTS`: one row per member of a conversation, with the
//! member's own settings, read mark and unread count.
//!
//! ConversationCreated        → INSERT one row per participant (role, joined_at = t)
//! ParticipantAdded           → INSERT (role, joined_at = t); unread recounted
//! ParticipantRemoved         → DELETE
//! ParticipantRoleChanged     → UPDATE role
//! OwnershipTransferred       → UPDATE role (new OWNER; previous ADMIN)
//! ParticipantSettingsChanged → UPDATE is_muted, notifications_enabled
//! ConversationArchived/Unarchived → UPDATE conversation_archived (all rows of the conversation)
//! MessageSent                → unread_count + 1 for everyone but the sender, last_activity_at = t
//! MessageDeleted             → unread_count - 1 for everyone but the sender who had not read it
//! MessagesRead               → UPDATE last_read_message_id, last_read_seq; unread recounted
//!
//! `unread_count` = the conversation's non-deleted messages from others after
//! the member's last read message (`seq > last_read_seq`). It is kept as a
//! counter, so reading it costs the same whatever the conversation's size; a
//! recount (an indexed COUNT of the messages after the mark) happens only when
//! the mark moves or the member joins. The counters are applied at the end of
//! the batch, after MESSAGES, in a few set-based statements.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use sqlx::{MySql, MySqlConnection, QueryBuilder};
use uuid::Uuid;

use super::{sql, ProjectedEvent, Tables};
use crate::domain::conversation::ConversationEvent as E;
use crate::domain::values::Role;
use crate::domain::{ConversationId, UserId};

struct Row {
    id: String,
    conversation_id: String,
    user_id: i32,
    role: &'static str,
    joined_at: DateTime<Utc>,
    is_muted: bool,
    notifications_enabled: bool,
    conversation_archived: bool,
    last_activity_at: DateTime<Utc>,
}

/// A membership's row id: the same for the same conversation and user, so a
/// rebuild produces the same ids as the live projector.
pub fn participant_row_id(conversation: &ConversationId, user: UserId) -> String {
    Uuid::new_v5(&conversation.0, user.to_string().as_bytes()).to_string()
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Owner => "OWNER",
        Role::Admin => "ADMIN",
        Role::Member => "MEMBER",
    }
}

/// What the batch does to the counters, applied at its end.
#[derive(Default)]
struct Counters {
    /// Messages sent per conversation, and the time of the last one.
    sent: BTreeMap<String, (i64, DateTime<Utc>)>,
    /// Messages sent per membership row (conversation, sender): not unread for the sender.
    own: BTreeMap<String, (String, i64)>,
    /// Deleted messages, by conversation.
    deleted: BTreeMap<String, Vec<String>>,
    /// Final read mark per membership row id.
    read_marks: BTreeMap<String, String>,
    /// Memberships whose unread count is recomputed (joined or read).
    recount: BTreeSet<String>,
    /// Memberships that joined an existing conversation: copy its archive flag and activity.
    joined_existing: BTreeSet<String>,
}

pub async fn project(conn: &mut MySqlConnection, tables: &Tables, events: &[ProjectedEvent]) -> Result<(), sqlx::Error> {
    let table = &tables.participants;
    let mut created: Vec<Option<Row>> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut new_conversations: HashMap<String, bool> = HashMap::new();
    let mut counters = Counters::default();
    for projected in events {
        let Some(event) = projected.conversation() else {
            continue;
        };
        let t = projected.recorded_at;
        match event {
            E::ConversationCreated { conversation_id, participants, .. } => {
                new_conversations.insert(conversation_id.to_string(), false);
                for p in participants {
                    let row = new_row(conversation_id, p.user_id, p.role, t, false);
                    index.insert(row.id.clone(), created.len());
                    created.push(Some(row));
                }
            }
            E::ParticipantAdded { conversation_id, user_id, role, .. } => {
                let archived = new_conversations.get(&conversation_id.to_string()).copied().unwrap_or(false);
                let row = new_row(conversation_id, *user_id, *role, t, archived);
                if !new_conversations.contains_key(&conversation_id.to_string()) {
                    counters.joined_existing.insert(row.id.clone());
                }
                counters.recount.insert(row.id.clone());
                index.insert(row.id.clone(), created.len());
                created.push(Some(row));
            }
            E::ParticipantRemoved { conversation_id, user_id, .. } => {
                let id = participant_row_id(conversation_id, *user_id);
                counters.recount.remove(&id);
                counters.read_marks.remove(&id);
                counters.joined_existing.remove(&id);
                match index.remove(&id) {
                    Some(i) => created[i] = None,
                    None => {
                        sqlx::query(&format!("DELETE FROM {table} WHERE id = ?")).bind(id).execute(&mut *conn).await?;
                    }
                }
            }
            E::ParticipantRoleChanged { conversation_id, user_id, role, .. } => {
                set_role(conn, table, &index, &mut created, participant_row_id(conversation_id, *user_id), *role).await?;
            }
            E::OwnershipTransferred { conversation_id, previous_owner, new_owner } => {
                set_role(conn, table, &index, &mut created, participant_row_id(conversation_id, *previous_owner), Role::Admin).await?;
                set_role(conn, table, &index, &mut created, participant_row_id(conversation_id, *new_owner), Role::Owner).await?;
            }
            E::ParticipantSettingsChanged { conversation_id, user_id, is_muted, notifications_enabled } => {
                let id = participant_row_id(conversation_id, *user_id);
                match index.get(&id).and_then(|&i| created[i].as_mut()) {
                    Some(row) => {
                        row.is_muted = *is_muted;
                        row.notifications_enabled = *notifications_enabled;
                    }
                    None => {
                        sqlx::query(&format!("UPDATE {table} SET is_muted = ?, notifications_enabled = ? WHERE id = ?"))
                            .bind(is_muted)
                            .bind(notifications_enabled)
                            .bind(id)
                            .execute(&mut *conn)
                            .await?;
                    }
                }
            }
            E::ConversationArchived { conversation_id, .. } | E::ConversationUnarchived { conversation_id, .. } => {
                let archived = matches!(event, E::ConversationArchived { .. });
                let conversation = conversation_id.to_string();
                if let Some(flag) = new_conversations.get_mut(&conversation) {
                    *flag = archived;
                }
                for row in created.iter_mut().flatten().filter(|r| r.conversation_id == conversation) {
                    row.conversation_archived = archived;
                }
                sqlx::query(&format!("UPDATE {table} SET conversation_archived = ? WHERE conversation_id = ?"))
                    .bind(archived)
                    .bind(conversation)
                    .execute(&mut *conn)
                    .await?;
            }
            E::MessageSent { conversation_id, sender_id, .. } => {
                let conversation = conversation_id.to_string();
                let entry = counters.sent.entry(conversation.clone()).or_insert((0, t));
                entry.0 += 1;
                entry.1 = t;
                counters.own.entry(participant_row_id(conversation_id, *sender_id)).or_insert((conversation, 0)).1 += 1;
            }
            E::MessageDeleted { conversation_id, message_id, .. } => {
                counters.deleted.entry(conversation_id.to_string()).or_default().push(message_id.to_string());
            }
            E::MessagesRead { conversation_id, user_id, message_id } => {
                let id = participant_row_id(conversation_id, *user_id);
                counters.read_marks.insert(id.clone(), message_id.to_string());
                counters.recount.insert(id);
            }
            _ => {}
        }
    }

    let rows: Vec<Row> = created.into_iter().flatten().collect();
    sql::insert_rows(
        conn,
        table,
        "id, conversation_id, user_id, role, joined_at, is_muted, notifications_enabled, conversation_archived, last_activity_at",
        &rows,
        "",
        &|row, r: &Row| {
            row.push_bind(r.id.clone())
                .push_bind(r.conversation_id.clone())
                .push_bind(r.user_id)
                .push_bind(r.role)
                .push_bind(r.joined_at)
                .push_bind(r.is_muted)
                .push_bind(r.notifications_enabled)
                .push_bind(r.conversation_archived)
                .push_bind(r.last_activity_at);
        },
    )
    .await?;
    apply_counters(conn, tables, counters).await
}

fn new_row(conversation: &ConversationId, user: UserId, role: Role, t: DateTime<Utc>, archived: bool) -> Row {
    Row {
        id: participant_row_id(conversation, user),
        conversation_id: conversation.to_string(),
        user_id: user.get(),
        role: role_name(role),
        joined_at: t,
        is_muted: false,
        notifications_enabled: true,
        conversation_archived: archived,
        last_activity_at: t,
    }
}

async fn set_role(
    conn: &mut MySqlConnection,
    table: &str,
    index: &HashMap<String, usize>,
    created: &mut [Option<Row>],
    id: String,
    role: Role,
) -> Result<(), sqlx::Error> {
    match index.get(&id).and_then(|&i| created[i].as_mut()) {
        Some(row) => row.role = role_name(role),
        None => {
            sqlx::query(&format!("UPDATE {table} SET role = ? WHERE id = ?")).bind(role_name(role)).bind(id).execute(&mut *conn).await?;
        }
    }
    Ok(())
}

/// The end of the batch: activity and counters, then read marks and recounts.
async fn apply_counters(conn: &mut MySqlConnection, tables: &Tables, c: Counters) -> Result<(), sqlx::Error> {
    let table = &tables.participants;
    // Members who joined an existing conversation take its archive flag and activity.
    if !c.joined_existing.is_empty() {
        let mut q = QueryBuilder::<MySql>::new(format!(
            "UPDATE {table} t JOIN {} c ON c.id = t.conversation_id \
             SET t.conversation_archived = c.is_archived, t.last_activity_at = COALESCE(c.last_message_at, c.created_at) WHERE t.id",
            tables.conversations
        ));
        sql::push_in(&mut q, c.joined_existing.iter().cloned());
        q.build().persistent(false).execute(&mut *conn).await?;
    }
    // Sends: +n for every member, -own for the senders, and the activity time; one statement per chunk.
    let sent: Vec<(String, i64, DateTime<Utc>)> = c.sent.into_iter().map(|(id, (n, at))| (id, n, at)).collect();
    for chunk in sent.chunks(sql::CASE_CHUNK) {
        let conversations: std::collections::HashSet<&str> = chunk.iter().map(|(id, _, _)| id.as_str()).collect();
        let own: Vec<(String, i64)> = c
            .own
            .iter()
            .filter(|(_, (conversation, _))| conversations.contains(conversation.as_str()))
            .map(|(row, (_, n))| (row.clone(), *n))
            .collect();
        let mut q = QueryBuilder::<MySql>::new(format!("UPDATE {table} SET unread_count = unread_count + "));
        sql::push_case(&mut q, "conversation_id", chunk.iter().map(|(id, n, _)| (id.clone(), *n)), "0");
        q.push(" - ");
        sql::push_case(&mut q, "id", own, "0");
        q.push(format!(", last_activity_at = GREATEST(COALESCE(last_activity_at, {}), ", sql::EPOCH));
        sql::push_case(&mut q, "conversation_id", chunk.iter().map(|(id, _, at)| (id.clone(), *at)), "last_activity_at");
        q.push(") WHERE conversation_id");
        sql::push_in(&mut q, chunk.iter().map(|(id, _, _)| id.clone()));
        q.build().persistent(false).execute(&mut *conn).await?;
    }
    for (conversation, messages) in &c.deleted {
        // Each deleted message was unread for every member but its sender whose mark is before it.
        let mut q = QueryBuilder::<MySql>::new(format!(
            "UPDATE {table} t SET t.unread_count = t.unread_count - (SELECT COUNT(*) FROM {} m WHERE m.conversation_id = t.conversation_id \
             AND m.sender_id <> t.user_id AND m.seq > t.last_read_seq AND m.id",
            tables.messages
        ));
        sql::push_in(&mut q, messages.iter().cloned());
        q.push(") WHERE t.conversation_id = ").push_bind(conversation.clone());
        q.build().persistent(false).execute(&mut *conn).await?;
    }
    // Read marks: the message, and its seq from MESSAGES.
    let marks: Vec<(String, String)> = c.read_marks.into_iter().collect();
    for chunk in marks.chunks(sql::CASE_CHUNK) {
        let mut q = QueryBuilder::<MySql>::new(format!("UPDATE {table} cp SET last_read_message_id = "));
        sql::push_case(&mut q, "cp.id", chunk.iter().cloned(), "cp.last_read_message_id");
        q.push(format!(", last_read_seq = COALESCE((SELECT m.seq FROM {} m WHERE m.id = ", tables.messages));
        sql::push_case(&mut q, "cp.id", chunk.iter().cloned(), "cp.last_read_message_id");
        q.push("), cp.last_read_seq) WHERE cp.id");
        sql::push_in(&mut q, chunk.iter().map(|(id, _)| id.clone()));
        q.build().persistent(false).execute(&mut *conn).await?;
    }
    let recount: Vec<String> = c.recount.into_iter().collect();
    for chunk in recount.chunks(sql::CHUNK) {
        let mut q = QueryBuilder::<MySql>::new(format!(
            "UPDATE {table} t SET t.unread_count = (SELECT COUNT(*) FROM {} m WHERE m.conversation_id = t.conversation_id \
             AND m.is_deleted = FALSE AND m.seq > t.last_read_seq AND m.sender_id <> t.user_id) WHERE t.id",
            tables.messages
        ));
        sql::push_in(&mut q, chunk.iter().cloned());
        q.build().persistent(false).execute(&mut *conn).await?;
    }
    Ok(())
}
