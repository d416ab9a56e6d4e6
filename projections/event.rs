//! Events as the projectors see them: decoded, with position and time.

use chrono::{DateTime, Utc};

use crate::domain::conversation::ConversationEvent;
use crate::domain::posting::PostingEvent;
use crate::domain::user::UserEvent;
use crate::event_store::StoredEvent;

use super::ProjectionError;

/// A decoded event of any stream type.
#[derive(Debug, Clone)]
pub enum ProjectionEvent {
    Conversation(ConversationEvent),
    User(UserEvent),
    Posting(PostingEvent),
}

/// An event with its place in the log and the time it was recorded.
#[derive(Debug, Clone)]
pub struct ProjectedEvent {
    pub position: u64,
    pub recorded_at: DateTime<Utc>,
    pub event: ProjectionEvent,
}

impl ProjectedEvent {
    /// Decodes a stored event by its stream type.
    pub fn from_stored(stored: &StoredEvent) -> Result<Self, ProjectionError> {
        let decode_error = |e: crate::event_store::StoreError| ProjectionError::Decode { position: stored.position, reason: e.to_string() };
        let event = match stored.stream_type.as_str() {
            "conversation" => ProjectionEvent::Conversation(stored.decode().map_err(decode_error)?),
            "user" => ProjectionEvent::User(stored.decode().map_err(decode_error)?),
            "posting" => ProjectionEvent::Posting(stored.decode().map_err(decode_error)?),
            other => return Err(ProjectionError::Decode { position: stored.position, reason: format!("unknown stream type {other}") }),
        };
        Ok(Self { position: stored.position, recorded_at: stored.recorded_at, event })
    }

    /// The conversation event, if it is one.
    pub fn conversation(&self) -> Option<&ConversationEvent> {
        match &self.event {
            ProjectionEvent::Conversation(event) => Some(event),
            _ => None,
        }
    }
}
