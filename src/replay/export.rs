//! `chat events export`: the replay NDJSON written to a file or stdout, from
//! one streamed primary-key range scan, the stored JSON written as it is
//! (events of an older schema version are upcast).

use std::io::Write;
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use sqlx::MySqlPool;

use super::EventFilter;
use sqlx::{FromRow, Row};

use crate::domain::upcasting;
use crate::event_store::{write_event_json, EventColumns, StoreError, StoredEvent};

/// What an export wrote.
#[derive(Debug, Clone, Copy)]
pub struct ExportReport {
    pub events: u64,
    pub bytes: u64,
    pub last_position: u64,
    pub elapsed: Duration,
}

/// Writes every matching event as one NDJSON line to `out`;
/// `progress(position)` is called every 10,000 events.
pub async fn export(
    pool: &MySqlPool,
    filter: &EventFilter,
    out: &mut impl Write,
    mut progress: impl FnMut(u64),
) -> Result<ExportReport, StoreError> {
    let started = Instant::now();
    let (mut events, mut bytes, mut last_position) = (0u64, 0u64, filter.after);
    let mut query = filter.query(filter.after, None);
    let mut rows = query.build().persistent(false).fetch(pool);
    let mut line = String::with_capacity(4096);
    while let Some(row) = rows.try_next().await? {
        line.clear();
        let columns = EventColumns {
            position: row.try_get(0)?,
            event_id: row.try_get(1)?,
            stream_type: row.try_get(2)?,
            stream_id: row.try_get(3)?,
            stream_version: row.try_get(4)?,
            event_type: row.try_get(5)?,
            schema_version: row.try_get(6)?,
            data: row.try_get(7)?,
            metadata: row.try_get(8)?,
            recorded_at: row.try_get(9)?,
        };
        if columns.schema_version == upcasting::current_version(columns.event_type) {
            write_event_json(&mut line, columns);
        } else {
            // An older schema version: upcast (rare), then write.
            StoredEvent::from_row(&row)?.upcast()?.write_json(&mut line);
        }
        line.push('\n');
        out.write_all(line.as_bytes()).map_err(|e| StoreError::Database(sqlx::Error::Io(e)))?;
        events += 1;
        bytes += line.len() as u64;
        last_position = columns.position;
        if events % 10_000 == 0 {
            progress(last_position);
        }
    }
    out.flush().map_err(|e| StoreError::Database(sqlx::Error::Io(e)))?;
    progress(last_position);
    Ok(ExportReport { events, bytes, last_position, elapsed: started.elapsed() })
}
