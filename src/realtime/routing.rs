//! Which realtime event a domain event becomes, who receives it, and with
//! what data. Shared by the live hub and by resume replays.

use std::collections::{HashMap, HashSet};

use serde_json::{json, Value};
use sqlx::MySqlPool;

use super::membership;
use super::Frame;
use crate::domain::conversation::ConversationEvent as E;
use crate::domain::UserId;
use crate::event_store::StoredEvent;
use crate::projections::ProjectedEvent;
use crate::projections::ProjectionEvent;
use crate::queries::{conversations, messages};
use crate::time::rfc3339;

/// The data of a routed event: the same for everyone, or per recipient
/// (conversation items carry the recipient's own unread count and settings).
pub enum Payload {
    Shared(Frame),
    PerUser(HashMap<UserId, Frame>),
}

/// One event's deliveries.
pub struct Routed {
    pub recipients: Vec<UserId>,
    pub payload: Payload,
}

impl Routed {
    pub fn frame_for(&self, user: UserId) -> Option<&Frame> {
        match &self.payload {
            Payload::Shared(frame) => Some(frame),
            Payload::PerUser(frames) => frames.get(&user),
        }
    }
}

enum Kind {
    Message(&'static str, String),
    Conversation(&'static str),
    Fixed(&'static str, Value),
}

/// Routes `events` (in order), updating `members` (conversation → members,
/// which must hold every conversation of these events as of just before the
/// first one); only recipients in `wanted` (if given) get payloads built.
pub async fn route(
    pool: &MySqlPool,
    events: &[StoredEvent],
    members: &mut HashMap<String, HashSet<UserId>>,
    wanted: &(dyn Fn(UserId) -> bool + Sync),
) -> Result<Vec<Routed>, sqlx::Error> {
    let mut plans = Vec::new();
    for stored in events {
        let Ok(projected) = ProjectedEvent::from_stored(stored) else { continue };
        let ProjectionEvent::Conversation(event) = &projected.event else { continue };
        let set = members.entry(stored.stream_id.clone()).or_default();
        membership::apply(set, event);
        let mut recipients: Vec<UserId> = set.iter().copied().collect();
        let conversation_id = stored.stream_id.clone();
        let at = rfc3339(stored.recorded_at);
        let kind = match event {
            E::ConversationCreated { .. } => Kind::Conversation("conversation:created"),
            E::ConversationRenamed { .. }
            | E::ParticipantAdded { .. }
            | E::ParticipantRoleChanged { .. }
            | E::OwnershipTransferred { .. } => Kind::Conversation("conversation:updated"),
            E::ParticipantRemoved { user_id, .. } => {
                // The removed member gets this last update (without them).
                recipients.push(*user_id);
                Kind::Conversation("conversation:updated")
            }
            E::ParticipantSettingsChanged { user_id, .. } => {
                recipients = vec![*user_id];
                Kind::Conversation("conversation:updated")
            }
            E::ConversationArchived { .. } => Kind::Fixed("conversation:archived", json!({"id": conversation_id})),
            E::ConversationUnarchived { .. } => Kind::Fixed("conversation:unarchived", json!({"id": conversation_id})),
            E::MessageSent { message_id, .. } => Kind::Message("message:new", message_id.to_string()),
            E::MessageEdited { message_id, .. } => Kind::Message("message:edited", message_id.to_string()),
            E::MessageDeleted { message_id, .. } => {
                Kind::Fixed("message:deleted", json!({"id": message_id, "conversation_id": conversation_id, "deleted_at": at}))
            }
            E::ReactionAdded { message_id, reaction_id, user_id, emoji, .. }
            | E::ReactionRemoved { message_id, reaction_id, user_id, emoji, .. } => {
                let action = if matches!(event, E::ReactionAdded { .. }) { "added" } else { "removed" };
                Kind::Fixed(
                    "message:reaction",
                    json!({"message_id": message_id, "conversation_id": conversation_id, "action": action, "id": reaction_id, "emoji": emoji, "userId": user_id}),
                )
            }
            E::MessagesRead { user_id, message_id, .. } => {
                Kind::Fixed("message:read", json!({"conversation_id": conversation_id, "user_id": user_id, "message_id": message_id}))
            }
        };
        recipients.retain(|u| wanted(*u));
        recipients.sort();
        recipients.dedup();
        if !recipients.is_empty() {
            plans.push((stored.position, stored.recorded_at, conversation_id, recipients, kind));
        }
    }
    let message_ids: Vec<String> =
        plans.iter().filter_map(|(_, _, _, _, kind)| if let Kind::Message(_, id) = kind { Some(id.clone()) } else { None }).collect();
    let message_items = messages::by_ids(pool, &message_ids).await?;
    let mut routed = Vec::with_capacity(plans.len());
    for (position, recorded_at, conversation_id, recipients, kind) in plans {
        let payload = match kind {
            Kind::Fixed(event, data) => Payload::Shared(Frame::new(event, data, position, Some(recorded_at))),
            Kind::Message(event, id) => {
                let Some(item) = message_items.get(&id) else { continue };
                Payload::Shared(Frame::new(event, serde_json::to_value(item).unwrap_or(Value::Null), position, Some(recorded_at)))
            }
            Kind::Conversation(event) => {
                let items = conversations::for_users(pool, &conversation_id, &recipients).await?;
                let frames = items
                    .into_iter()
                    .map(|(user, item)| {
                        (user, Frame::new(event, serde_json::to_value(item).unwrap_or(Value::Null), position, Some(recorded_at)))
                    })
                    .collect();
                Payload::PerUser(frames)
            }
        };
        routed.push(Routed { recipients, payload });
    }
    Ok(routed)
}
