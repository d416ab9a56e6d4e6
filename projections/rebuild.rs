//! `chat projections rebuild`: rebuilds every read model from the event log
//! while the API stays up. Builds fresh shadow tables (same definitions as the
//! live ones, but only their primary keys at first), folds the whole log into
//! them in huge batches (each written with its checkpoint, mostly by bulk
//! inserts), adds the secondary and foreign keys (sorted index builds), then,
//! holding the apply lock, catches up with the last events and swaps the
//! shadow tables in with one atomic RENAME TABLE.

use std::time::{Duration, Instant};

use sqlx::{MySqlConnection, MySqlPool};

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
/// The table that holds most rows of any history.
const MESSAGES: &str = "MESSAGES";

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
    let mut conn = shadow_connection(pool).await?;
    let shadow = Tables::with_suffix(SHADOW);
    let mut incomplete = Some(create_shadow_tables(&mut conn).await?);

    let mut position = 0;
    let mut events = 0;
    loop {
        let head = reader.head().await?;
        let applied = apply_from_log(pool, &reader, &shadow, position, head, &mut incomplete, &mut progress).await?;
        events += applied.0;
        position = applied.1;
        if position >= head {
            break;
        }
    }
    if let Some(definitions) = incomplete.take() {
        complete_shadow_tables(pool, &definitions).await?;
    }
    tracing::debug!(elapsed = ?started.elapsed(), "rebuild: shadow tables complete");

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
            let applied = apply_from_log(pool, &reader, &shadow, position, head, &mut None, &mut progress).await?;
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
/// each chunk read; answers (events applied, new position). The first batch
/// written to `incomplete` tables completes their definitions: later batches
/// change rows through their keys. The log is read and decoded one chunk
/// ahead of the fold, so the database reads while this process decodes.
async fn apply_from_log(
    pool: &MySqlPool,
    reader: &EventReader,
    tables: &Tables,
    mut position: u64,
    head: u64,
    incomplete: &mut Option<Vec<ShadowDdl>>,
    progress: &mut impl FnMut(u64, u64),
) -> Result<(u64, u64), ProjectionError> {
    let (chunks, mut received) = tokio::sync::mpsc::channel(2);
    let read_ahead = tokio::spawn(read_chunks(reader.clone(), position, head, chunks));
    let mut applied = 0;
    let mut batch = Batch::default();
    while let Some(chunk) = received.recv().await {
        for event in &chunk? {
            batch.fold(event);
            position = event.position;
        }
        if batch.len() >= REBUILD_BATCH {
            applied += write(pool, tables, std::mem::take(&mut batch), incomplete).await?;
        }
        progress(position, head);
    }
    read_ahead.abort();
    applied += write(pool, tables, batch, incomplete).await?;
    Ok((applied, position))
}

/// Reads and decodes the log from `position` up to `head` in chunks.
async fn read_chunks(
    reader: EventReader,
    mut position: u64,
    head: u64,
    chunks: tokio::sync::mpsc::Sender<Result<Vec<ProjectedEvent>, ProjectionError>>,
) {
    while position < head {
        let decoded = match reader.events_after_without_metadata(position, READ_CHUNK).await {
            Ok(stored) if stored.is_empty() => return,
            Ok(stored) => stored.iter().map(ProjectedEvent::from_stored).collect::<Result<Vec<_>, _>>(),
            Err(e) => Err(e.into()),
        };
        let failed = decoded.is_err();
        if let Ok(events) = &decoded {
            position = events.last().map_or(head, |e| e.position);
        }
        if chunks.send(decoded).await.is_err() || failed {
            return;
        }
    }
}

/// Writes a folded batch, then the rebuild's checkpoint; answers its events.
/// No transaction encloses it: the shadow tables are read by nobody until the
/// swap, and a rebuild that fails is started again from nothing. Tables that
/// are still `incomplete` get their keys as soon as their rows are in.
async fn write(pool: &MySqlPool, tables: &Tables, batch: Batch, incomplete: &mut Option<Vec<ShadowDdl>>) -> Result<u64, ProjectionError> {
    let Some(last) = batch.last_position() else {
        return Ok(0);
    };
    let events = batch.len() as u64;
    let started = Instant::now();
    match incomplete.take() {
        Some(definitions) if !batch.participants.reads_messages() => write_and_complete(pool, tables, batch, &definitions).await?,
        definitions => {
            let mut conn = shadow_connection(pool).await?;
            batch.flush(&mut conn, tables).await?;
            if let Some(definitions) = definitions {
                complete_shadow_tables(pool, &definitions).await?;
            }
        }
    }
    save_checkpoint(&mut *pool.acquire().await?, REBUILD_CHECKPOINT, last).await?;
    tracing::debug!(events, elapsed = ?started.elapsed(), "rebuild: batch written");
    Ok(events)
}

