//! Event schema versions and upcasters: an event stored under an older schema
//! version is turned into the current shape when read, by pure functions on
//! its JSON data, so every consumer (aggregates, projectors, replay, realtime)
//! sees one shape per type.
//!
//! History:
//! - `ConversationCreated` v1 listed `participant_ids` (the creator first,
//!   roles implied: creator OWNER, others MEMBER); v2 lists `participants`
//!   as `{user_id, role}`.

use serde_json::{json, Value};

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

fn conversation_created_v1_to_v2(mut data: Value) -> Option<Value> {
    let object = data.as_object_mut()?;
    let creator = object.get("created_by")?.as_i64()?;
    let ids = object.remove("participant_ids")?;
    let participants: Vec<Value> = ids
        .as_array()?
        .iter()
        .map(|id| {
            let role = if id.as_i64() == Some(creator) { "OWNER" } else { "MEMBER" };
            json!({"user_id": id, "role": role})
        })
        .collect();
    object.insert("participants".into(), Value::Array(participants));
    Some(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversation_created_v1_gets_roles() {
        let v1 =
            json!({"conversation_id": "c", "type": "GROUP", "name": null, "posting_id": null, "created_by": 3, "participant_ids": [3, 4]});
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
