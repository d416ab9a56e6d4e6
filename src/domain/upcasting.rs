//! Event schema versions and upcasters: an event stored under an older schema
//! version is turned into the current shape when read, by pure functions on
//! its JSON data, so every consumer (aggregates, projectors, replay, realtime)
//! sees one shape per type.
//!
//! History:
//! - `ConversationCreated` v1 listed `participant_ids` (the creator first,
//!   roles implied: creator OWNER, others MEMBER); v2 lists `participants`
//!   as `{user_id, role}`.

use serde_json::Value;

use super::conversation::{ConversationEvent, InitialParticipant};
use super::values::{ConversationType, Role};
use super::{ConversationId, PostingId, UserId};

/// The schema version this code writes for `event_type`.
pub fn current_version(event_type: &str) -> u16 {
    match event_type {
        "ConversationCreated" => 2,
        _ => 1,
    }
}

/// Every (type, version) an upcaster reads, for the schema document.
pub const OLDER_VERSIONS: &[(&str, u16)] = &[("ConversationCreated", 1)];

/// Why stored data could not be upcast.
#[derive(Debug, thiserror::Error)]
#[error("cannot upcast {event_type} v{version}: {reason}")]
pub struct UpcastError {
    pub event_type: String,
    pub version: u16,
    pub reason: String,
}

/// Brings `data` of `event_type` at `version` to the current version.
pub fn upcast(event_type: &str, mut version: u16, mut data: Value) -> Result<Value, UpcastError> {
    let current = current_version(event_type);
    let fail = |version: u16, reason: &str| UpcastError { event_type: event_type.to_owned(), version, reason: reason.to_owned() };
    if version > current {
        return Err(fail(version, "written by a newer version of the server"));
    }
    while version < current {
        data = match (event_type, version) {
            ("ConversationCreated", 1) => conversation_created_v1_to_v2(data).ok_or_else(|| fail(1, "participant_ids missing"))?,
            _ => return Err(fail(version, "no upcaster for this version")),
        };
        version += 1;
    }
    Ok(data)
}

/// `ConversationCreated` as schema version 1 stored it.
#[derive(Debug, Clone, serde::Deserialize, schemars::JsonSchema)]
pub struct ConversationCreatedV1 {
    pub conversation_id: ConversationId,
    #[serde(rename = "type")]
    pub kind: ConversationType,
    pub name: Option<String>,
    pub posting_id: Option<PostingId>,
    pub created_by: UserId,
    /// The creator first; roles implied (creator OWNER, others MEMBER).
    pub participant_ids: Vec<UserId>,
}

fn conversation_created_v1_to_v2(data: Value) -> Option<Value> {
    let v1: ConversationCreatedV1 = serde_json::from_value(data).ok()?;
    let participants = v1
        .participant_ids
        .iter()
        .map(|&user_id| InitialParticipant { user_id, role: if user_id == v1.created_by { Role::Owner } else { Role::Member } })
        .collect();
    let v2 = ConversationEvent::ConversationCreated {
        conversation_id: v1.conversation_id,
        kind: v1.kind,
        name: v1.name,
        posting_id: v1.posting_id,
        created_by: v1.created_by,
        participants,
    };
    serde_json::to_value(v2).ok()?.get_mut("data").map(Value::take)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn conversation_created_v1_gets_roles() {
        let v1 = json!({"conversation_id": "0193a0c2-8c1e-7000-8000-000000000001", "type": "GROUP", "name": null, "posting_id": null, "created_by": 3, "participant_ids": [3, 4]});
        let v2 = upcast("ConversationCreated", 1, v1).unwrap();
        assert_eq!(v2["participants"], json!([{"user_id": 3, "role": "OWNER"}, {"user_id": 4, "role": "MEMBER"}]));
        assert!(v2.get("participant_ids").is_none());
    }

    #[test]
    fn current_versions_pass_through_and_newer_ones_fail() {
        let data = json!({"a": 1});
        assert_eq!(upcast("MessageSent", 1, data.clone()).unwrap(), data);
        assert!(upcast("MessageSent", 2, data).is_err());
    }
}
