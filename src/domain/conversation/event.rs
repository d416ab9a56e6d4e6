//! What happened to a conversation. Serialised as `{"type": "...", "data": {...}}`;
//! `type` is the name stored in the event log and used in NATS subjects.

use serde::{Deserialize, Serialize};

use crate::domain::values::{ConversationType, Emoji, MessageType, Role};
use crate::domain::{ConversationId, EventPayload, MessageId, PostingId, ReactionId, Reference, UserId};

/// A member of a conversation at its creation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InitialParticipant {
    pub user_id: UserId,
    pub role: Role,
}

/// A conversation's events, schema version 1 each.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type", content = "data")]
pub enum ConversationEvent {
    ConversationCreated {
        conversation_id: ConversationId,
        #[serde(rename = "type")]
        kind: ConversationType,
        name: Option<String>,
        posting_id: Option<PostingId>,
        created_by: UserId,
        participants: Vec<InitialParticipant>,
    },
    ConversationRenamed {
        conversation_id: ConversationId,
        name: String,
        renamed_by: UserId,
    },
    ConversationArchived {
        conversation_id: ConversationId,
        archived_by: UserId,
    },
    ConversationUnarchived {
        conversation_id: ConversationId,
        unarchived_by: UserId,
    },
    ParticipantAdded {
        conversation_id: ConversationId,
        user_id: UserId,
        role: Role,
        added_by: UserId,
    },
    /// `removed_by == user_id` when the participant left.
    ParticipantRemoved {
        conversation_id: ConversationId,
        user_id: UserId,
        removed_by: UserId,
    },
    ParticipantRoleChanged {
        conversation_id: ConversationId,
        user_id: UserId,
        role: Role,
        changed_by: UserId,
    },
    /// The new OWNER takes over; the previous one becomes ADMIN.
    OwnershipTransferred {
        conversation_id: ConversationId,
        previous_owner: UserId,
        new_owner: UserId,
    },
    /// The participant's own settings, both values as they now are.
    ParticipantSettingsChanged {
        conversation_id: ConversationId,
        user_id: UserId,
        is_muted: bool,
        notifications_enabled: bool,
    },
    /// `seq` numbers the conversation's messages 1, 2, 3... in send order.
    MessageSent {
        conversation_id: ConversationId,
        message_id: MessageId,
        sender_id: UserId,
        seq: u64,
        message_type: MessageType,
        content: Option<String>,
        media_url: Option<String>,
        media_metadata: Option<serde_json::Map<String, serde_json::Value>>,
        reply_to_id: Option<MessageId>,
    },
    MessageEdited {
        conversation_id: ConversationId,
        message_id: MessageId,
        content: String,
        edited_by: UserId,
    },
    MessageDeleted {
        conversation_id: ConversationId,
        message_id: MessageId,
        deleted_by: UserId,
    },
    ReactionAdded {
        conversation_id: ConversationId,
        message_id: MessageId,
        reaction_id: ReactionId,
        user_id: UserId,
        emoji: Emoji,
    },
    ReactionRemoved {
        conversation_id: ConversationId,
        message_id: MessageId,
        reaction_id: ReactionId,
        user_id: UserId,
        emoji: Emoji,
    },
    /// The user's read mark moved forward to `message_id`.
    MessagesRead {
        conversation_id: ConversationId,
        user_id: UserId,
        message_id: MessageId,
    },
}

impl EventPayload for ConversationEvent {
    fn event_type(&self) -> &'static str {
        use ConversationEvent::*;
        match self {
            ConversationCreated { .. } => "ConversationCreated",
            ConversationRenamed { .. } => "ConversationRenamed",
            ConversationArchived { .. } => "ConversationArchived",
            ConversationUnarchived { .. } => "ConversationUnarchived",
            ParticipantAdded { .. } => "ParticipantAdded",
            ParticipantRemoved { .. } => "ParticipantRemoved",
            ParticipantRoleChanged { .. } => "ParticipantRoleChanged",
            OwnershipTransferred { .. } => "OwnershipTransferred",
            ParticipantSettingsChanged { .. } => "ParticipantSettingsChanged",
            MessageSent { .. } => "MessageSent",
            MessageEdited { .. } => "MessageEdited",
            MessageDeleted { .. } => "MessageDeleted",
            ReactionAdded { .. } => "ReactionAdded",
            ReactionRemoved { .. } => "ReactionRemoved",
            MessagesRead { .. } => "MessagesRead",
        }
    }

    fn schema_version(&self) -> u16 {
        crate::domain::upcasting::current_version(self.event_type())
    }
}

impl ConversationEvent {
    /// Users and postings the event refers to, which must exist in the directory.
    pub fn references(&self) -> Vec<Reference> {
        use ConversationEvent::*;
        match self {
            ConversationCreated { participants, posting_id, .. } => participants
                .iter()
                .map(|p| Reference::User { field: "participant_ids", id: p.user_id })
                .chain(posting_id.map(|id| Reference::Posting { field: "posting_id", id }))
                .collect(),
            ParticipantAdded { user_id, .. } => vec![Reference::User { field: "user_id", id: *user_id }],
            _ => Vec::new(),
        }
    }

    /// The message the event creates, for the message-to-conversation lookup.
    pub fn sent_message(&self) -> Option<MessageId> {
        match self {
            ConversationEvent::MessageSent { message_id, .. } => Some(*message_id),
            _ => None,
        }
    }
}
