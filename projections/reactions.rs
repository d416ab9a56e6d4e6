//! `MESSAGE_REACTIONS`: one row per (message, user, emoji).
//!
//! ReactionAdded   → INSERT (id = reaction_id, message_id, user_id, emoji, created_at = t)
//! ReactionRemoved → DELETE WHERE id = reaction_id
//!
//! Rows added in this batch are inserted at the end (or never, if removed meanwhile).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::MySqlConnection;

use super::{sql, ProjectedEvent, Tables};
use crate::domain::conversation::ConversationEvent as E;

struct Row {
    id: String,
    message_id: String,
    user_id: i32,
    emoji: String,
    created_at: DateTime<Utc>,
}

pub async fn project(conn: &mut MySqlConnection, tables: &Tables, events: &[ProjectedEvent]) -> Result<(), sqlx::Error> {
    let mut added: Vec<Option<Row>> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for projected in events {
        match projected.conversation() {
            Some(E::ReactionAdded { message_id, reaction_id, user_id, emoji, .. }) => {
                let id = reaction_id.to_string();
                index.insert(id.clone(), added.len());
                added.push(Some(Row {
                    id,
                    message_id: message_id.to_string(),
                    user_id: user_id.get(),
                    emoji: emoji.as_str().to_owned(),
                    created_at: projected.recorded_at,
                }));
            }
            Some(E::ReactionRemoved { reaction_id, .. }) => {
                let id = reaction_id.to_string();
                match index.remove(&id) {
                    Some(i) => added[i] = None,
                    None => {
                        sqlx::query(&format!("DELETE FROM {} WHERE id = ?", tables.reactions)).bind(id).execute(&mut *conn).await?;
                    }
                }
            }
            _ => {}
        }
    }
    let rows: Vec<Row> = added.into_iter().flatten().collect();
    sql::insert_rows(conn, &tables.reactions, "id, message_id, user_id, emoji, created_at", &rows, "", &|row, r: &Row| {
        row.push_bind(r.id.clone()).push_bind(r.message_id.clone()).push_bind(r.user_id).push_bind(r.emoji.clone()).push_bind(r.created_at);
    })
    .await
}
