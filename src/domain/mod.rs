//! The chat domain: aggregates as pure functions, with no I/O and no async.
//!
//! Each aggregate has a command type, an event type, a state, a `decide`
//! function that validates a command against the state and answers with the
//! events it causes, and an `evolve` function that folds an event into the
//! state. Adapters (event store, HTTP, NATS) depend on this module, never the
//! other way round.

pub mod aggregate;
pub mod conversation;
pub mod error;
pub mod ids;
pub mod posting;
pub mod schema;
pub mod upcasting;
pub mod user;
pub mod values;

pub use aggregate::{Aggregate, EventPayload, Reference};
pub use error::{DomainError, FieldError};
pub use ids::{ConversationId, MessageId, PostingId, ReactionId, UserId};
