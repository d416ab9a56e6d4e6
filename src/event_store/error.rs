//! Event store failures.

use std::sync::Arc;

/// A read from the event log failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("stored event at position {position} could not be upcast: {reason}")]
    Upcast { position: u64, reason: String },
    #[error("stored event {event_type} v{schema_version} at {stream} could not be decoded: {source}")]
    Decode { stream: String, event_type: String, schema_version: u16, source: serde_json::Error },
}

/// Why an append was not committed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AppendError {
    /// The stream moved on since the state the command was decided on.
    #[error("stream {0} is not at the expected version")]
    VersionConflict(String),
    /// A unique lookup key (e.g. a DIRECT pair) belongs to another stream.
    #[error("lookup {kind}:{key} already belongs to stream {existing_stream_id}")]
    LookupTaken { kind: &'static str, key: String, existing_stream_id: String },
    /// The batch transaction failed; nothing of it was committed (or, if the
    /// connection died during COMMIT, the outcome is unknown).
    #[error("database error: {0}")]
    Database(Arc<sqlx::Error>),
    /// The appender has stopped (shutdown).
    #[error("the event store is shutting down")]
    Closed,
}
