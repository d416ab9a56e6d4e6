//! `POSTINGS`: one row per published posting, with its latest title.
//!
//! PostingPublished, PostingRetitled → upsert (id, title).

use std::collections::BTreeMap;

use sqlx::MySqlConnection;

use super::{sql, ProjectedEvent, ProjectionEvent, Tables};
use crate::domain::posting::PostingEvent;

/// The batch's latest title of each posting, gathered by `fold`.
#[derive(Default)]
pub struct Batch {
    titles: BTreeMap<String, String>,
}

impl Batch {
    pub fn fold(&mut self, event: &ProjectedEvent) {
        if let ProjectionEvent::Posting(
            PostingEvent::PostingPublished { posting_id, title } | PostingEvent::PostingRetitled { posting_id, title },
        ) = &event.event
        {
            self.titles.insert(posting_id.to_string(), title.clone());
        }
    }

    /// Upserts the batch's titles.
    pub async fn flush(self, conn: &mut MySqlConnection, tables: &Tables) -> Result<(), sqlx::Error> {
        let rows: Vec<(String, String)> = self.titles.into_iter().collect();
        sql::insert_rows(
            conn,
            &tables.postings,
            "id, title",
            &rows,
            " ON DUPLICATE KEY UPDATE title = VALUES(title)",
            &|row, (id, title)| {
                row.push_bind(id.clone()).push_bind(title.clone());
            },
        )
        .await
    }
}
