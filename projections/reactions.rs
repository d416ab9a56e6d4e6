//! `MESSAGE_REACTIONS`: one row per (message, user, emoji).
//!
//! ReactionAdded   → INSERT (id = reaction_id, message_id, user_id, emoji, created_at = t)
//! ReactionRemoved → DELETE WHERE id = reaction_id
//!
//! Rows added in the batch are inserted once at its end (or never, if removed
//! meanwhile).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::{MySql, MySqlConnection, QueryBuilder};

use super::{sql, ProjectedEvent, Tables};
use crate::domain::conversation::ConversationEvent as E;

struct Row {
    id: String,
    message_id: String,
    user_id: i32,
    emoji: String,
    created_at: DateTime<Utc>,
}

/// The batch's changes to `MESSAGE_REACTIONS`, gathered by `fold`.
#[derive(Default)]
pub struct Batch {
    added: Vec<Option<Row>>,
    index: HashMap<String, usize>,
    removed_earlier: Vec<String>,
}

impl Batch {
    pub fn fold(&mut self, projected: &ProjectedEvent) {
        match projected.conversation() {
            Some(E::ReactionAdded { message_id, reaction_id, user_id, emoji, .. }) => {
                let id = reaction_id.to_string();
                self.index.insert(id.clone(), self.added.len());
                self.added.push(Some(Row {
                    id,
                    message_id: message_id.to_string(),
                    user_id: user_id.get(),
                    emoji: emoji.as_str().to_owned(),
                    created_at: projected.recorded_at,
                }));
            }
            Some(E::ReactionRemoved { reaction_id, .. }) => {
                let id = reaction_id.to_string();
                match self.index.remove(&id) {
                    Some(i) => self.added[i] = None,
                    None => self.removed_earlier.push(id),
                }
            }
            _ => {}
        }
    }

    /// Writes the batch: removals of earlier rows first (the same reaction may
    /// be added again in the batch), then the new rows.
    pub async fn flush(self, conn: &mut MySqlConnection, tables: &Tables) -> Result<(), sqlx::Error> {
        for chunk in self.removed_earlier.chunks(sql::CHUNK) {
            let mut q = QueryBuilder::<MySql>::new(format!("DELETE FROM {} WHERE id", tables.reactions));
            sql::push_in(&mut q, chunk.iter().cloned());
            q.build().persistent(false).execute(&mut *conn).await?;
        }
        let rows: Vec<Row> = self.added.into_iter().flatten().collect();
        sql::insert_rows(conn, &tables.reactions, "id, message_id, user_id, emoji, created_at", &rows, "", &|row, r: &Row| {
            row.push_bind(r.id.clone())
                .push_bind(r.message_id.clone())
                .push_bind(r.user_id)
                .push_bind(r.emoji.clone())
                .push_bind(r.created_at);
        })
        .await
    }
}
