//! Folds one event into a conversation's state.

use super::{Conversation, ConversationDetails, ConversationEvent, MessageState, Participant, ReactionState, ReadMark};
use crate::domain::values::Role;

/// Applies `event` to `state`. Events are facts: this never fails, and an
/// event that does not fit the state (which `decide` never produces) is
/// still counted in the version.
pub fn evolve(mut state: Conversation, event: &ConversationEvent) -> Conversation {
    use ConversationEvent::*;
    state.version += 1;
    let version = state.version;
    if let ConversationCreated { conversation_id, kind, name, posting_id, created_by, participants } = event {
        state.details = Some(ConversationDetails {
            id: *conversation_id,
            kind: *kind,
            name: name.clone(),
            posting_id: *posting_id,
            created_by: *created_by,
            archived: false,
            participants: participants.iter().map(|p| (p.user_id, Participant::new(p.role))).collect(),
            messages: Default::default(),
            message_count: 0,
        });
        return state;
    }
    let Some(c) = state.details.as_mut() else {
        return state;
    };
    match event {
        ConversationCreated { .. } => {}
        ConversationRenamed { name, .. } => c.name = Some(name.clone()),
        ConversationArchived { .. } => c.archived = true,
        ConversationUnarchived { .. } => c.archived = false,
        ParticipantAdded { user_id, role, .. } => {
            c.participants.insert(*user_id, Participant::new(*role));
        }
        ParticipantRemoved { user_id, .. } => {
            c.participants.remove(user_id);
        }
        ParticipantRoleChanged { user_id, role, .. } => {
            if let Some(p) = c.participants.get_mut(user_id) {
                p.role = *role;
            }
        }
        OwnershipTransferred { previous_owner, new_owner, .. } => {
            if let Some(p) = c.participants.get_mut(previous_owner) {
                p.role = Role::Admin;
            }
            if let Some(p) = c.participants.get_mut(new_owner) {
                p.role = Role::Owner;
            }
        }
        ParticipantSettingsChanged { user_id, is_muted, notifications_enabled, .. } => {
            if let Some(p) = c.participants.get_mut(user_id) {
                p.is_muted = *is_muted;
                p.notifications_enabled = *notifications_enabled;
            }
        }
        MessageSent { message_id, sender_id, seq, message_type, .. } => {
            c.message_count = c.message_count.max(*seq);
            c.messages.insert(
                *message_id,
                MessageState {
                    seq: *seq,
                    sender_id: *sender_id,
                    message_type: *message_type,
                    deleted: false,
                    reactions: Default::default(),
                },
            );
        }
        MessageEdited { .. } => {}
        MessageDeleted { message_id, .. } => {
            if let Some(m) = c.messages.get_mut(message_id) {
                m.deleted = true;
            }
        }
        ReactionAdded { message_id, reaction_id, user_id, emoji, .. } => {
            if let Some(m) = c.messages.get_mut(message_id) {
                let reaction = ReactionState { reaction_id: *reaction_id, added_at_version: version };
                m.reactions.insert((*user_id, emoji.clone()), reaction);
            }
        }
        ReactionRemoved { message_id, user_id, emoji, .. } => {
            if let Some(m) = c.messages.get_mut(message_id) {
                m.reactions.remove(&(*user_id, emoji.clone()));
            }
        }
        MessagesRead { user_id, message_id, .. } => {
            let seq = c.messages.get(message_id).map(|m| m.seq);
            if let (Some(p), Some(seq)) = (c.participants.get_mut(user_id), seq) {
                p.read_mark = Some(ReadMark { message_id: *message_id, seq, set_at_version: version });
            }
        }
    }
    state
}
