//! Stored events (type, schema version, data) through the upcaster and the
//! decoding every reader uses (`StoredEvent::upcast`, `decode_payload`,
//! `ProjectedEvent::from_stored`), then into the aggregates' `evolve` and the
//! projectors' in-memory fold. Any input must decode or fail, never panic;
//! and an event that decodes must be written and read back as the same event.
//!
//! Input: `<event type>\n<schema version>\n<data JSON>`.

#![no_main]

use chat::domain::conversation::{self, Conversation, ConversationEvent};
use chat::domain::posting::{PostingAggregate, PostingEvent};
use chat::domain::user::{UserAggregate, UserEvent};
use chat::domain::{Aggregate, EventPayload};
use chat::event_store::{decode_payload, EventMetadata, NewEvent, StoredEvent};
use chat::projections::{Batch, ProjectedEvent};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.splitn(3, '\n');
    let (Some(event_type), Some(version), Some(data)) = (parts.next(), parts.next(), parts.next()) else {
        return;
    };
    let Ok(schema_version) = version.trim().parse::<u16>() else {
        return;
    };

    if let Ok(event) = decode_payload::<ConversationEvent>(event_type, schema_version, data) {
        round_trip(&event);
        let state = conversation::evolve(Conversation::default(), &event);
        let _ = conversation::evolve(state, &event);
    }
    if let Ok(event) = decode_payload::<UserEvent>(event_type, schema_version, data) {
        round_trip(&event);
        let _ = UserAggregate::evolve(Default::default(), &event);
    }
    if let Ok(event) = decode_payload::<PostingEvent>(event_type, schema_version, data) {
        round_trip(&event);
        let _ = PostingAggregate::evolve(Default::default(), &event);
    }

    let mut batch = Batch::default();
    for stream_type in ["conversation", "user", "posting", "other"] {
        let stored = stored(stream_type, event_type, schema_version, data);
        let _ = stored.to_json();
        if let Ok(projected) = ProjectedEvent::from_stored(&stored) {
            batch.fold(&projected);
        }
        if let Ok(upcast) = stored.upcast() {
            let _ = upcast.to_json();
            let _ = upcast.decode::<ConversationEvent>();
            let _ = upcast.decode::<UserEvent>();
            let _ = upcast.decode::<PostingEvent>();
        }
    }
});

fn stored(stream_type: &str, event_type: &str, schema_version: u16, data: &str) -> StoredEvent {
    StoredEvent {
        position: 1,
        event_id: "0193a0c2-8c1e-7000-8000-000000000001".into(),
        stream_type: stream_type.into(),
        stream_id: "0193a0c2-8c1e-7000-8000-000000000002".into(),
        stream_version: 1,
        event_type: event_type.into(),
        schema_version,
        data: data.into(),
        metadata: "{}".into(),
        recorded_at: chrono::DateTime::UNIX_EPOCH,
    }
}

/// An event that decoded is written in the log's form and read back unchanged.
fn round_trip<E: EventPayload + PartialEq + std::fmt::Debug>(event: &E) {
    let metadata = EventMetadata { user_id: None, correlation_id: "c".into(), causation_id: "c".into(), idempotency_key: None };
    let Ok(written) = NewEvent::from_payload(event, &metadata) else {
        panic!("a decoded event cannot be written: {event:?}");
    };
    match decode_payload::<E>(written.event_type, written.schema_version, &written.data) {
        Ok(back) => assert_eq!(&back, event, "written as {}", written.data),
        Err(error) => panic!("{event:?} written as {} does not decode: {error}", written.data),
    }
}
