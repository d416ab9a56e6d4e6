//! `chat projections rebuild`: rebuilds every read model from the event log
//! while the API stays up. Builds fresh shadow tables (same definitions as the
//! live ones), applies the whole log to them in large batches (each with its
//! checkpoint), then, holding the apply lock, catches up with the last events
//! and swaps the shadow tables in with one atomic RENAME TABLE.

use std::time::{Duration, Instant};

use sqlx::{Connection, MySqlConnection, MySqlPool};

use super::tables::LIVE;
use super::worker::APPLY_LOCK;
use super::{save_checkpoint, Batch, ProjectedEvent, ProjectionError, Tables, CHECKPOINT};
use crate::event_store::EventReader;

/// Events read from the log per query.
const READ_CHUNK: u32 = 20_000;
/// Events folded in memory before they are written in one transaction: the
/// larger, the more rows are written once, complete, by bulk inserts (memory
/// grows with the rows the events create, roughly 1 KiB per event).
pub const REBUILD_BATCH: usize = 2_000_000;
const SHADOW: &str = "__rebuild";
const OLD: &str = "__old";
const REBUILD_CHECKPOINT: &str = "rebuild";

/// What a rebuild did.
#[derive(Debug, Clone, Copy)]
pub struct RebuildReport {
    pub events: u64,
    pub position: u64,
    pub elapsed: Duration,
}

