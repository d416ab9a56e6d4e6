//! Read-model projectors: one per table of schema.md, each a mapping from
//! events to SQL. They run together, in one transaction per batch of events
//! with the checkpoint, in dependency order (users, postings, conversations,
//! messages, reactions, participants), so foreign keys always hold and a
//! projector that reads another table (unread counts read MESSAGES) sees it
//! at exactly the same position.
//!
//! Each projector folds a batch in memory first (`Batch::fold`, no I/O):
//! rows created in the batch are kept and changed there, then inserted once;
//! the hot updates to rows of earlier batches (last message times, unread
//! counters) are coalesced into a few set-based statements; other changes to
//! earlier rows become one statement each, run in event order before the
//! inserts. The result does not depend on where batches start and end, which
//! is what makes a rebuild (a few huge batches) equal to the live tables (many
//! small ones).

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

/// Every projector's changes for a run of consecutive events: `fold` them in
/// position order (in memory, no I/O), then `flush` once, inside a
/// transaction the caller commits with the checkpoint. The live worker folds
/// a batch of a few thousand events; a rebuild folds up to millions, so that
/// almost every row is written once, complete, by a bulk insert.
#[derive(Default)]
pub struct Batch {
    users: users::Batch,
    postings: postings::Batch,
    conversations: conversations::Batch,
    messages: messages::Batch,
    reactions: reactions::Batch,
    participants: participants::Batch,
    events: usize,
    last_position: Option<u64>,
}

impl Batch {
    /// Adds one event (the next in position order) to every projector's changes.
    pub fn fold(&mut self, event: &ProjectedEvent) {
        self.users.fold(event);
        self.postings.fold(event);
        self.conversations.fold(event);
        self.messages.fold(event);
        self.reactions.fold(event);
        self.participants.fold(event);
        self.events += 1;
        self.last_position = Some(event.position);
    }

    /// Events folded so far.
    pub fn len(&self) -> usize {
        self.events
    }

    pub fn is_empty(&self) -> bool {
        self.events == 0
    }

    /// The position of the last event folded.
    pub fn last_position(&self) -> Option<u64> {
        self.last_position
    }

    /// Writes the changes to every table, in foreign-key order.
    pub async fn flush(self, conn: &mut MySqlConnection, tables: &Tables) -> Result<(), ProjectionError> {
        let started = std::time::Instant::now();
        let events = self.events;
        self.users.flush(conn, tables).await?;
        self.postings.flush(conn, tables).await?;
        let directory = started.elapsed();
        self.conversations.flush(conn, tables).await?;
        let conversations = started.elapsed();
        self.messages.flush(conn, tables).await?;
        let messages = started.elapsed();
        self.reactions.flush(conn, tables).await?;
        let reactions = started.elapsed();
        self.participants.flush(conn, tables).await?;
        let participants = started.elapsed();
        tracing::debug!(
            events,
            ?directory,
            conversations = ?(conversations - directory),
            messages = ?(messages - conversations),
            reactions = ?(reactions - messages),
            participants = ?(participants - reactions),
            "batch applied"
        );
        Ok(())
    }
}

/// Applies `events` (in position order) to every read model, on a connection
/// inside a transaction the caller commits with the checkpoint.
pub async fn apply_batch(conn: &mut MySqlConnection, tables: &Tables, events: &[ProjectedEvent]) -> Result<(), ProjectionError> {
    let mut batch = Batch::default();
    for event in events {
        batch.fold(event);
    }
    batch.flush(conn, tables).await
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
