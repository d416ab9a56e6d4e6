//! The posting directory: postings a conversation can be about. One stream per
//! posting, written by administrators (`PUT /postings/{id}`).

use serde::{Deserialize, Serialize};

use super::{Aggregate, DomainError, EventPayload, PostingId};

/// Marker type for the posting aggregate.
pub struct PostingAggregate;

/// Creates or retitles a posting (the title is already validated).
#[derive(Debug, Clone, PartialEq)]
pub struct PublishPosting {
    pub posting_id: PostingId,
    pub title: String,
}

/// What happened to a posting.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type", content = "data")]
pub enum PostingEvent {
    PostingPublished { posting_id: PostingId, title: String },
    PostingRetitled { posting_id: PostingId, title: String },
}

impl EventPayload for PostingEvent {
    fn event_type(&self) -> &'static str {
        match self {
            PostingEvent::PostingPublished { .. } => "PostingPublished",
            PostingEvent::PostingRetitled { .. } => "PostingRetitled",
        }
    }
}

/// A posting's current title; `None` until published.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Posting {
    pub title: Option<String>,
}

impl Aggregate for PostingAggregate {
    const STREAM_TYPE: &'static str = "posting";
    type Command = PublishPosting;
    type Event = PostingEvent;
    type State = Posting;

    fn decide(command: &PublishPosting, state: &Posting) -> Result<Vec<PostingEvent>, DomainError> {
        let PublishPosting { posting_id, title } = command.clone();
        Ok(match state.title.as_deref() {
            None => vec![PostingEvent::PostingPublished { posting_id, title }],
            Some(current) if current == title => vec![],
            Some(_) => vec![PostingEvent::PostingRetitled { posting_id, title }],
        })
    }

    fn evolve(_state: Posting, event: &PostingEvent) -> Posting {
        let (PostingEvent::PostingPublished { title, .. } | PostingEvent::PostingRetitled { title, .. }) = event;
        Posting { title: Some(title.clone()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_then_retitle_then_nothing() {
        let cmd = |t: &str| PublishPosting { posting_id: PostingId::new(), title: t.into() };
        let events = PostingAggregate::decide(&cmd("Flat"), &Posting::default()).unwrap();
        assert_eq!(events[0].event_type(), "PostingPublished");
        let state = events.iter().fold(Posting::default(), PostingAggregate::evolve);
        assert_eq!(PostingAggregate::decide(&cmd("House"), &state).unwrap()[0].event_type(), "PostingRetitled");
        assert_eq!(PostingAggregate::decide(&cmd("Flat"), &state), Ok(vec![]));
    }
}
