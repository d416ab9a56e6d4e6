//! `CONVERSATION_PARTICIPANTS`: one row per member of a conversation, with the
//! member's own settings, read mark and unread count.
//!
//! ConversationCreated        → INSERT one row per participant (role, joined_at = t)
//! ParticipantAdded           → INSERT (role, joined_at = t); unread counted
//! ParticipantRemoved         → DELETE
//! ParticipantRoleChanged     → UPDATE role
//! OwnershipTransferred       → UPDATE role (new OWNER; previous ADMIN)
//! ParticipantSettingsChanged → UPDATE is_muted, notifications_enabled
//! ConversationArchived/Unarchived → UPDATE conversation_archived (all rows of the conversation)
//! MessageSent                → unread_exempt + 1 for the sender only
//! MessageDeleted             → unread_exempt + 1 for everyone but the sender who had not read it
//! MessagesRead               → UPDATE last_read_message_id, last_read_seq; unread recounted
//!
//! A member's unread count (the conversation's non-deleted messages from
//! others after their last read message) is derived when it is read:
//! `CONVERSATIONS.last_message_seq - last_read_seq - unread_exempt`, where
//! `unread_exempt` counts the messages after the mark that are not unread for
//! the member (their own and deleted ones). So a sent message writes one
//! membership row, the sender's, however many members the conversation has:
//! the fan-out happens when reading (one joined row), not on every send.
//!
//! A conversation created in the batch has its whole history in the batch:
//! its rows are computed in memory and inserted once. Rows of earlier
//! conversations get their counters in a few set-based statements, and a
//! recount (an indexed COUNT of the messages after the mark) only when the
//! mark moves or the member joins.

#[cfg(test)]
mod properties;

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
    last_read_message_id: Option<String>,
    last_read_seq: u64,
    is_muted: bool,
    notifications_enabled: bool,
}

/// A conversation created in this batch, with what its rows are computed from.
struct NewConversation {
    archived: bool,
    messages: Vec<SentMessage>,
    by_id: HashMap<String, usize>,
}

struct SentMessage {
    seq: u64,
    sender: i32,
    deleted: bool,
}

impl NewConversation {
    /// Non-deleted messages from others than `user` after `seq`.
    fn unread(&self, user: i32, seq: u64) -> i64 {
        let first = self.messages.partition_point(|m| m.seq <= seq);
        self.messages[first..].iter().filter(|m| !m.deleted && m.sender != user).count() as i64
    }

    /// Messages after `seq` that are not unread for `user` (their own, deleted ones).
    fn unread_exempt(&self, user: i32, seq: u64) -> i64 {
        let after = self.messages.last().map_or(0, |m| m.seq).saturating_sub(seq);
        after as i64 - self.unread(user, seq)
    }
}

