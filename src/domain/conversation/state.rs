//! What a conversation's rules need to know, folded from its events.

use std::collections::{BTreeMap, HashMap};

use crate::domain::values::{ConversationType, Emoji, MessageType, Role};
use crate::domain::{ConversationId, MessageId, PostingId, ReactionId, UserId};

/// A conversation's state; `None` in `details` until it is created.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Conversation {
    /// Number of events applied: the stream version.
    pub version: u64,
    pub details: Option<ConversationDetails>,
}

/// A created conversation.
#[derive(Debug, Clone, PartialEq)]
pub struct ConversationDetails {
    pub id: ConversationId,
    pub kind: ConversationType,
    pub name: Option<String>,
    pub posting_id: Option<PostingId>,
    pub created_by: UserId,
    pub archived: bool,
    pub participants: BTreeMap<UserId, Participant>,
    pub messages: HashMap<MessageId, MessageState>,
    /// Messages sent so far; the next message gets `message_count + 1` as `seq`.
    pub message_count: u64,
}

/// One member and their own settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Participant {
    pub role: Role,
    pub is_muted: bool,
    pub notifications_enabled: bool,
    pub read_mark: Option<ReadMark>,
}

impl Participant {
    pub fn new(role: Role) -> Self {
        Self { role, is_muted: false, notifications_enabled: true, read_mark: None }
    }
}

/// The last message a participant has read, and the stream version that set it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadMark {
    pub message_id: MessageId,
    pub seq: u64,
    pub set_at_version: u64,
}

/// What the rules need of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageState {
    pub seq: u64,
    pub sender_id: UserId,
    pub message_type: MessageType,
    pub deleted: bool,
    pub reactions: BTreeMap<(UserId, Emoji), ReactionState>,
}

/// A reaction, and the stream version of the event that added it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReactionState {
    pub reaction_id: ReactionId,
    pub added_at_version: u64,
}

impl ConversationDetails {
    pub fn participant(&self, user: UserId) -> Option<&Participant> {
        self.participants.get(&user)
    }

    pub fn owner(&self) -> Option<UserId> {
        self.participants.iter().find(|(_, p)| p.role == Role::Owner).map(|(id, _)| *id)
    }
}
