//! What a user can ask of a conversation. Every command names who asks
//! (`by`); fields are already validated values (see `domain::values`).

use crate::domain::values::{ConversationName, ConversationType, Emoji, MessageBody, Role};
use crate::domain::{ConversationId, MessageId, PostingId, ReactionId, UserId};

/// A request to change a conversation.
#[derive(Debug, Clone, PartialEq)]
pub enum ConversationCommand {
    Create(CreateConversation),
    Rename { by: UserId, name: ConversationName },
    Archive { by: UserId },
    Unarchive { by: UserId },
    AddParticipant { by: UserId, user_id: UserId, role: Role },
    RemoveParticipant { by: UserId, user_id: UserId },
    ChangeRole { by: UserId, user_id: UserId, role: Role },
    ChangeSettings { by: UserId, is_muted: Option<bool>, notifications_enabled: Option<bool> },
    SendMessage { by: UserId, message_id: MessageId, body: MessageBody, reply_to_id: Option<MessageId> },
    EditMessage { by: UserId, message_id: MessageId, content: String },
    DeleteMessage { by: UserId, message_id: MessageId },
    AddReaction { by: UserId, message_id: MessageId, reaction_id: ReactionId, emoji: Emoji },
    RemoveReaction { by: UserId, message_id: MessageId, emoji: Emoji },
    MarkRead { by: UserId, message_id: MessageId },
}

/// Starts a conversation; the creator becomes its OWNER.
#[derive(Debug, Clone, PartialEq)]
pub struct CreateConversation {
    pub conversation_id: ConversationId,
    pub kind: ConversationType,
    pub name: Option<ConversationName>,
    pub posting_id: Option<PostingId>,
    pub created_by: UserId,
    pub participant_ids: Vec<UserId>,
}

impl CreateConversation {
    /// Everyone who will be in the conversation: the creator first, then the
    /// listed users in order, without repeats.
    pub fn members(&self) -> Vec<UserId> {
        let mut members = vec![self.created_by];
        for id in &self.participant_ids {
            if !members.contains(id) {
                members.push(*id);
            }
        }
        members
    }

    /// The key that makes a DIRECT conversation unique: the pair of users
    /// (in either order) and the posting (none counts as a value).
    pub fn direct_key(&self) -> Option<String> {
        let members = self.members();
        match (self.kind, members.as_slice()) {
            (ConversationType::Direct, [a, b]) => Some(direct_key(*a, *b, self.posting_id)),
            _ => None,
        }
    }
}

/// The uniqueness key of a DIRECT conversation between `a` and `b` about `posting`.
pub fn direct_key(a: UserId, b: UserId, posting: Option<PostingId>) -> String {
    let (low, high) = if a < b { (a, b) } else { (b, a) };
    match posting {
        Some(posting) => format!("{low}:{high}:{posting}"),
        None => format!("{low}:{high}:-"),
    }
}

impl ConversationCommand {
    /// The user who issued the command.
    pub fn actor(&self) -> UserId {
        use ConversationCommand::*;
        match self {
            Create(c) => c.created_by,
            Rename { by, .. }
            | Archive { by }
            | Unarchive { by }
            | AddParticipant { by, .. }
            | RemoveParticipant { by, .. }
            | ChangeRole { by, .. }
            | ChangeSettings { by, .. }
            | SendMessage { by, .. }
            | EditMessage { by, .. }
            | DeleteMessage { by, .. }
            | AddReaction { by, .. }
            | RemoveReaction { by, .. }
            | MarkRead { by, .. } => *by,
        }
    }
}
