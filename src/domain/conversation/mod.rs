//! The conversation aggregate: membership, roles, archive state, messages,
//! reactions and read marks. One event stream per conversation.

mod command;
mod decide;
mod event;
mod evolve;
#[cfg(test)]
pub(crate) mod properties;
mod state;
#[cfg(test)]
mod tests;

pub use command::*;
pub use decide::{decide, existing_reaction, version_answering_noop};
pub use event::*;
pub use evolve::evolve;
pub use state::*;

use super::{Aggregate, DomainError, Reference};

/// Marker type tying the conversation's command, event and state together.
pub struct ConversationAggregate;

impl Aggregate for ConversationAggregate {
    const STREAM_TYPE: &'static str = "conversation";
    type Command = ConversationCommand;
    type Event = ConversationEvent;
    type State = Conversation;

    fn decide(command: &Self::Command, state: &Self::State) -> Result<Vec<Self::Event>, DomainError> {
        decide(command, state)
    }

    fn evolve(state: Self::State, event: &Self::Event) -> Self::State {
        evolve(state, event)
    }

    fn references(event: &Self::Event) -> Vec<Reference> {
        event.references()
    }
}
