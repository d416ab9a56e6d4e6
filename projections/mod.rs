//! Read-model projectors: one per table of schema.md, each a mapping from
//! events to SQL. They run together, in one transaction per batch of events
//! with the checkpoint, in dependency order (users, postings, conversations,
//! messages, reactions, participants), so foreign keys always hold and a
//! projector that reads another table (unread counts read MESSAGES) sees it
//! at exactly the same position.
//!
//! Within a batch each projector keeps the rows it creates in memory until
//! the end of the batch, and coalesces the hot updates (last message times,
//! unread counters) into a few set-based statements; rows from earlier
//! batches are changed by one statement per event. The result does not depend
//! on where batches start and end, which is what makes a rebuild equal to the
//! live tables.

mod conversations;
mod event;
mod messages;
mod participants;
mod postings;
mod reactions;
pub mod rebuild;
mod sql;
mod tables;
mod users;
pub mod worker;

use sqlx::MySqlConnection;

pub use event::{ProjectedEvent, ProjectionEvent};
pub use tables::Tables;

/// The name of the read models' checkpoint row in `projection_checkpoints`.
pub const CHECKPOINT: &str = "read_models";

/// Why a batch could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("event store: {0}")]
    Store(#[from] crate::event_store::StoreError),
    #[error("event at position {position} cannot be decoded: {reason}")]
    Decode { position: u64, reason: String },
}

/// Applies `events` (in position order) to every read model, on a connection
/// inside a transaction the caller commits with the checkpoint.
pub async fn apply_batch(conn: &mut MySqlConnection, tables: &Tables, events: &[ProjectedEvent]) -> Result<(), ProjectionError> {
    let started = std::time::Instant::now();
    users::project(conn, tables, events).await?;
    postings::project(conn, tables, events).await?;
    let directory = started.elapsed();
    conversations::project(conn, tables, events).await?;
    let conversations = started.elapsed();
    messages::project(conn, tables, events).await?;
    let messages = started.elapsed();
    reactions::project(conn, tables, events).await?;
    let reactions = started.elapsed();
    participants::project(conn, tables, events).await?;
    let participants = started.elapsed();
    tracing::debug!(
        events = events.len(),
        ?directory,
        conversations = ?(conversations - directory),
        messages = ?(messages - conversations),
        reactions = ?(reactions - messages),
        participants = ?(participants - reactions),
        "batch applied"
    );
    Ok(())
}

/// Moves the checkpoint (in the caller's transaction).
pub async fn save_checkpoint(conn: &mut MySqlConnection, name: &str, position: u64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO projection_checkpoints (name, position, updated_at) VALUES (?, ?, NOW(6)) \
         ON DUPLICATE KEY UPDATE position = VALUES(position), updated_at = VALUES(updated_at)",
    )
    .bind(name)
    .bind(position)
    .execute(conn)
    .await?;
    Ok(())
}

/// The position the read models have applied (0 before any).
pub async fn checkpoint(conn: &mut MySqlConnection, name: &str) -> Result<u64, sqlx::Error> {
    let position: Option<u64> =
        sqlx::query_scalar("SELECT position FROM projection_checkpoints WHERE name = ?").bind(name).fetch_optional(conn).await?;
    Ok(position.unwrap_or(0))
}
