//! `CONVERSATIONS`: one row per conversation.
//!
//! ConversationCreated      → INSERT (id, type, name, posting_id, created_by, created_at = updated_at = t)
//! ConversationRenamed      → UPDATE name, updated_at
//! ConversationArchived     → UPDATE is_archived = TRUE, updated_at
//! ConversationUnarchived   → UPDATE is_archived = FALSE, updated_at
//! Participant added, removed, role changed, ownership transferred → UPDATE updated_at
//! MessageSent              → UPDATE last_message_at = t, updated_at = t (the batch's last, in one statement)
//!
//! Rows created in this batch are changed in memory and inserted at the end.

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
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

/// The value a change sets.
enum Value {
    Name(Option<String>),
    Flag(bool),
}

/// A change to a row of an earlier batch, run as one statement in event order.
enum Change {
    Name(Option<String>),
    Archived(bool),
    Touched,
}

pub async fn project(conn: &mut MySqlConnection, tables: &Tables, events: &[ProjectedEvent]) -> Result<(), sqlx::Error> {
    let mut created: Vec<Row> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut last_message: BTreeMap<String, DateTime<Utc>> = BTreeMap::new();
    for projected in events {
        let Some(event) = projected.conversation() else {
            continue;
        };
        let t = projected.recorded_at;
        let (id, change) = match event {
            E::ConversationCreated { conversation_id, kind, name, posting_id, created_by, .. } => {
                let id = conversation_id.to_string();
                index.insert(id.clone(), created.len());
                created.push(Row {
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
                    created_at: t,
                    updated_at: t,
                });
                continue;
            }
            E::ConversationRenamed { conversation_id, name, .. } => (conversation_id, Change::Name(Some(name.clone()))),
            E::ConversationArchived { conversation_id, .. } => (conversation_id, Change::Archived(true)),
            E::ConversationUnarchived { conversation_id, .. } => (conversation_id, Change::Archived(false)),
            E::ParticipantAdded { conversation_id, .. }
            | E::ParticipantRemoved { conversation_id, .. }
            | E::ParticipantRoleChanged { conversation_id, .. }
            | E::OwnershipTransferred { conversation_id, .. } => (conversation_id, Change::Touched),
            E::MessageSent { conversation_id, .. } => {
                let id = conversation_id.to_string();
                match index.get(&id) {
                    Some(&i) => {
                        created[i].last_message_at = Some(t);
                        created[i].updated_at = t;
                    }
                    None => {
                        last_message.insert(id, t);
                    }
                }
                continue;
            }
            _ => continue,
        };
        let id = id.to_string();
        if let Some(&i) = index.get(&id) {
            let row = &mut created[i];
            match change {
                Change::Name(name) => row.name = name,
                Change::Archived(archived) => row.is_archived = archived,
                Change::Touched => {}
            }
            row.updated_at = t;
            continue;
        }
        let table = &tables.conversations;
        let (sql, value) = match change {
            Change::Name(name) => {
                (format!("UPDATE {table} SET name = ?, updated_at = GREATEST(updated_at, ?) WHERE id = ?"), Some(Value::Name(name)))
            }
            Change::Archived(archived) => (
                format!("UPDATE {table} SET is_archived = ?, updated_at = GREATEST(updated_at, ?) WHERE id = ?"),
                Some(Value::Flag(archived)),
            ),
            Change::Touched => (format!("UPDATE {table} SET updated_at = GREATEST(updated_at, ?) WHERE id = ?"), None),
        };
        let mut statement = sqlx::query(&sql);
        match value {
            Some(Value::Name(name)) => statement = statement.bind(name),
            Some(Value::Flag(flag)) => statement = statement.bind(flag),
            None => {}
        }
        statement.bind(t).bind(id).execute(&mut *conn).await?;
    }

    sql::insert_rows(
        conn,
        &tables.conversations,
        "id, type, name, posting_id, created_by, is_archived, last_message_at, created_at, updated_at",
        &created,
        "",
        &|row, r: &Row| {
            row.push_bind(r.id.clone())
                .push_bind(r.kind)
                .push_bind(r.name.clone())
                .push_bind(r.posting_id.clone())
                .push_bind(r.created_by)
                .push_bind(r.is_archived)
                .push_bind(r.last_message_at)
                .push_bind(r.created_at)
                .push_bind(r.updated_at);
        },
    )
    .await?;
    // The batch's last message time of each conversation of earlier batches, in one statement per chunk.
    let last_message: Vec<(String, DateTime<Utc>)> = last_message.into_iter().collect();
    for chunk in last_message.chunks(sql::CASE_CHUNK) {
        let table = &tables.conversations;
        let mut q = QueryBuilder::<MySql>::new(format!(
            "UPDATE {table} SET last_message_at = GREATEST(COALESCE(last_message_at, {}), ",
            sql::EPOCH
        ));
        sql::push_case(&mut q, "id", chunk.iter().cloned(), "NULL");
        q.push("), updated_at = GREATEST(updated_at, ");
        sql::push_case(&mut q, "id", chunk.iter().cloned(), "updated_at");
        q.push(") WHERE id");
        sql::push_in(&mut q, chunk.iter().map(|(id, _)| id.clone()));
        q.build().persistent(false).execute(&mut *conn).await?;
    }
    Ok(())
}
