//! JSON Schemas of every event's `data`, per type and schema version,
//! generated from the Rust types: the contract analytics consumers build on.

use std::collections::BTreeMap;

use schemars::gen::SchemaSettings;
use schemars::JsonSchema;
use serde_json::{Map, Value};

use super::conversation::ConversationEvent;
use super::posting::PostingEvent;
use super::upcasting::{self, ConversationCreatedV1};
use super::user::UserEvent;

/// `{"<type>": {"<schema version>": <JSON Schema of data>}}` for every type
/// the server writes or reads.
pub fn event_schemas() -> Value {
    let mut out: BTreeMap<String, BTreeMap<String, Value>> = BTreeMap::new();
    for (event_type, schema) in variants::<ConversationEvent>().into_iter().chain(variants::<UserEvent>()).chain(variants::<PostingEvent>())
    {
        let version = upcasting::current_version(&event_type).to_string();
        out.entry(event_type).or_default().insert(version, schema);
    }
    out.entry("ConversationCreated".into()).or_default().insert("1".into(), standalone::<ConversationCreatedV1>());
    serde_json::to_value(out).unwrap_or(Value::Null)
}

/// The `data` schema of each variant of a `{"type", "data"}`-tagged enum,
/// each made standalone (its own definitions inlined under `definitions`).
fn variants<T: JsonSchema>() -> Vec<(String, Value)> {
    let root = serde_json::to_value(generator().into_root_schema_for::<T>()).unwrap_or(Value::Null);
    let definitions = root.get("definitions").cloned().unwrap_or(Value::Object(Map::new()));
    let mut out = Vec::new();
    for variant in root.get("oneOf").and_then(Value::as_array).into_iter().flatten() {
        let properties = &variant["properties"];
        let Some(name) = properties["type"]["enum"][0].as_str().or_else(|| properties["type"]["const"].as_str()) else { continue };
        let mut data = properties["data"].clone();
        if let Some(object) = data.as_object_mut() {
            object.insert("$schema".into(), "http://json-schema.org/draft-07/schema#".into());
            object.insert("title".into(), Value::String(format!("{name} data")));
            object.insert("definitions".into(), definitions.clone());
        }
        out.push((name.to_owned(), data));
    }
    out
}

fn standalone<T: JsonSchema>() -> Value {
    serde_json::to_value(generator().into_root_schema_for::<T>()).unwrap_or(Value::Null)
}

fn generator() -> schemars::gen::SchemaGenerator {
    let mut settings = SchemaSettings::draft07();
    settings.option_add_null_type = true;
    settings.into_generator()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_has_a_schema_of_its_current_version() {
        let schemas = event_schemas();
        for event_type in ["MessageSent", "ConversationCreated", "UserRegistered", "PostingPublished", "MessagesRead"] {
            let version = upcasting::current_version(event_type).to_string();
            assert!(schemas[event_type][&version].is_object(), "{event_type} v{version}");
        }
        assert!(schemas["ConversationCreated"]["1"].is_object(), "the older version is documented");
        let sent = &schemas["MessageSent"]["1"];
        assert!(sent["properties"]["seq"].is_object(), "{sent}");
    }
}