/// A change to a row of an earlier batch, applied in event order.
enum Change {
    Remove(String),
    Role(String, &'static str),
    Settings(String, bool, bool),
    Archived(String, bool),
}

/// What the batch does to the counters of earlier conversations' rows.
#[derive(Default)]
struct Counters {
    /// Messages sent per membership row (conversation, sender): not unread for the sender.
    own: BTreeMap<String, i64>,
    /// Deleted messages, by conversation.
    deleted: BTreeMap<String, Vec<String>>,
    /// Final read mark per membership row id.
    read_marks: BTreeMap<String, String>,
    /// Memberships whose unread count is recomputed (joined or read).
    recount: BTreeSet<String>,
    /// Memberships that joined an existing conversation: copy its archive flag.
    joined_existing: BTreeSet<String>,
}

/// The batch's changes to `CONVERSATION_PARTICIPANTS`, gathered by `fold`.
#[derive(Default)]
pub struct Batch {
    created: Vec<Option<Row>>,
    index: HashMap<String, usize>,
    new_conversations: HashMap<String, NewConversation>,
    changes: Vec<Change>,
    counters: Counters,
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

impl Batch {
    pub fn fold(&mut self, projected: &ProjectedEvent) {
        let Some(event) = projected.conversation() else {
            return;
        };
        let t = projected.recorded_at;
        match event {
            E::ConversationCreated { conversation_id, participants, .. } => {
                let conversation = NewConversation { archived: false, messages: Vec::new(), by_id: HashMap::new() };
                self.new_conversations.insert(conversation_id.to_string(), conversation);
                for p in participants {
                    self.insert(new_row(conversation_id, p.user_id, p.role, t));
                }
            }
            E::ParticipantAdded { conversation_id, user_id, role, .. } => {
                let row = new_row(conversation_id, *user_id, *role, t);
                if !self.new_conversations.contains_key(&row.conversation_id) {
                    self.counters.joined_existing.insert(row.id.clone());
                    self.counters.recount.insert(row.id.clone());
                }
                self.insert(row);
            }
            E::ParticipantRemoved { conversation_id, user_id, .. } => {
                let id = participant_row_id(conversation_id, *user_id);
                self.counters.recount.remove(&id);
                self.counters.read_marks.remove(&id);
                self.counters.joined_existing.remove(&id);
                match self.index.remove(&id) {
                    Some(i) => self.created[i] = None,
                    None => self.changes.push(Change::Remove(id)),
                }
            }
            E::ParticipantRoleChanged { conversation_id, user_id, role, .. } => {
                self.set_role(participant_row_id(conversation_id, *user_id), *role);
            }
            E::OwnershipTransferred { conversation_id, previous_owner, new_owner } => {
                self.set_role(participant_row_id(conversation_id, *previous_owner), Role::Admin);
                self.set_role(participant_row_id(conversation_id, *new_owner), Role::Owner);
            }
            E::ParticipantSettingsChanged { conversation_id, user_id, is_muted, notifications_enabled } => {
                let id = participant_row_id(conversation_id, *user_id);
                match self.row_mut(&id) {
                    Some(row) => {
                        row.is_muted = *is_muted;
                        row.notifications_enabled = *notifications_enabled;
                    }
                    None => self.changes.push(Change::Settings(id, *is_muted, *notifications_enabled)),
                }
            }
            E::ConversationArchived { conversation_id, .. } | E::ConversationUnarchived { conversation_id, .. } => {
                let archived = matches!(event, E::ConversationArchived { .. });
                let conversation = conversation_id.to_string();
                match self.new_conversations.get_mut(&conversation) {
                    Some(new) => new.archived = archived,
                    // Rows that joined in this batch copy the final flag after their insert.
                    None => self.changes.push(Change::Archived(conversation, archived)),
                }
            }
            E::MessageSent { conversation_id, message_id, sender_id, seq, .. } => {
                let conversation = conversation_id.to_string();
                if let Some(new) = self.new_conversations.get_mut(&conversation) {
                    new.by_id.insert(message_id.to_string(), new.messages.len());
                    new.messages.push(SentMessage { seq: *seq, sender: sender_id.get(), deleted: false });
                    return;
                }
                *self.counters.own.entry(participant_row_id(conversation_id, *sender_id)).or_default() += 1;
            }
            E::MessageDeleted { conversation_id, message_id, .. } => {
                let conversation = conversation_id.to_string();
                let message = message_id.to_string();
                match self.new_conversations.get_mut(&conversation) {
                    Some(new) => {
                        if let Some(&i) = new.by_id.get(&message) {
                            new.messages[i].deleted = true;
                        }
                    }
                    None => self.counters.deleted.entry(conversation).or_default().push(message),
                }
            }
            E::MessagesRead { conversation_id, user_id, message_id } => {
                let id = participant_row_id(conversation_id, *user_id);
                let message = message_id.to_string();
                let seq = self
                    .new_conversations
                    .get(&conversation_id.to_string())
                    .and_then(|new| new.by_id.get(&message).map(|&i| new.messages[i].seq));
                match (seq, self.index.get(&id).and_then(|&i| self.created[i].as_mut())) {
                    (Some(seq), Some(row)) => {
                        row.last_read_message_id = Some(message);
                        row.last_read_seq = seq;
                    }
                    _ => {
                        self.counters.read_marks.insert(id.clone(), message);
                        self.counters.recount.insert(id);
                    }
                }
            }
            _ => {}
        }
    }

    /// Whether writing the batch reads MESSAGES (to count or to find a seq).
    pub fn reads_messages(&self) -> bool {
        let c = &self.counters;
        !(c.deleted.is_empty() && c.read_marks.is_empty() && c.recount.is_empty())
    }

    fn insert(&mut self, row: Row) {
        self.index.insert(row.id.clone(), self.created.len());
        self.created.push(Some(row));
    }

    fn row_mut(&mut self, id: &str) -> Option<&mut Row> {
        self.index.get(id).and_then(|&i| self.created[i].as_mut())
    }

    fn set_role(&mut self, id: String, role: Role) {
        match self.row_mut(&id) {
            Some(row) => row.role = role_name(role),
            None => self.changes.push(Change::Role(id, role_name(role))),
        }
    }

