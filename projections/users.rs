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

/// The batch's latest profile of each user, gathered by `fold`.
#[derive(Default)]
pub struct Batch {
    rows: BTreeMap<i32, Row>,
}

impl Batch {
    pub fn fold(&mut self, event: &ProjectedEvent) {
        if let ProjectionEvent::User(
            UserEvent::UserRegistered { user_id, first_name, last_name, email }
            | UserEvent::UserProfileUpdated { user_id, first_name, last_name, email },
        ) = &event.event
        {
            let row = Row { id: user_id.get(), first_name: first_name.clone(), last_name: last_name.clone(), email: email.clone() };
            self.rows.insert(user_id.get(), row);
        }
    }

    /// Upserts the batch's profiles.
    pub async fn flush(self, conn: &mut MySqlConnection, tables: &Tables) -> Result<(), sqlx::Error> {
        let rows: Vec<Row> = self.rows.into_values().collect();
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
}
