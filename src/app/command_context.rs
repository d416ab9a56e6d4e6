//! Who sent a command, and how to complete its idempotency key.

use crate::domain::UserId;
use crate::event_store::{EventMetadata, IdempotencyCompletion};

/// The request-level facts a command's events carry in their metadata.
#[derive(Debug, Clone)]
pub struct CommandContext {
    pub actor: Option<UserId>,
    pub correlation_id: String,
    pub causation_id: String,
    /// Set when the request carried an `Idempotency-Key` that this request holds.
    pub idempotency: Option<IdempotencyCompletion>,
}

impl CommandContext {
    pub fn metadata(&self) -> EventMetadata {
        EventMetadata {
            user_id: self.actor.map(UserId::get),
            correlation_id: self.correlation_id.clone(),
            causation_id: self.causation_id.clone(),
            idempotency_key: self.idempotency.as_ref().map(|i| i.key.clone()),
        }
    }
}
