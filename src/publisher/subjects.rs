//! Subjects and headers of published events (documented in ARCHITECTURE.md).

use crate::event_store::StoredEvent;

/// Header: the event's global position in the log.
pub const HEADER_POSITION: &str = "Chat-Position";
/// Header: the event type (`MessageSent`).
pub const HEADER_EVENT_TYPE: &str = "Chat-Event-Type";
/// Header: the schema version of the event's data.
pub const HEADER_SCHEMA_VERSION: &str = "Chat-Schema-Version";

/// `<prefix>.<stream type>.<stream id>.<event type>`, e.g.
/// `chat.events.conversation.0193a...e1.MessageSent`.
pub fn subject_for(prefix: &str, event: &StoredEvent) -> String {
    format!("{prefix}.{}.{}.{}", event.stream_type, event.stream_id, event.event_type)
}
