//! Which events a replay answers, and the SQL that reads them in position order.

use sqlx::{MySql, MySqlPool, QueryBuilder};

use crate::event_store::{StoreError, StoredEvent, EVENT_COLUMNS};

/// A replay's range and filters.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    /// Events after this position.
    pub after: u64,
    /// Up to and including this position.
    pub until: Option<u64>,
    /// Only these event types (empty: all).
    pub types: Vec<String>,
    /// Only this stream id.
    pub stream_id: Option<String>,
}

impl EventFilter {
    /// The SELECT of events after `after` matching the filter, in position order.
    pub fn query(&self, after: u64, limit: Option<u64>) -> QueryBuilder<'_, MySql> {
        let mut q = QueryBuilder::<MySql>::new(format!("SELECT {EVENT_COLUMNS} FROM event_log WHERE position > "));
        q.push_bind(after);
        if let Some(until) = self.until {
            q.push(" AND position <= ").push_bind(until);
        }
        if let Some(stream_id) = &self.stream_id {
            q.push(" AND stream_id = ").push_bind(stream_id.as_str());
        }
        if !self.types.is_empty() {
            q.push(" AND event_type IN (");
            let mut list = q.separated(", ");
            for event_type in &self.types {
                list.push_bind(event_type.as_str());
            }
            q.push(")");
        }
        q.push(" ORDER BY position");
        if let Some(limit) = limit {
            q.push(" LIMIT ").push_bind(limit);
        }
        q
    }

    /// Up to `limit` matching events after `after`, upcast to their current shape.
    pub async fn chunk(&self, pool: &MySqlPool, after: u64, limit: u64) -> Result<Vec<StoredEvent>, StoreError> {
        let rows: Vec<StoredEvent> = self.query(after, Some(limit)).build_query_as().persistent(false).fetch_all(pool).await?;
        rows.into_iter().map(StoredEvent::upcast).collect()
    }
}

/// Every event type the server writes or reads.
pub fn known_event_types() -> Vec<String> {
    crate::domain::schema::event_schemas().as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default()
}
