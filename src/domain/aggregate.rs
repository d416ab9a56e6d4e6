//! The shape every aggregate shares, so the command pipeline and the event
//! store can handle them generically.

use serde::{de::DeserializeOwned, Serialize};

use super::DomainError;

/// An event type as the event store needs to see it: a name, a schema version
/// and a serde representation (`{"type": ..., "data": ...}`).
pub trait EventPayload: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {
    /// The PascalCase past-tense name stored in the log (`MessageSent`).
    fn event_type(&self) -> &'static str;
    /// The schema version of this event's `data`; bumped when its shape changes.
    fn schema_version(&self) -> u16 {
        1
    }
}

/// An event-sourced aggregate: state rebuilt by folding its events, commands
/// decided against that state.
pub trait Aggregate: Send + Sync + 'static {
    /// Stream type in the event log and in NATS subjects (`conversation`).
    const STREAM_TYPE: &'static str;
    type Command: Send + Sync;
    type Event: EventPayload;
    type State: Default + Clone + Send + Sync + 'static;

    /// Validates `command` against `state` and answers with the events it
    /// causes; an empty list means the command changes nothing.
    fn decide(command: &Self::Command, state: &Self::State) -> Result<Vec<Self::Event>, DomainError>;

    /// Folds one event into the state.
    fn evolve(state: Self::State, event: &Self::Event) -> Self::State;

    /// Directory entries `event` refers to, which must exist.
    fn references(_event: &Self::Event) -> Vec<Reference> {
        Vec::new()
    }
}

/// Something an event refers to that must exist in the directory; checked
/// after the aggregate's own rules, so a missing reference answers 422 last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reference {
    User { field: &'static str, id: super::UserId },
    Posting { field: &'static str, id: super::PostingId },
}
