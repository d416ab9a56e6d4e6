//! `app_users`: one row per registered user, as its latest profile.
//!
//! UserRegistered, UserProfileUpdated → upsert (id, first_name, last_name, email).

use std::collections::BTreeMap;

use sqlx::MySqlConnection;

use super::{sql, ProjectedEvent, ProjectionEvent, Tables};
use crate::domain::user::UserEvent;

struct Row {
    id: i32,
    first_name: String,
    last_name: String,
    email: Option<String>,
}

pub async fn project(conn: &mut MySqlConnection, tables: &Tables, events: &[ProjectedEvent]) -> Result<(), sqlx::Error> {
    // The last profile of each user in the batch wins.
    let mut rows = BTreeMap::new();
    for event in events {
        if let ProjectionEvent::User(
            UserEvent::UserRegistered { user_id, first_name, last_name, email }
            | UserEvent::UserProfileUpdated { user_id, first_name, last_name, email },
        ) = &event.event
        {
            let row = Row { id: user_id.get(), first_name: first_name.clone(), last_name: last_name.clone(), email: email.clone() };
            rows.insert(user_id.get(), row);
        }
    }
    let rows: Vec<Row> = rows.into_values().collect();
    sql::insert_rows(
        conn,
        &tables.users,
        "id, first_name, last_name, email",
        &rows,
        " ON DUPLICATE KEY UPDATE first_name = VALUES(first_name), last_name = VALUES(last_name), email = VALUES(email)",
        &|row, r: &Row| {
            row.push_bind(r.id).push_bind(r.first_name.clone()).push_bind(r.last_name.clone()).push_bind(r.email.clone());
        },
    )
    .await
}
