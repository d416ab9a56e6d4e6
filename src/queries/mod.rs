//! The read side's queries: SQL over the read-model tables, answered in the
//! shapes of the original system's key queries (schema.md) and API.md.

pub mod cache;
pub mod conversations;
pub mod messages;
pub mod progress;

pub use cache::ReadCache;
pub use conversations::{ConversationItem, ParticipantItem};
pub use messages::{MessageItem, ReactionItem};
pub use progress::ProjectionProgress;
