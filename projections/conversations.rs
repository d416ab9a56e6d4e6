//! `CONVERSATIONS`: one row per conversation.
//!
//! ConversationCreated      → INSERT (id, type, name, posting_id, created_by, created_at = updated_at = t)
//! ConversationRenamed      → UPDATE name, updated_at
//! ConversationArchived     → UPDATE is_archived = TRUE, updated_at
//! ConversationUnarchived   → UPDATE is_archived = FALSE, updated_at
//! Participant added, removed, role changed, ownership transferred → UPDATE updated_at
//! MessageSent              → UPDATE last_message_at = t, last_message_seq = seq, updated_at = t (the batch's last, in one statement)
//!
//! Rows created in the batch are changed in memory and inserted once; rows of
//! earlier batches get one statement per change, in event order.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use sqlx::{MySql, MySqlConnection, QueryBuilder};

use super::{sql, ProjectedEvent, Tables};
use crate::domain::conversation::ConversationEvent as E;
use crate::domain::values::ConversationType;

struct Row {
    id: String,
    kind: &'static str,
    name: Option<String>,
    posting_id: Option<String>,
    created_by: i32,
    is_archived: bool,
    last_message_at: Option<DateTime<Utc>>,
    /// The seq of the last message (0 before any): members' unread counts are derived from it.
    last_message_seq: u64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

/// A change to a row of an earlier batch, applied in event order.
enum Change {
    Name(Option<String>),
    Archived(bool),
    Touched,
}

/// The batch's changes to `CONVERSATIONS`, gathered by `fold`.
#[derive(Default)]
pub struct Batch {
    created: Vec<Row>,
    index: HashMap<String, usize>,
    changes: Vec<(String, Change, DateTime<Utc>)>,
    /// The time and seq of the batch's last message, per conversation of earlier batches.
    last_message: BTreeMap<String, (DateTime<Utc>, u64)>,
}

impl Batch {
    pub fn fold(&mut self, projected: &ProjectedEvent) {
        let Some(event) = projected.conversation() else {
            return;
        };
        let t = projected.recorded_at;
        let (id, change) = match event {
            E::ConversationCreated { conversation_id, kind, name, posting_id, created_by, .. } => {
                let id = conversation_id.to_string();
                self.index.insert(id.clone(), self.created.len());
                self.created.push(Row {
                    id,
                    kind: match kind {
                        ConversationType::Direct => "DIRECT",
                        ConversationType::Group => "GROUP",
                    },
                    name: name.clone(),
                    posting_id: posting_id.map(|p| p.to_string()),
                    created_by: created_by.get(),
                    is_archived: false,
                    last_message_at: None,
                    last_message_seq: 0,
                    created_at: t,
                    updated_at: t,
                });
                return;
            }
            E::ConversationRenamed { conversation_id, name, .. } => (conversation_id, Change::Name(Some(name.clone()))),
            E::ConversationArchived { conversation_id, .. } => (conversation_id, Change::Archived(true)),
            E::ConversationUnarchived { conversation_id, .. } => (conversation_id, Change::Archived(false)),
            E::ParticipantAdded { conversation_id, .. }
            | E::ParticipantRemoved { conversation_id, .. }
            | E::ParticipantRoleChanged { conversation_id, .. }
            | E::OwnershipTransferred { conversation_id, .. } => (conversation_id, Change::Touched),
            E::MessageSent { conversation_id, seq, .. } => {
                let id = conversation_id.to_string();
                match self.index.get(&id) {
                    Some(&i) => {
                        self.created[i].last_message_at = Some(t);
                        self.created[i].last_message_seq = *seq;
                        self.created[i].updated_at = t;
                    }
                    None => {
                        self.last_message.insert(id, (t, *seq));
                    }
                }
                return;
            }
            _ => return,
        };
        let id = id.to_string();
        match self.index.get(&id) {
            Some(&i) => {
                let row = &mut self.created[i];
                match change {
                    Change::Name(name) => row.name = name,
                    Change::Archived(archived) => row.is_archived = archived,
                    Change::Touched => {}
                }
                row.updated_at = t;
            }
            None => self.changes.push((id, change, t)),
        }
    }

    /// Writes the batch: changes to earlier rows in event order, the new
    /// rows, then the last message times of earlier rows.
    pub async fn flush(self, conn: &mut MySqlConnection, tables: &Tables) -> Result<(), sqlx::Error> {
        let table = &tables.conversations;
        let rename = format!("UPDATE {table} SET name = ?, updated_at = GREATEST(updated_at, ?) WHERE id = ?");
        let archive = format!("UPDATE {table} SET is_archived = ?, updated_at = GREATEST(updated_at, ?) WHERE id = ?");
        let touch = format!("UPDATE {table} SET updated_at = GREATEST(updated_at, ?) WHERE id = ?");
        for (id, change, t) in self.changes {
            let statement = match change {
                Change::Name(name) => sqlx::query(&rename).bind(name),
                Change::Archived(archived) => sqlx::query(&archive).bind(archived),
                Change::Touched => sqlx::query(&touch),
            };
            statement.bind(t).bind(id).execute(&mut *conn).await?;
        }
        sql::insert_rows(
            conn,
            table,
            "id, type, name, posting_id, created_by, is_archived, last_message_at, last_message_seq, created_at, updated_at",
            &self.created,
            "",
            &|row, r: &Row| {
                row.push_bind(r.id.clone())
                    .push_bind(r.kind)
                    .push_bind(r.name.clone())
                    .push_bind(r.posting_id.clone())
                    .push_bind(r.created_by)
                    .push_bind(r.is_archived)
                    .push_bind(r.last_message_at)
                    .push_bind(r.last_message_seq)
                    .push_bind(r.created_at)
                    .push_bind(r.updated_at);
            },
        )
        .await?;
        // The batch's last message (time and seq) of each conversation of earlier batches, in one statement per chunk.
        let last_message: Vec<(String, (DateTime<Utc>, u64))> = self.last_message.into_iter().collect();
        for chunk in last_message.chunks(sql::CASE_CHUNK) {
            let at = || chunk.iter().map(|(id, (at, _))| (id.clone(), *at));
            let mut q = QueryBuilder::<MySql>::new(format!(
                "UPDATE {table} SET last_message_at = GREATEST(COALESCE(last_message_at, {}), ",
                sql::EPOCH
            ));
            sql::push_case(&mut q, "id", at(), "NULL");
            q.push("), last_message_seq = GREATEST(last_message_seq, ");
            sql::push_case(&mut q, "id", chunk.iter().map(|(id, (_, seq))| (id.clone(), *seq)), "0");
            q.push("), updated_at = GREATEST(updated_at, ");
            sql::push_case(&mut q, "id", at(), "updated_at");
            q.push(") WHERE id");
            sql::push_in(&mut q, chunk.iter().map(|(id, _)| id.clone()));
            q.build().persistent(false).execute(&mut *conn).await?;
        }
        Ok(())
    }
}
