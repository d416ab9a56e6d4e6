//! `POSTINGS`: one row per published posting, with its latest title.
//!
//! PostingPublished, PostingRetitled → upsert (id, title).

use std::collections::BTreeMap;

use sqlx::MySqlConnection;

use super::{sql, ProjectedEvent, ProjectionEvent, Tables};
use crate::domain::posting::PostingEvent;

pub async fn project(conn: &mut MySqlConnection, tables: &Tables, events: &[ProjectedEvent]) -> Result<(), sqlx::Error> {
    let mut titles = BTreeMap::new();
    for event in events {
        if let ProjectionEvent::Posting(
            PostingEvent::PostingPublished { posting_id, title } | PostingEvent::PostingRetitled { posting_id, title },
        ) = &event.event
        {
            titles.insert(posting_id.to_string(), title.clone());
        }
    }
    let rows: Vec<(String, String)> = titles.into_iter().collect();
    sql::insert_rows(conn, &tables.postings, "id, title", &rows, " ON DUPLICATE KEY UPDATE title = VALUES(title)", &|row, (id, title)| {
        row.push_bind(id.clone()).push_bind(title.clone());
    })
    .await
}
