//! Path ids: anything that cannot be an id answers 404 (API.md).

use super::ApiError;
use crate::domain::{ConversationId, MessageId, PostingId, UserId};

pub fn conversation_id(raw: &str) -> Result<ConversationId, ApiError> {
    raw.parse().map_err(|_| ApiError::NotFound("conversation".into()))
}

pub fn message_id(raw: &str) -> Result<MessageId, ApiError> {
    raw.parse().map_err(|_| ApiError::NotFound("message".into()))
}

pub fn posting_id(raw: &str) -> Result<PostingId, ApiError> {
    raw.parse().map_err(|_| ApiError::NotFound("posting".into()))
}

pub fn user_id(raw: &str) -> Result<UserId, ApiError> {
    raw.parse().map_err(|_| ApiError::NotFound("user".into()))
}
