//! The rules of a conversation. Checks run in API.md's order of precedence:
//! not found (404), then role (403), then state (409), then references (422).

use super::{
    Conversation, ConversationCommand, ConversationDetails, ConversationEvent, CreateConversation, InitialParticipant, MessageState,
    Participant, ReactionState,
};
use crate::domain::values::{check_edited_content, ConversationType, Role, MAX_PARTICIPANTS};
use crate::domain::{DomainError, MessageId, ReactionId};

type Decision = Result<Vec<ConversationEvent>, DomainError>;

/// Decides what `command` does to the conversation in `state`.
pub fn decide(command: &ConversationCommand, state: &Conversation) -> Decision {
    use ConversationCommand::*;
    if let Create(create) = command {
        return decide_create(create, state);
    }
    let c = state.details.as_ref().ok_or(DomainError::NotFound("conversation"))?;
    let actor = c.participant(command.actor()).ok_or(DomainError::NotFound("conversation"))?;
    let id = c.id;
    match command {
        Create(create) => decide_create(create, state),
        Rename { by, name } => {
            require_manager(actor)?;
            require_group(c, "a DIRECT conversation cannot be renamed")?;
            require_active(c)?;
            if c.name.as_deref() == Some(name.as_str()) {
                return Ok(vec![]);
            }
            Ok(vec![ConversationEvent::ConversationRenamed { conversation_id: id, name: name.as_str().to_owned(), renamed_by: *by }])
        }
        Archive { by } => {
            require_archiver(c, actor)?;
            require_active(c)?;
            Ok(vec![ConversationEvent::ConversationArchived { conversation_id: id, archived_by: *by }])
        }
        Unarchive { by } => {
            require_archiver(c, actor)?;
            if !c.archived {
                return Err(DomainError::Conflict("the conversation is not archived"));
            }
            Ok(vec![ConversationEvent::ConversationUnarchived { conversation_id: id, unarchived_by: *by }])
        }
        AddParticipant { by, user_id, role } => {
            require_manager(actor)?;
            require_group(c, "a DIRECT conversation has fixed membership")?;
            require_active(c)?;
            if *role == Role::Owner {
                return Err(DomainError::invalid("role", "must be ADMIN or MEMBER"));
            }
            if c.participants.contains_key(user_id) {
                return Err(DomainError::Conflict("the user is already a participant"));
            }
            if c.participants.len() >= MAX_PARTICIPANTS {
                return Err(DomainError::Conflict("the conversation has the maximum number of participants"));
            }
            Ok(vec![ConversationEvent::ParticipantAdded { conversation_id: id, user_id: *user_id, role: *role, added_by: *by }])
        }
        RemoveParticipant { by, user_id } => {
            let target = c.participant(*user_id).ok_or(DomainError::NotFound("participant"))?;
            let leaving = by == user_id;
            if !leaving {
                require_manager(actor)?;
            }
            require_group(c, "a DIRECT conversation has fixed membership")?;
            if target.role == Role::Owner {
                return Err(DomainError::Conflict("the OWNER cannot be removed or leave; transfer ownership first"));
            }
            if !leaving {
                require_active(c)?;
            }
            Ok(vec![ConversationEvent::ParticipantRemoved { conversation_id: id, user_id: *user_id, removed_by: *by }])
        }
        ChangeRole { by, user_id, role } => {
            let target = c.participant(*user_id).ok_or(DomainError::NotFound("participant"))?;
            if actor.role != Role::Owner {
                return Err(DomainError::Forbidden("only the OWNER can change roles"));
            }
            require_group(c, "roles in a DIRECT conversation are fixed")?;
            require_active(c)?;
            if target.role == *role {
                return Ok(vec![]);
            }
            if target.role == Role::Owner {
                return Err(DomainError::Conflict("the OWNER keeps the role until ownership is transferred"));
            }
            if *role == Role::Owner {
                return Ok(vec![ConversationEvent::OwnershipTransferred { conversation_id: id, previous_owner: *by, new_owner: *user_id }]);
            }
            Ok(vec![ConversationEvent::ParticipantRoleChanged { conversation_id: id, user_id: *user_id, role: *role, changed_by: *by }])
        }
        ChangeSettings { by, is_muted, notifications_enabled } => {
            let is_muted = is_muted.unwrap_or(actor.is_muted);
            let notifications_enabled = notifications_enabled.unwrap_or(actor.notifications_enabled);
            if is_muted == actor.is_muted && notifications_enabled == actor.notifications_enabled {
                return Ok(vec![]);
            }
            Ok(vec![ConversationEvent::ParticipantSettingsChanged { conversation_id: id, user_id: *by, is_muted, notifications_enabled }])
        }
        SendMessage { by, message_id, body, reply_to_id } => {
            require_active(c)?;
            if let Some(reply_to) = reply_to_id {
                if !c.messages.contains_key(reply_to) {
                    return Err(DomainError::invalid("reply_to_id", "must be a message of this conversation"));
                }
            }
            if c.messages.contains_key(message_id) {
                return Err(DomainError::Conflict("a message with this id already exists"));
            }
            Ok(vec![ConversationEvent::MessageSent {
                conversation_id: id,
                message_id: *message_id,
                sender_id: *by,
                seq: c.message_count + 1,
                message_type: body.message_type,
                content: body.content.clone(),
                media_url: body.media_url.clone(),
                media_metadata: body.media_metadata.clone(),
                reply_to_id: *reply_to_id,
            }])
        }
        EditMessage { by, message_id, content } => {
            let message = message(c, message_id)?;
            if message.sender_id != *by {
                return Err(DomainError::Forbidden("only the sender can edit a message"));
            }
            require_active(c)?;
            require_not_deleted(message)?;
            check_edited_content(message.message_type, content).map_err(|e| DomainError::Invalid(vec![e]))?;
            Ok(vec![ConversationEvent::MessageEdited {
                conversation_id: id,
                message_id: *message_id,
                content: content.clone(),
                edited_by: *by,
            }])
        }
        DeleteMessage { by, message_id } => {
            let message = message(c, message_id)?;
            if message.sender_id != *by && !actor.role.manages() {
                return Err(DomainError::Forbidden("only the sender, an OWNER or an ADMIN can delete a message"));
            }
            require_active(c)?;
            require_not_deleted(message)?;
            Ok(vec![ConversationEvent::MessageDeleted { conversation_id: id, message_id: *message_id, deleted_by: *by }])
        }
        AddReaction { by, message_id, reaction_id, emoji } => {
            let message = message(c, message_id)?;
            require_active(c)?;
            require_not_deleted(message)?;
            if message.reactions.contains_key(&(*by, emoji.clone())) {
                return Ok(vec![]);
            }
            Ok(vec![ConversationEvent::ReactionAdded {
                conversation_id: id,
                message_id: *message_id,
                reaction_id: *reaction_id,
                user_id: *by,
                emoji: emoji.clone(),
            }])
        }
        RemoveReaction { by, message_id, emoji } => {
            let message = message(c, message_id)?;
            let reaction = message.reactions.get(&(*by, emoji.clone())).ok_or(DomainError::NotFound("reaction"))?;
            require_active(c)?;
            require_not_deleted(message)?;
            Ok(vec![ConversationEvent::ReactionRemoved {
                conversation_id: id,
                message_id: *message_id,
                reaction_id: reaction.reaction_id,
                user_id: *by,
                emoji: emoji.clone(),
            }])
        }
        MarkRead { by, message_id } => {
            let message =
                c.messages.get(message_id).ok_or_else(|| DomainError::invalid("message_id", "must be a message of this conversation"))?;
            if actor.read_mark.is_some_and(|mark| mark.seq >= message.seq) {
                return Ok(vec![]);
            }
            Ok(vec![ConversationEvent::MessagesRead { conversation_id: id, user_id: *by, message_id: *message_id }])
        }
    }
}

