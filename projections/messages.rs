//! `MESSAGES`: one row per message, deleted ones kept (flagged).
//!
//! MessageSent    → INSERT (id, conversation_id, seq, sender_id, content, message_type,
//!                   media_url, media_metadata, reply_to_id, created_at = t)
//! MessageEdited  → UPDATE content, is_edited = TRUE, edited_at = t
//! MessageDeleted → UPDATE is_deleted = TRUE, deleted_at = t
//!
//! Rows created in the batch are changed in memory and inserted once; rows of
//! earlier batches get one statement per change, in event order.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::MySqlConnection;

use super::{sql, ProjectedEvent, Tables};
use crate::domain::conversation::ConversationEvent as E;
use crate::domain::values::MessageType;

struct Row {
    id: String,
    conversation_id: String,
    seq: u64,
    sender_id: i32,
    content: Option<String>,
    message_type: &'static str,
    media_url: Option<String>,
    media_metadata: Option<String>,
    reply_to_id: Option<String>,
    is_edited: bool,
    is_deleted: bool,
    edited_at: Option<DateTime<Utc>>,
    deleted_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
}

/// The column value of a message type.
pub fn message_type_name(kind: MessageType) -> &'static str {
    match kind {
        MessageType::Text => "TEXT",
        MessageType::Image => "IMAGE",
        MessageType::File => "FILE",
        MessageType::System => "SYSTEM",
    }
}

/// A change to a row of an earlier batch, applied in event order.
enum Change {
    Edited(String, String, DateTime<Utc>),
    Deleted(String, DateTime<Utc>),
}

/// The batch's changes to `MESSAGES`, gathered by `fold`.
#[derive(Default)]
pub struct Batch {
    created: Vec<Row>,
    index: HashMap<String, usize>,
    changes: Vec<Change>,
}

impl Batch {
    pub fn fold(&mut self, projected: &ProjectedEvent) {
        let Some(event) = projected.conversation() else {
            return;
        };
        let t = projected.recorded_at;
        match event {
            E::MessageSent {
                conversation_id,
                message_id,
                sender_id,
                seq,
                message_type,
                content,
                media_url,
                media_metadata,
                reply_to_id,
            } => {
                let id = message_id.to_string();
                self.index.insert(id.clone(), self.created.len());
                self.created.push(Row {
                    id,
                    conversation_id: conversation_id.to_string(),
                    seq: *seq,
                    sender_id: sender_id.get(),
                    content: content.clone(),
                    message_type: message_type_name(*message_type),
                    media_url: media_url.clone(),
                    media_metadata: media_metadata.as_ref().map(|m| serde_json::Value::Object(m.clone()).to_string()),
                    reply_to_id: reply_to_id.map(|r| r.to_string()),
                    is_edited: false,
                    is_deleted: false,
                    edited_at: None,
                    deleted_at: None,
                    created_at: t,
                });
            }
            E::MessageEdited { message_id, content, .. } => {
                let id = message_id.to_string();
                match self.index.get(&id) {
                    Some(&i) => {
                        let row = &mut self.created[i];
                        row.content = Some(content.clone());
                        row.is_edited = true;
                        row.edited_at = Some(t);
                    }
                    None => self.changes.push(Change::Edited(id, content.clone(), t)),
                }
            }
            E::MessageDeleted { message_id, .. } => {
                let id = message_id.to_string();
                match self.index.get(&id) {
                    Some(&i) => {
                        self.created[i].is_deleted = true;
                        self.created[i].deleted_at = Some(t);
                    }
                    None => self.changes.push(Change::Deleted(id, t)),
                }
            }
            _ => {}
        }
    }

    /// Splits off the later half of the new rows as a batch of its own, so
    /// two connections can insert them; only when there is nothing else to
    /// write (no changes to earlier rows, which are ordered).
    pub fn split_off_half(&mut self) -> Option<Batch> {
        if !self.changes.is_empty() || self.created.len() < 2 * sql::CHUNK {
            return None;
        }
        let later = self.created.split_off(self.created.len() / 2);
        self.index.clear();
        Some(Batch { created: later, index: HashMap::new(), changes: Vec::new() })
    }

    /// Writes the batch: changes to earlier rows in event order, then the new rows.
    pub async fn flush(self, conn: &mut MySqlConnection, tables: &Tables) -> Result<(), sqlx::Error> {
        let table = &tables.messages;
        let edit = format!("UPDATE {table} SET content = ?, is_edited = TRUE, edited_at = ? WHERE id = ?");
        let delete = format!("UPDATE {table} SET is_deleted = TRUE, deleted_at = ? WHERE id = ?");
        for change in self.changes {
            let statement = match change {
                Change::Edited(id, content, t) => sqlx::query(&edit).bind(content).bind(t).bind(id),
                Change::Deleted(id, t) => sqlx::query(&delete).bind(t).bind(id),
            };
            statement.execute(&mut *conn).await?;
        }
        sql::insert_rows(
            conn,
            table,
            "id, conversation_id, seq, sender_id, content, message_type, media_url, media_metadata, reply_to_id, \
             is_edited, is_deleted, edited_at, deleted_at, created_at",
            &self.created,
            "",
            &|row, r: &Row| {
                row.push_bind(r.id.clone())
                    .push_bind(r.conversation_id.clone())
                    .push_bind(r.seq)
                    .push_bind(r.sender_id)
                    .push_bind(r.content.clone())
                    .push_bind(r.message_type)
                    .push_bind(r.media_url.clone())
                    .push_bind(r.media_metadata.clone())
                    .push_bind(r.reply_to_id.clone())
                    .push_bind(r.is_edited)
                    .push_bind(r.is_deleted)
                    .push_bind(r.edited_at)
                    .push_bind(r.deleted_at)
                    .push_bind(r.created_at);
            },
        )
        .await
    }
}
