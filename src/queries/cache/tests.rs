//! The cache's rules, without I/O.

use bytes::Bytes;
use chrono::DateTime;
use uuid::Uuid;

use super::*;
use crate::domain::conversation::{ConversationEvent, InitialParticipant};
use crate::domain::values::{ConversationType, Role};
use crate::domain::{ConversationId, EventPayload, UserId};
use crate::event_store::{EventMetadata, NewEvent, StoredEvent};

fn user(n: i64) -> UserId {
    UserId::new(n).unwrap()
}

fn conversation(n: u128) -> ConversationId {
    ConversationId(Uuid::from_u128(n))
}

fn key(n: i64) -> CacheKey {
    CacheKey::Conversation { user: user(n), id: conversation(1) }
}

fn body(text: &'static str) -> Answer {
    Answer::Found(Bytes::from_static(text.as_bytes()))
}

/// A cache whose follower has seen up to `seen` and is caught up.
fn cache_at(seen: u64) -> ReadCache {
    let cache = ReadCache::new(1 << 20);
    cache.advance([], seen);
    cache.caught_up();
    cache
}

fn changed(cache: &ReadCache, position: u64, parts: Vec<Dependency>) {
    cache.advance([(position, Touched::Parts(parts))], position);
}

#[test]
fn an_answer_is_served_until_a_part_it_read_changes() {
    let cache = cache_at(10);
    let ticket = cache.ticket();
    cache.insert(key(1), body("a"), ticket, vec![Dependency::Conversation(conversation(1))]);
    assert_eq!(cache.get(&key(1), None), Some(body("a")));

    changed(&cache, 11, vec![Dependency::Conversation(conversation(2))]);
    assert_eq!(cache.get(&key(1), None), Some(body("a")), "another conversation changed");
    assert_eq!(cache.get(&key(1), Some(11)), Some(body("a")), "position 11 is known not to change it");

    changed(&cache, 12, vec![Dependency::Conversation(conversation(1))]);
    assert_eq!(cache.get(&key(1), None), None);
}

#[test]
fn an_answer_read_before_a_change_it_missed_is_not_stored() {
    let cache = cache_at(10);
    let ticket = cache.ticket();
    // The follower accounts for a change while the miss reads the database.
    changed(&cache, 11, vec![Dependency::Memberships(user(1))]);
    cache.insert(key(1), body("a"), ticket, vec![Dependency::Memberships(user(1))]);
    assert_eq!(cache.get(&key(1), None), None);
}

#[test]
fn a_position_the_follower_has_not_seen_goes_to_the_database() {
    let cache = cache_at(10);
    cache.insert(key(1), body("a"), cache.ticket(), vec![]);
    assert_eq!(cache.get(&key(1), Some(10)), Some(body("a")));
    assert_eq!(cache.get(&key(1), Some(11)), None);
}

#[test]
fn nothing_is_served_before_the_follower_caught_up() {
    let cache = ReadCache::new(1 << 20);
    cache.insert(key(1), body("a"), cache.ticket(), vec![]);
    assert_eq!(cache.get(&key(1), None), None);
    cache.caught_up();
    assert_eq!(cache.get(&key(1), None), Some(body("a")));
}

#[test]
fn a_change_to_everything_makes_every_answer_stale() {
    let cache = cache_at(10);
    cache.insert(key(1), body("a"), cache.ticket(), vec![]);
    cache.advance([(11, Touched::Nothing)], 11);
    assert_eq!(cache.get(&key(1), None), Some(body("a")));
    cache.advance([(12, Touched::Everything)], 12);
    assert_eq!(cache.get(&key(1), None), None);
}

#[test]
fn tickets_taken_before_a_restart_are_void() {
    let cache = cache_at(10);
    let ticket = cache.ticket();
    cache.restart_at(5);
    cache.caught_up();
    cache.insert(key(1), body("a"), ticket, vec![]);
    assert_eq!(cache.get(&key(1), None), None);
    cache.insert(key(1), body("b"), cache.ticket(), vec![]);
    assert_eq!(cache.get(&key(1), None), Some(body("b")));
}

#[test]
fn the_least_recently_used_answers_go_past_the_budget() {
    let cache = ReadCache::new(64 * 1024);
    cache.advance([], 1);
    cache.caught_up();
    let big: &'static str = Box::leak("x".repeat(2000).into_boxed_str());
    for n in 1..=40 {
        cache.insert(key(n), body(big), cache.ticket(), vec![]);
        cache.get(&key(1), None);
    }
    assert_eq!(cache.get(&key(1), None), Some(body(big)), "kept: used on every insert");
    assert_eq!(cache.get(&key(2), None), None, "evicted");
    assert_eq!(cache.get(&key(40), None), Some(body(big)));
}

#[test]
fn a_disabled_cache_holds_nothing() {
    let cache = ReadCache::disabled();
    cache.caught_up();
    cache.insert(key(1), body("a"), cache.ticket(), vec![]);
    assert_eq!(cache.get(&key(1), None), None);
}

fn stored(event: ConversationEvent, position: u64) -> StoredEvent {
    let written = NewEvent::from_payload(
        &event,
        &EventMetadata { user_id: None, correlation_id: "c".into(), causation_id: "c".into(), idempotency_key: None },
    )
    .unwrap();
    StoredEvent {
        position,
        event_id: "e".into(),
        stream_type: "conversation".into(),
        stream_id: conversation(1).to_string(),
        stream_version: 1,
        event_type: event.event_type().into(),
        schema_version: written.schema_version,
        data: written.data,
        metadata: String::new(),
        recorded_at: DateTime::from_timestamp_millis(1_700_000_000_000).unwrap(),
    }
}

#[test]
fn membership_events_touch_the_memberships_of_their_users() {
    let created = ConversationEvent::ConversationCreated {
        conversation_id: conversation(1),
        kind: ConversationType::Group,
        name: Some("n".into()),
        posting_id: None,
        created_by: user(1),
        participants: vec![
            InitialParticipant { user_id: user(1), role: Role::Owner },
            InitialParticipant { user_id: user(2), role: Role::Member },
        ],
    };
    assert_eq!(
        touched(&stored(created, 1)),
        Touched::Parts(vec![
            Dependency::Conversation(conversation(1)),
            Dependency::Members(conversation(1)),
            Dependency::Memberships(user(1)),
            Dependency::Memberships(user(2))
        ])
    );
    let removed = ConversationEvent::ParticipantRemoved { conversation_id: conversation(1), user_id: user(3), removed_by: user(1) };
    assert_eq!(
        touched(&stored(removed, 2)),
        Touched::Parts(vec![
            Dependency::Conversation(conversation(1)),
            Dependency::Members(conversation(1)),
            Dependency::Memberships(user(3))
        ])
    );
}

#[test]
fn profiles_touch_everything_and_postings_nothing() {
    // Messages and the like change the conversation, not who is in it.
    let mut event = stored(ConversationEvent::ConversationArchived { conversation_id: conversation(1), archived_by: user(1) }, 3);
    assert_eq!(touched(&event), Touched::Parts(vec![Dependency::Conversation(conversation(1))]));
    event.stream_type = "user".into();
    assert_eq!(touched(&event), Touched::Everything);
    event.stream_type = "posting".into();
    assert_eq!(touched(&event), Touched::Nothing);
    event.stream_type = "conversation".into();
    event.stream_id = "not a uuid".into();
    assert_eq!(touched(&event), Touched::Everything);
}