/// When `command` changes nothing, the stream version whose position the
/// answer carries: the one that created the existing reaction, or the
/// conversation's current version for any other no-op.
pub fn version_answering_noop(command: &ConversationCommand, state: &Conversation) -> u64 {
    existing_reaction_state(command, state).map(|r| r.added_at_version).unwrap_or(state.version)
}

/// The reaction a repeated `AddReaction` asks for again, if it exists.
pub fn existing_reaction(command: &ConversationCommand, state: &Conversation) -> Option<ReactionId> {
    existing_reaction_state(command, state).map(|r| r.reaction_id)
}

fn existing_reaction_state<'a>(command: &ConversationCommand, state: &'a Conversation) -> Option<&'a ReactionState> {
    let ConversationCommand::AddReaction { by, message_id, emoji, .. } = command else {
        return None;
    };
    state.details.as_ref()?.messages.get(message_id)?.reactions.get(&(*by, emoji.clone()))
}

fn decide_create(create: &CreateConversation, state: &Conversation) -> Decision {
    if state.details.is_some() {
        return Err(DomainError::Conflict("the conversation already exists"));
    }
    let members = create.members();
    match create.kind {
        ConversationType::Direct => {
            if create.name.is_some() {
                return Err(DomainError::invalid("name", "a DIRECT conversation has no name"));
            }
            if members.len() != 2 {
                return Err(DomainError::invalid("participant_ids", "a DIRECT conversation needs exactly one other user"));
            }
        }
        ConversationType::Group => {
            if members.len() > MAX_PARTICIPANTS {
                return Err(DomainError::invalid("participant_ids", "at most 1,000 participants"));
            }
        }
    }
    let participants = members
        .iter()
        .map(|user_id| InitialParticipant {
            user_id: *user_id,
            role: if *user_id == create.created_by { Role::Owner } else { Role::Member },
        })
        .collect();
    Ok(vec![ConversationEvent::ConversationCreated {
        conversation_id: create.conversation_id,
        kind: create.kind,
        name: create.name.as_ref().map(|n| n.as_str().to_owned()),
        posting_id: create.posting_id,
        created_by: create.created_by,
        participants,
    }])
}

fn message<'a>(c: &'a ConversationDetails, id: &MessageId) -> Result<&'a MessageState, DomainError> {
    c.messages.get(id).ok_or(DomainError::NotFound("message"))
}

fn require_manager(actor: &Participant) -> Result<(), DomainError> {
    if actor.role.manages() {
        Ok(())
    } else {
        Err(DomainError::Forbidden("only an OWNER or ADMIN can do this"))
    }
}

/// DIRECT: either participant; GROUP: OWNER or ADMIN.
fn require_archiver(c: &ConversationDetails, actor: &Participant) -> Result<(), DomainError> {
    match c.kind {
        ConversationType::Direct => Ok(()),
        ConversationType::Group => require_manager(actor),
    }
}

fn require_group(c: &ConversationDetails, why: &'static str) -> Result<(), DomainError> {
    match c.kind {
        ConversationType::Group => Ok(()),
        ConversationType::Direct => Err(DomainError::Conflict(why)),
    }
}

fn require_active(c: &ConversationDetails) -> Result<(), DomainError> {
    if c.archived {
        Err(DomainError::Conflict("the conversation is archived"))
    } else {
        Ok(())
    }
}

fn require_not_deleted(message: &MessageState) -> Result<(), DomainError> {
    if message.deleted {
        Err(DomainError::Conflict("the message is deleted"))
    } else {
        Ok(())
    }
}