/// The first batch, into tables with primary keys only, on two connections:
/// each inserts half of the MESSAGES rows (the bulk of any history); then one
/// builds MESSAGES' keys while the other writes the remaining tables and
/// builds theirs; the foreign keys last.
async fn write_and_complete(pool: &MySqlPool, tables: &Tables, batch: Batch, definitions: &[ShadowDdl]) -> Result<(), ProjectionError> {
    let Batch { users, postings, conversations, mut messages, reactions, participants, .. } = batch;
    let later_messages = messages.split_off_half();
    let (messages_ddl, others_ddl): (Vec<&ShadowDdl>, Vec<&ShadowDdl>) = definitions.iter().partition(|d| d.table == MESSAGES);
    let (later_written, later_done) = tokio::sync::oneshot::channel::<()>();
    let messages_lane = async {
        let mut conn = shadow_connection(pool).await?;
        messages.flush(&mut conn, tables).await?;
        // The other half must be in before the keys are built.
        let _ = later_done.await;
        add_keys(&mut conn, &messages_ddl).await?;
        Ok::<_, ProjectionError>(())
    };
    let others_lane = async {
        let mut conn = shadow_connection(pool).await?;
        let written = async {
            if let Some(later) = later_messages {
                later.flush(&mut conn, tables).await?;
            }
            Ok::<_, sqlx::Error>(())
        }
        .await;
        drop(later_written);
        written?;
        users.flush(&mut conn, tables).await?;
        postings.flush(&mut conn, tables).await?;
        conversations.flush(&mut conn, tables).await?;
        reactions.flush(&mut conn, tables).await?;
        participants.flush(&mut conn, tables).await?;
        add_keys(&mut conn, &others_ddl).await?;
        Ok(())
    };
    tokio::try_join!(messages_lane, others_lane)?;
    add_foreign_keys(pool, definitions).await?;
    Ok(())
}

/// A connection for writing shadow tables. They are filled from a consistent
/// log in an order that keeps their references valid, so checking each
/// inserted row's foreign keys again only costs time.
async fn shadow_connection(pool: &MySqlPool) -> Result<MySqlConnection, sqlx::Error> {
    let mut conn = pool.acquire().await?.detach();
    sqlx::query("SET SESSION foreign_key_checks = 0").execute(&mut conn).await?;
    Ok(conn)
}

/// A shadow table's definition, split so that its secondary keys and foreign
/// keys are added after the bulk load: InnoDB builds an index from sorted
/// rows far faster than it maintains it through a million random inserts.
#[derive(Debug, PartialEq)]
struct ShadowDdl {
    /// The live table's name.
    table: &'static str,
    /// `CREATE TABLE` with the columns and the primary key.
    create: String,
    /// `ALTER TABLE ... ADD KEY ...`, if the table has secondary keys.
    add_keys: Option<String>,
    /// `ALTER TABLE ... ADD CONSTRAINT ... FOREIGN KEY ...`, if it has foreign keys.
    add_foreign_keys: Option<String>,
}

/// Creates empty shadow tables with the live tables' columns and primary
/// keys; answers the statements that add the rest of their definitions.
async fn create_shadow_tables(conn: &mut MySqlConnection) -> Result<Vec<ShadowDdl>, sqlx::Error> {
    for table in LIVE.iter().rev() {
        sqlx::query(&format!("DROP TABLE IF EXISTS `{table}{SHADOW}`")).execute(&mut *conn).await?;
    }
    let generation = chrono::Utc::now().timestamp_millis();
    let mut definitions = Vec::new();
    for table in LIVE {
        let (_, ddl): (String, String) = sqlx::query_as(&format!("SHOW CREATE TABLE `{table}`")).fetch_one(&mut *conn).await?;
        let shadow = split_ddl(table, &shadow_ddl(&ddl, generation));
        sqlx::query(&shadow.create).execute(&mut *conn).await?;
        definitions.push(shadow);
    }
    Ok(definitions)
}

/// Adds the secondary keys, then the foreign keys (their indexes exist by then).
async fn complete_shadow_tables(pool: &MySqlPool, definitions: &[ShadowDdl]) -> Result<(), sqlx::Error> {
    let mut conn = shadow_connection(pool).await?;
    add_keys(&mut conn, &definitions.iter().collect::<Vec<_>>()).await?;
    add_foreign_keys(pool, definitions).await
}