    /// Writes the batch: changes to earlier rows in event order and their
    /// counters, then the new rows, then what new rows of earlier
    /// conversations copy or count from the tables.
    pub async fn flush(self, conn: &mut MySqlConnection, tables: &Tables) -> Result<(), sqlx::Error> {
        let table = &tables.participants;
        let remove = format!("DELETE FROM {table} WHERE id = ?");
        let set_role = format!("UPDATE {table} SET role = ? WHERE id = ?");
        let set_settings = format!("UPDATE {table} SET is_muted = ?, notifications_enabled = ? WHERE id = ?");
        let set_archived = format!("UPDATE {table} SET conversation_archived = ? WHERE conversation_id = ?");
        for change in self.changes {
            let statement = match change {
                Change::Remove(id) => sqlx::query(&remove).bind(id),
                Change::Role(id, role) => sqlx::query(&set_role).bind(role).bind(id),
                Change::Settings(id, muted, notifications) => sqlx::query(&set_settings).bind(muted).bind(notifications).bind(id),
                Change::Archived(conversation, archived) => sqlx::query(&set_archived).bind(archived).bind(conversation),
            };
            statement.execute(&mut *conn).await?;
        }
        apply_counters(conn, tables, &self.counters).await?;
        insert_new_rows(conn, table, self.created.into_iter().flatten(), &self.new_conversations).await?;
        apply_joins_and_marks(conn, tables, self.counters).await
    }
}

fn new_row(conversation: &ConversationId, user: UserId, role: Role, t: DateTime<Utc>) -> Row {
    Row {
        id: participant_row_id(conversation, user),
        conversation_id: conversation.to_string(),
        user_id: user.get(),
        role: role_name(role),
        joined_at: t,
        last_read_message_id: None,
        last_read_seq: 0,
        is_muted: false,
        notifications_enabled: true,
    }
}

/// Rows created in the batch; those of new conversations complete, the
/// others completed by `apply_joins_and_marks`.
async fn insert_new_rows(
    conn: &mut MySqlConnection,
    table: &str,
    rows: impl Iterator<Item = Row>,
    new_conversations: &HashMap<String, NewConversation>,
) -> Result<(), sqlx::Error> {
    let complete: Vec<(Row, bool, i64)> = rows
        .map(|row| match new_conversations.get(&row.conversation_id) {
            Some(c) => {
                let exempt = c.unread_exempt(row.user_id, row.last_read_seq);
                (row, c.archived, exempt)
            }
            None => (row, false, 0),
        })
        .collect();
    sql::insert_rows(
        conn,
        table,
        "id, conversation_id, user_id, role, joined_at, last_read_message_id, last_read_seq, is_muted, notifications_enabled, \
         conversation_archived, unread_exempt",
        &complete,
        "",
        &|q, (r, archived, exempt)| {
            q.push_bind(r.id.clone())
                .push_bind(r.conversation_id.clone())
                .push_bind(r.user_id)
                .push_bind(r.role)
                .push_bind(r.joined_at)
                .push_bind(r.last_read_message_id.clone())
                .push_bind(r.last_read_seq)
                .push_bind(r.is_muted)
                .push_bind(r.notifications_enabled)
                .push_bind(*archived)
                .push_bind(*exempt);
        },
    )
    .await
}

/// Sends and deletes in earlier conversations, before the batch's new rows
/// exist (those are counted on their own).
async fn apply_counters(conn: &mut MySqlConnection, tables: &Tables, c: &Counters) -> Result<(), sqlx::Error> {
    let table = &tables.participants;
    // Sends: their own messages are not unread for the senders; one statement per chunk of senders.
    let own: Vec<(String, i64)> = c.own.iter().map(|(row, n)| (row.clone(), *n)).collect();
    for chunk in own.chunks(sql::CASE_CHUNK) {
        let mut q = QueryBuilder::<MySql>::new(format!("UPDATE {table} SET unread_exempt = unread_exempt + "));
        sql::push_case(&mut q, "id", chunk.iter().cloned(), "0");
        q.push(" WHERE id");
        sql::push_in(&mut q, chunk.iter().map(|(id, _)| id.clone()));
        q.build().persistent(false).execute(&mut *conn).await?;
    }
    for (conversation, messages) in &c.deleted {
        // Each deleted message was unread for every member but its sender whose mark is before it.
        let mut q = QueryBuilder::<MySql>::new(format!(
            "UPDATE {table} t SET t.unread_exempt = t.unread_exempt + (SELECT COUNT(*) FROM {} m WHERE m.conversation_id = t.conversation_id \
             AND m.sender_id <> t.user_id AND m.seq > t.last_read_seq AND m.id",
            tables.messages
        ));
        sql::push_in(&mut q, messages.iter().cloned());
        q.push(") WHERE t.conversation_id = ").push_bind(conversation.clone());
        q.build().persistent(false).execute(&mut *conn).await?;
    }
    Ok(())
}

/// Members who joined an earlier conversation copy its archive flag; read
/// marks set with their message's seq; unread recounted.
async fn apply_joins_and_marks(conn: &mut MySqlConnection, tables: &Tables, c: Counters) -> Result<(), sqlx::Error> {
    let table = &tables.participants;
    let joined: Vec<String> = c.joined_existing.into_iter().collect();
    for chunk in joined.chunks(sql::CHUNK) {
        let mut q = QueryBuilder::<MySql>::new(format!(
            "UPDATE {table} t JOIN {} c ON c.id = t.conversation_id \
             SET t.conversation_archived = c.is_archived WHERE t.id",
            tables.conversations
        ));
        sql::push_in(&mut q, chunk.iter().cloned());
        q.build().persistent(false).execute(&mut *conn).await?;
    }
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
            "UPDATE {table} t JOIN {} c ON c.id = t.conversation_id \
             SET t.unread_exempt = c.last_message_seq - CAST(t.last_read_seq AS SIGNED) - (SELECT COUNT(*) FROM {} m \
             WHERE m.conversation_id = t.conversation_id AND m.is_deleted = FALSE AND m.seq > t.last_read_seq AND m.sender_id <> t.user_id) \
             WHERE t.id",
            tables.conversations, tables.messages
        ));
        sql::push_in(&mut q, chunk.iter().cloned());
        q.build().persistent(false).execute(&mut *conn).await?;
    }
    Ok(())
}
