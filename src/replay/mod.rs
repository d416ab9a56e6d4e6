//! Replay of the event log for analytics consumers: NDJSON in position order,
//! with filters, streamed in constant memory, optionally following new events.
//! Served by `GET /api/v1/events` and written by `chat events export`.

mod export;
mod filter;
mod stream;

pub use export::{export, ExportReport};
pub use filter::{known_event_types, EventFilter};
pub use stream::{ndjson, Follow};