/// Adds the secondary keys of `definitions` (InnoDB sorts the rows and builds
/// each index bottom-up).
async fn add_keys(conn: &mut MySqlConnection, definitions: &[&ShadowDdl]) -> Result<(), sqlx::Error> {
    for statement in definitions.iter().filter_map(|d| d.add_keys.as_ref()) {
        sqlx::query(statement).execute(&mut *conn).await?;
    }
    Ok(())
}

async fn add_foreign_keys(pool: &MySqlPool, definitions: &[ShadowDdl]) -> Result<(), sqlx::Error> {
    let mut conn = shadow_connection(pool).await?;
    for statement in definitions.iter().filter_map(|d| d.add_foreign_keys.as_ref()) {
        sqlx::query(statement).execute(&mut conn).await?;
    }
    Ok(())
}

/// Splits `SHOW CREATE TABLE` output (one definition per line) into the
/// table with its primary key, its secondary keys and its foreign keys.
fn split_ddl(table: &'static str, ddl: &str) -> ShadowDdl {
    let mut kept = Vec::new();
    let mut keys = Vec::new();
    let mut foreign_keys = Vec::new();
    for line in ddl.lines() {
        let definition = line.trim().trim_end_matches(',');
        if definition.starts_with("KEY ") || definition.starts_with("UNIQUE KEY ") {
            keys.push(format!("ADD {definition}"));
        } else if definition.starts_with("CONSTRAINT ") && definition.contains(" FOREIGN KEY ") {
            foreign_keys.push(format!("ADD {definition}"));
        } else {
            kept.push(line.to_owned());
        }
    }
    // The last definition before the closing parenthesis loses its comma.
    if let Some(close) = kept.iter().rposition(|l| l.starts_with(')')) {
        if let Some(last) = close.checked_sub(1).and_then(|i| kept.get_mut(i)) {
            if let Some(stripped) = last.strip_suffix(',') {
                *last = stripped.to_owned();
            }
        }
    }
    let alter = |parts: Vec<String>| (!parts.is_empty()).then(|| format!("ALTER TABLE `{table}{SHADOW}` {}", parts.join(", ")));
    ShadowDdl { table, create: kept.join("\n"), add_keys: alter(keys), add_foreign_keys: alter(foreign_keys) }
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
    fn split_ddl_defers_secondary_and_foreign_keys() {
        let ddl = "CREATE TABLE `M` (\n  `id` char(36) NOT NULL,\n  `c` char(36) NOT NULL CHECK (json_valid(`c`)),\n  PRIMARY KEY (`id`),\n  \
                   UNIQUE KEY `uq` (`c`,`id`),\n  KEY `ix` (`c`),\n  CONSTRAINT `fk` FOREIGN KEY (`c`) REFERENCES `C` (`id`) ON DELETE CASCADE\n) ENGINE=InnoDB";
        let split = split_ddl("M", ddl);
        assert_eq!(split.create, "CREATE TABLE `M` (\n  `id` char(36) NOT NULL,\n  `c` char(36) NOT NULL CHECK (json_valid(`c`)),\n  PRIMARY KEY (`id`)\n) ENGINE=InnoDB");
        assert_eq!(split.add_keys.as_deref(), Some("ALTER TABLE `M__rebuild` ADD UNIQUE KEY `uq` (`c`,`id`), ADD KEY `ix` (`c`)"));
        assert_eq!(
            split.add_foreign_keys.as_deref(),
            Some("ALTER TABLE `M__rebuild` ADD CONSTRAINT `fk` FOREIGN KEY (`c`) REFERENCES `C` (`id`) ON DELETE CASCADE")
        );
        assert_eq!(split_ddl("P", "CREATE TABLE `P` (\n  `id` int,\n  PRIMARY KEY (`id`)\n)").add_keys, None);
    }

    #[test]
    fn shadow_ddl_renames_tables_and_constraints() {
        let ddl = "CREATE TABLE `MESSAGES` (\n  `id` char(36),\n  CONSTRAINT `fk_messages_conversation__g5` FOREIGN KEY (`conversation_id`) REFERENCES `CONVERSATIONS` (`id`)\n)";
        let shadow = shadow_ddl(ddl, 9);
        assert!(shadow.starts_with("CREATE TABLE `MESSAGES__rebuild`"));
        assert!(shadow.contains("CONSTRAINT `fk_messages_conversation__g9`"));
        assert!(shadow.contains("REFERENCES `CONVERSATIONS__rebuild`"));
    }
}