impl RebuildReport {
    pub fn events_per_second(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Rebuilds and swaps; `progress(applied, head)` is called after each batch.
pub async fn rebuild(pool: &MySqlPool, mut progress: impl FnMut(u64, u64)) -> Result<RebuildReport, ProjectionError> {
    let started = Instant::now();
    let reader = EventReader::new(pool.clone());
    let mut conn = pool.acquire().await?.detach();
    // The shadow tables are filled from a consistent log, in foreign-key
    // order: checking each inserted row's references again only costs time.
    sqlx::query("SET SESSION foreign_key_checks = 0").execute(&mut conn).await?;
    let shadow = Tables::with_suffix(SHADOW);
    create_shadow_tables(&mut conn).await?;

    let mut position = 0;
    let mut events = 0;
    loop {
        let head = reader.head().await?;
        let applied = apply_from_log(&mut conn, &reader, &shadow, position, head, &mut progress).await?;
        events += applied.0;
        position = applied.1;
        if position >= head {
            break;
        }
    }

    // Catch up with what was appended meanwhile and swap, with the live projector paused.
    let locked: Option<i64> = sqlx::query_scalar(&format!("SELECT GET_LOCK({APPLY_LOCK}, 60)")).fetch_one(&mut conn).await?;
    if locked != Some(1) {
        return Err(ProjectionError::Database(sqlx::Error::Protocol("the live projector held the apply lock for 60 s".into())));
    }
    let swapped = async {
        loop {
            let head = reader.head().await?;
            if position >= head {
                break;
            }
            let applied = apply_from_log(&mut conn, &reader, &shadow, position, head, &mut progress).await?;
            events += applied.0;
            position = applied.1;
        }
        swap(&mut conn, position).await
    }
    .await;
    let _ = sqlx::query(&format!("SELECT RELEASE_LOCK({APPLY_LOCK})")).execute(&mut conn).await;
    swapped?;
    for table in LIVE.iter().rev() {
        sqlx::query(&format!("DROP TABLE IF EXISTS `{table}{OLD}`")).execute(&mut conn).await?;
    }
    Ok(RebuildReport { events, position, elapsed: started.elapsed() })
}

/// Applies batches from `position` up to `head`, reporting `progress` after
/// each; answers (events applied, new position).
async fn apply_from_log(
    conn: &mut MySqlConnection,
    reader: &EventReader,
    tables: &Tables,
    mut position: u64,
    head: u64,
    progress: &mut impl FnMut(u64, u64),
) -> Result<(u64, u64), ProjectionError> {
    let mut applied = 0;
    let mut batch = Batch::default();
    while position < head {
        let stored = reader.events_after(position, READ_CHUNK).await?;
        let Some(last) = stored.last().map(|e| e.position) else {
            break;
        };
        for event in &stored {
            batch.fold(&ProjectedEvent::from_stored(event)?);
        }
        position = last;
        if batch.len() >= REBUILD_BATCH {
            applied += write(conn, tables, std::mem::take(&mut batch)).await?;
        }
        progress(position, head);
    }
    applied += write(conn, tables, batch).await?;
    Ok((applied, position))
}

/// Writes a folded batch with the rebuild's checkpoint; answers its events.
async fn write(conn: &mut MySqlConnection, tables: &Tables, batch: Batch) -> Result<u64, ProjectionError> {
    let Some(last) = batch.last_position() else {
        return Ok(0);
    };
    let events = batch.len() as u64;
    let mut tx = conn.begin().await?;
    batch.flush(&mut tx, tables).await?;
    save_checkpoint(&mut tx, REBUILD_CHECKPOINT, last).await?;
    tx.commit().await?;
    Ok(events)
}

/// Creates empty shadow tables with the live tables' definitions (columns,
/// keys, and foreign keys pointing at the other shadow tables).
async fn create_shadow_tables(conn: &mut MySqlConnection) -> Result<(), sqlx::Error> {
    for table in LIVE.iter().rev() {
        sqlx::query(&format!("DROP TABLE IF EXISTS `{table}{SHADOW}`")).execute(&mut *conn).await?;
    }
    let generation = chrono::Utc::now().timestamp_millis();
    for table in LIVE {
        let (_, ddl): (String, String) = sqlx::query_as(&format!("SHOW CREATE TABLE `{table}`")).fetch_one(&mut *conn).await?;
        sqlx::query(&shadow_ddl(&ddl, generation)).execute(&mut *conn).await?;
    }
    Ok(())
}

/// Rewrites a live table's DDL for its shadow: table names get the shadow
/// suffix, constraint names (unique per schema) a new generation suffix.
fn shadow_ddl(ddl: &str, generation: i64) -> String {
    let mut out = ddl.to_owned();
    for table in LIVE {
        out = out.replace(&format!("`{table}`"), &format!("`{table}{SHADOW}`"));
    }
    let mut result = String::with_capacity(out.len() + 64);
    let mut rest = out.as_str();
    const MARK: &str = "CONSTRAINT `";
    while let Some(at) = rest.find(MARK) {
        let (before, after) = rest.split_at(at + MARK.len());
        result.push_str(before);
        let end = after.find('`').unwrap_or(after.len());
        let name = &after[..end];
        let base = name.split("__g").next().unwrap_or(name);
        result.push_str(&format!("{base}__g{generation}"));
        rest = &after[end..];
    }
    result.push_str(rest);
    result
}

/// Swaps shadow and live tables in one statement and moves the live checkpoint.
async fn swap(conn: &mut MySqlConnection, position: u64) -> Result<(), ProjectionError> {
    for table in LIVE.iter().rev() {
        sqlx::query(&format!("DROP TABLE IF EXISTS `{table}{OLD}`")).execute(&mut *conn).await?;
    }
    let renames: Vec<String> = LIVE.iter().flat_map(|t| [format!("`{t}` TO `{t}{OLD}`"), format!("`{t}{SHADOW}` TO `{t}`")]).collect();
    sqlx::query(&format!("RENAME TABLE {}", renames.join(", "))).execute(&mut *conn).await?;
    save_checkpoint(conn, CHECKPOINT, position).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shadow_ddl_renames_tables_and_constraints() {
        let ddl = "CREATE TABLE `MESSAGES` (\n  `id` char(36),\n  CONSTRAINT `fk_messages_conversation__g5` FOREIGN KEY (`conversation_id`) REFERENCES `CONVERSATIONS` (`id`)\n)";
        let shadow = shadow_ddl(ddl, 9);
        assert!(shadow.starts_with("CREATE TABLE `MESSAGES__rebuild`"));
        assert!(shadow.contains("CONSTRAINT `fk_messages_conversation__g9`"));
        assert!(shadow.contains("REFERENCES `CONVERSATIONS__rebuild`"));
    }
}
