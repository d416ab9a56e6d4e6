//! Which cached answers an event makes stale: a pure mapping from an event
//! of the log to the dependencies it changes.

use crate::domain::conversation::ConversationEvent;
use crate::domain::ConversationId;
use crate::event_store::StoredEvent;

use super::Dependency;

/// What one event changes in the read models, as the cache sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Touched {
    /// Nothing any cached answer shows (postings).
    Nothing,
    /// Something every answer may show (a user's name), or an event this
    /// mapping cannot read: every answer is stale.
    Everything,
    /// These parts only.
    Parts(Vec<Dependency>),
}

/// The parts of the read models `event` changes. Errs on the safe side: an
/// event it cannot decode touches everything.
pub fn touched(event: &StoredEvent) -> Touched {
    match event.stream_type.as_str() {
        "posting" => Touched::Nothing,
        "conversation" => conversation_touched(event),
        _ => Touched::Everything,
    }
}

fn conversation_touched(event: &StoredEvent) -> Touched {
    let Ok(conversation) = event.stream_id.parse::<uuid::Uuid>().map(ConversationId) else { return Touched::Everything };
    let mut parts = vec![Dependency::Conversation(conversation)];
    // Only these change who is a member; the others need no decoding.
    if matches!(event.event_type.as_str(), "ConversationCreated" | "ParticipantAdded" | "ParticipantRemoved") {
        parts.push(Dependency::Members(conversation));
        match event.decode::<ConversationEvent>() {
            Ok(ConversationEvent::ConversationCreated { participants, .. }) => {
                parts.extend(participants.iter().map(|p| Dependency::Memberships(p.user_id)));
            }
            Ok(ConversationEvent::ParticipantAdded { user_id, .. } | ConversationEvent::ParticipantRemoved { user_id, .. }) => {
                parts.push(Dependency::Memberships(user_id));
            }
            _ => return Touched::Everything,
        }
    }
    Touched::Parts(parts)
}
