//! Why a command did not go through, as the application layer sees it.

use crate::domain::DomainError;
use crate::event_store::{AppendError, StoreError};

/// A command's failure: refused by the rules, or the infrastructure failed.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error(transparent)]
    Domain(#[from] DomainError),
    /// The stream stayed contended through every retry.
    #[error("too much contention on {0}; try again")]
    Contended(String),
    /// The database or the appender is not available.
    #[error("event store unavailable: {0}")]
    Unavailable(String),
    /// A stored event could not be read back: a bug or a corrupted log.
    #[error("event store corrupt: {0}")]
    Corrupt(String),
}

impl From<StoreError> for CommandError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Database(e) => CommandError::Unavailable(e.to_string()),
            e @ (StoreError::Decode { .. } | StoreError::Upcast { .. }) => CommandError::Corrupt(e.to_string()),
        }
    }
}

impl From<AppendError> for CommandError {
    fn from(error: AppendError) -> Self {
        CommandError::Unavailable(error.to_string())
    }
}
