//! What the read cache stores answers under, and what each answer depends on.

use crate::domain::{ConversationId, MessageId, PostingId, UserId};

/// One query's answer as one caller asked it: every parameter that shapes
/// the answer is part of the key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CacheKey {
    /// `GET /conversations/{id}` (the caller's unread count and settings are in it).
    Conversation { user: UserId, id: ConversationId },
    /// `GET /conversations`.
    ConversationList { user: UserId, archived: bool, limit: u32, offset: u64 },
    /// `GET /conversations/{id}/messages`: the same page for every member.
    MessagePage { conversation: ConversationId, limit: u32, page: PageKey },
    /// Whether a user is a member of a conversation (who may read its messages).
    Membership { user: UserId, conversation: ConversationId },
    /// `GET /conversations/direct`.
    Direct { user: UserId, other: UserId, posting: Option<PostingId> },
}

/// Where a cached page of messages starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PageKey {
    Offset(u64),
    Before(MessageId),
}

/// A part of the read models an answer was read from. An event changes some
/// of them (see `touched`); an answer read before that event's position is
/// then stale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dependency {
    /// Anything of one conversation: its row, members, read marks, messages, reactions.
    Conversation(ConversationId),
    /// Which conversations a user is a member of.
    Memberships(UserId),
    /// Who the members of one conversation are.
    Members(ConversationId),
}
