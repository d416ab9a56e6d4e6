//! Events as the log stores them: an envelope around the aggregate's JSON data.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::StoreError;
use crate::domain::{upcasting, EventPayload};

/// Which stream an event belongs to: `conversation/<uuid>`, `user/<id>`, `posting/<uuid>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StreamRef {
    pub stream_type: &'static str,
    pub stream_id: String,
}

impl std::fmt::Display for StreamRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.stream_type, self.stream_id)
    }
}

/// Who caused an event and in answer to what (stored as the `metadata` object).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventMetadata {
    /// The acting user; `None` for the system.
    pub user_id: Option<i32>,
    /// Ties together everything one request caused.
    pub correlation_id: String,
    /// The request (or event) that directly caused this event.
    pub causation_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
}

/// An event ready to append: its data already serialised.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub event_id: Uuid,
    pub event_type: &'static str,
    pub schema_version: u16,
    pub data: String,
    pub metadata: String,
}

impl NewEvent {
    /// Serialises a domain event (`{"type", "data"}`) into the log's columns.
    pub fn from_payload<E: EventPayload>(event: &E, metadata: &EventMetadata) -> Result<Self, serde_json::Error> {
        let mut tagged = serde_json::to_value(event)?;
        let data = tagged.get_mut("data").map(serde_json::Value::take).unwrap_or(serde_json::Value::Object(Default::default()));
        Ok(Self {
            event_id: Uuid::now_v7(),
            event_type: event.event_type(),
            schema_version: event.schema_version(),
            data: serde_json::to_string(&data)?,
            metadata: serde_json::to_string(metadata)?,
        })
    }

    /// Bytes this event adds to a batch, to keep a batch under the packet size.
    pub fn size(&self) -> usize {
        self.data.len() + self.metadata.len() + 200
    }
}

/// An event read back from the log.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StoredEvent {
    pub position: u64,
    pub event_id: String,
    pub stream_type: String,
    pub stream_id: String,
    pub stream_version: u32,
    pub event_type: String,
    pub schema_version: u16,
    pub data: String,
    pub metadata: String,
    pub recorded_at: DateTime<Utc>,
}

impl StoredEvent {
    /// The event as one JSON object, the shape of an NDJSON line and of a
    /// JetStream payload. `data` and `metadata` are written as stored.
    pub fn to_json(&self) -> String {
        let mut out = String::with_capacity(self.data.len() + self.metadata.len() + 256);
        self.write_json(&mut out);
        out
    }

    /// Appends `to_json` to `out` (reusing its buffer).
    pub fn write_json(&self, out: &mut String) {
        write_event_json(
            out,
            EventColumns {
                position: self.position,
                event_id: &self.event_id,
                stream_type: &self.stream_type,
                stream_id: &self.stream_id,
                stream_version: self.stream_version,
                event_type: &self.event_type,
                schema_version: self.schema_version,
                data: &self.data,
                metadata: &self.metadata,
                recorded_at: self.recorded_at,
            },
        );
    }

    /// The same event with its data in the current schema version.
    pub fn upcast(mut self) -> Result<Self, StoreError> {
        let current = upcasting::current_version(&self.event_type);
        if self.schema_version == current {
            return Ok(self);
        }
        let decode_error = |reason: String| StoreError::Upcast { position: self.position, reason };
        let value: serde_json::Value = serde_json::from_str(&self.data).map_err(|e| decode_error(e.to_string()))?;
        let value = upcasting::upcast(&self.event_type, self.schema_version, value).map_err(|e| decode_error(e.to_string()))?;
        self.data = value.to_string();
        self.schema_version = current;
        Ok(self)
    }

    /// Decodes the data into the aggregate's event type.
    pub fn decode<E: EventPayload>(&self) -> Result<E, StoreError> {
        decode_payload(&self.event_type, self.schema_version, &self.data).map_err(|source| StoreError::Decode {
            stream: format!("{}/{}", self.stream_type, self.stream_id),
            event_type: self.event_type.clone(),
            schema_version: self.schema_version,
            source,
        })
    }
}

/// The columns of one stored event, borrowed (e.g. straight from a database row).
#[derive(Debug, Clone, Copy)]
pub struct EventColumns<'a> {
    pub position: u64,
    pub event_id: &'a str,
    pub stream_type: &'a str,
    pub stream_id: &'a str,
    pub stream_version: u32,
    pub event_type: &'a str,
    pub schema_version: u16,
    pub data: &'a str,
    pub metadata: &'a str,
    pub recorded_at: DateTime<Utc>,
}

/// Appends the event's JSON object (an NDJSON line without its newline) to
/// `out`; `data` and `metadata` are written as stored.
pub fn write_event_json(out: &mut String, e: EventColumns<'_>) {
    use std::fmt::Write;
    let _ = write!(out, "{{\"position\":{},\"event_id\":", e.position);
    push_json_str(out, e.event_id);
    out.push_str(",\"stream_type\":");
    push_json_str(out, e.stream_type);
    out.push_str(",\"stream_id\":");
    push_json_str(out, e.stream_id);
    let _ = write!(out, ",\"stream_version\":{},\"type\":", e.stream_version);
    push_json_str(out, e.event_type);
    let _ = write!(out, ",\"schema_version\":{},\"data\":", e.schema_version);
    out.push_str(e.data);
    out.push_str(",\"metadata\":");
    out.push_str(e.metadata);
    out.push_str(",\"recorded_at\":\"");
    push_time(out, e.recorded_at);
    out.push_str("\"}");
}

