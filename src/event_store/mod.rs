//! The event log in MySQL: append-only, one global position strictly
//! increasing in commit order, one version per stream with optimistic
//! concurrency, and group commit (many appends share one transaction).

mod appender;
mod envelope;
mod error;
mod reader;

pub use appender::{AppendRequest, Appended, Appender, IdempotencyCompletion, Lookup};
pub use envelope::{decode_payload, write_event_json, EventColumns, EventMetadata, NewEvent, StoredEvent, StreamRef};
pub use error::{AppendError, StoreError};
pub use reader::{EventReader, EVENT_COLUMNS};