/// `2026-11-24T13:45:10.123Z` (the same as `time::rfc3339`), without
/// parsing a format string per event: the export writes one per line.
fn push_time(out: &mut String, t: DateTime<Utc>) {
    use chrono::{Datelike, Timelike};
    use std::fmt::Write;
    let _ = write!(
        out,
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.timestamp_subsec_millis().min(999)
    );
}

/// Rebuilds the `{"type", "data"}` form serde expects and decodes it.
pub fn decode_payload<E: EventPayload>(event_type: &str, schema_version: u16, data: &str) -> Result<E, serde_json::Error> {
    if schema_version != upcasting::current_version(event_type) {
        // Stored under an older schema version: upcast the data first.
        let value: serde_json::Value = serde_json::from_str(data)?;
        let value = upcasting::upcast(event_type, schema_version, value).map_err(serde::de::Error::custom)?;
        return serde_json::from_value(serde_json::json!({"type": event_type, "data": value}));
    }
    let mut tagged = String::with_capacity(data.len() + event_type.len() + 20);
    tagged.push_str("{\"type\":");
    push_json_str(&mut tagged, event_type);
    tagged.push_str(",\"data\":");
    tagged.push_str(data);
    tagged.push('}');
    serde_json::from_str(&tagged)
}

/// Appends `value` as a JSON string; identifiers and type names rarely need
/// escaping, so the common case copies the bytes.
fn push_json_str(out: &mut String, value: &str) {
    if value.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push('"');
        out.push_str(value);
        out.push('"');
    } else {
        // Serialising a &str cannot fail.
        out.push_str(&serde_json::to_string(value).unwrap_or_default());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::posting::PostingEvent;
    use crate::domain::PostingId;

    #[test]
    fn payload_round_trips_through_the_columns() {
        let event = PostingEvent::PostingPublished { posting_id: PostingId::new(), title: "Flat \"A\"".into() };
        let meta = EventMetadata { user_id: Some(1), correlation_id: "c".into(), causation_id: "c".into(), idempotency_key: None };
        let new = NewEvent::from_payload(&event, &meta).unwrap();
        assert_eq!(new.event_type, "PostingPublished");
        assert!(new.data.starts_with("{\"posting_id\""));
        let back: PostingEvent = decode_payload(new.event_type, 1, &new.data).unwrap();
        assert_eq!(back, event);
    }

    /// Found by the `stored_events` fuzz target: without serde_json's
    /// `float_roundtrip`, the number written for a decoded float read back as
    /// another float, so media metadata drifted each time an event was read
    /// and written (and the read models disagreed with the log).
    #[test]
    fn numbers_in_event_data_read_back_as_written() {
        use crate::domain::conversation::ConversationEvent;
        let data = r#"{"conversation_id":"0193a0c2-8c1e-7000-8000-0000000000c0","message_id":"0193a0c2-8c1e-7000-8000-000000000001","sender_id":1,"seq":1,"message_type":"IMAGE","content":null,"media_url":"https://x.test/a.png","media_metadata":{"w":5.996344678304714e-102,"h":8.204213524119387e-10},"reply_to_id":null}"#;
        let event: ConversationEvent = decode_payload("MessageSent", 1, data).unwrap();
        let meta = EventMetadata { user_id: Some(1), correlation_id: "c".into(), causation_id: "c".into(), idempotency_key: None };
        let written = NewEvent::from_payload(&event, &meta).unwrap();
        assert!(written.data.contains(r#""media_metadata":{"h":8.204213524119387e-10,"w":5.996344678304714e-102}"#), "{}", written.data);
        let back: ConversationEvent = decode_payload(written.event_type, written.schema_version, &written.data).unwrap();
        assert_eq!(back, event);
    }

    #[test]
    fn json_line_embeds_stored_data_verbatim() {
        let stored = StoredEvent {
            position: 7,
            event_id: "e".into(),
            stream_type: "user".into(),
            stream_id: "42".into(),
            stream_version: 1,
            event_type: "UserRegistered".into(),
            schema_version: 1,
            data: "{\"a\": 1}".into(),
            metadata: "{\"user_id\":null}".into(),
            recorded_at: DateTime::from_timestamp_millis(1_700_000_000_123).unwrap(),
        };
        let line: serde_json::Value = serde_json::from_str(&stored.to_json()).unwrap();
        assert_eq!(line["position"], 7);
        assert_eq!(line["data"]["a"], 1);
        assert_eq!(line["recorded_at"], "2023-11-14T22:13:20.123Z");
        assert!(stored.to_json().contains("{\"a\": 1}"));
    }
}
