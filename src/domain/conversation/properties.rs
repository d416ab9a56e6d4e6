//! Property tests of the conversation aggregate. Random sequences of commands
//! from a small pool of users go through `decide`, and the events of an
//! accepted command through `evolve` (a refused command changes nothing); the
//! aggregate's invariants are checked after every step:
//!
//! - a created conversation has exactly one OWNER, 1 to 1,000 participants,
//!   and a DIRECT exactly two and no name;
//! - the stream version grows by one per event, messages are numbered
//!   1, 2, 3... and read marks only move forward;
//! - reactions are unique per (message, user, emoji), checked against a model
//!   kept from the events alone;
//! - a refused command answers `Err` and leaves the state as it was, and
//!   deciding is deterministic;
//! - while archived, only unarchiving, leaving, own settings and read marks
//!   produce events;
//! - an accepted command decided again on the state it produced changes
//!   nothing (except an edit, which may repeat);
//! - every event survives the event log's stored form, and folding the stored
//!   events rebuilds the same state.
//!
//! The number of cases is `PROPTEST_CASES` (default 256). The generator and
//! the runner are also used by the participants projector's property test.

use std::collections::BTreeSet;

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use uuid::Uuid;

use super::{
    decide, evolve, existing_reaction, version_answering_noop, Conversation, ConversationCommand, ConversationEvent, CreateConversation,
};
use crate::domain::values::{ConversationName, ConversationType, Emoji, MessageBody, MessageType, Role, MAX_PARTICIPANTS};
use crate::domain::{ConversationId, DomainError, EventPayload, MessageId, PostingId, ReactionId, UserId};

/// Users who issue commands: 1 to `USERS`.
const USERS: u8 = 5;
/// A user who is never in a conversation at its creation.
const OUTSIDER: i64 = 5_000;
/// First user id of the members of a bulk-created group.
const BULK_FIRST: i64 = 101;
/// A message reference picks one of the conversation's messages by
/// `reference % count`, except `UNKNOWN_MESSAGE`, which names none.
const UNKNOWN_MESSAGE: u8 = 15;
const NAMES: [&str; 3] = ["alpha", "beta", "gamma"];
const EMOJI: [&str; 3] = ["👍", "🎉", "ok"];

/// Cases per property: `PROPTEST_CASES`, or 256.
pub(crate) fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256);
    ProptestConfig { cases, ..ProptestConfig::default() }
}

/// Who else a creation lists.
#[derive(Debug, Clone)]
pub(crate) enum Others {
    /// Indices into the small pool of users (repeats and the creator allowed).
    Pool(Vec<u8>),
    /// That many distinct users outside the pool: around the 1,000 limit.
    Bulk(u16),
}

/// A command in terms of small indices; `command` makes it concrete.
#[derive(Debug, Clone)]
pub(crate) enum Op {
    Create {
        by: u8,
        direct: bool,
        name: Option<u8>,
        posting: bool,
        others: Others,
    },
    Rename {
        by: u8,
        name: u8,
    },
    Archive {
        by: u8,
    },
    Unarchive {
        by: u8,
    },
    /// `user == USERS` stands for `OUTSIDER`.
    Add {
        by: u8,
        user: u8,
        role: Role,
    },
    Remove {
        by: u8,
        user: u8,
    },
    ChangeRole {
        by: u8,
        user: u8,
        role: Role,
    },
    Settings {
        by: u8,
        muted: Option<bool>,
        notifications: Option<bool>,
    },
    /// A fresh id, or (`fresh == false`) the id of an existing message again.
    Send {
        by: u8,
        fresh: bool,
        message: u8,
        reply_to: Option<u8>,
        image: bool,
    },
    Edit {
        by: u8,
        message: u8,
        blank: bool,
    },
    Delete {
        by: u8,
        message: u8,
    },
    React {
        by: u8,
        message: u8,
        emoji: u8,
    },
    /// One of the actor's own reactions (`reaction`), or any message and emoji.
    Unreact {
        by: u8,
        reaction: Option<u8>,
        message: u8,
        emoji: u8,
    },
    Read {
        by: u8,
        message: u8,
    },
}

fn user(index: u8) -> UserId {
    UserId::new(i64::from(index) + 1).expect("pool user id")
}

fn target(index: u8) -> UserId {
    if index >= USERS {
        UserId::new(OUTSIDER).expect("outsider id")
    } else {
        user(index)
    }
}

/// The conversation every sequence works on.
pub(crate) fn conversation_id() -> ConversationId {
    ConversationId(Uuid::from_u128(0xC0))
}

/// The message `reference` picks in `state` (counting back from the newest),
/// or an id no message has.
fn message_id(reference: u8, state: &Conversation, step: usize) -> MessageId {
    let unknown = MessageId(Uuid::from_u128(0xDEAD_0000 + step as u128));
    let Some(c) = &state.details else { return unknown };
    if reference == UNKNOWN_MESSAGE || c.message_count == 0 {
        return unknown;
    }
    let seq = c.message_count - u64::from(reference) % c.message_count;
    c.messages.iter().find(|(_, m)| m.seq == seq).map_or(unknown, |(id, _)| *id)
}

fn emoji(index: u8) -> Emoji {
    Emoji::parse(EMOJI[usize::from(index) % EMOJI.len()]).expect("pool emoji")
}

fn role() -> impl Strategy<Value = Role> {
    prop_oneof![Just(Role::Owner), Just(Role::Admin), Just(Role::Member)]
}

/// Who issues a command: below `USERS` a user of the pool, above it one of
/// the conversation's current participants (so most commands get past the
/// membership check).
fn by() -> impl Strategy<Value = u8> {
    0..USERS + 4
}

fn actor(by: u8, state: &Conversation) -> UserId {
    match &state.details {
        Some(c) if by >= USERS => c.participants.keys().nth(usize::from(by - USERS) % c.participants.len()).copied().unwrap_or(user(0)),
        _ => user(by % USERS),
    }
}

fn message() -> impl Strategy<Value = u8> {
    0..=UNKNOWN_MESSAGE
}

/// Mostly valid creations: a DIRECT usually lists one user and has no name;
/// a GROUP lists a few users, or around 1,000.
fn create_op() -> impl Strategy<Value = Op> {
    let name = || proptest::option::weighted(0.7, 0..NAMES.len() as u8);
    let direct = (
        by(),
        proptest::option::weighted(0.1, 0..NAMES.len() as u8),
        any::<bool>(),
        prop_oneof![
            6 => (0..USERS).prop_map(|u| Others::Pool(vec![u])),
            1 => proptest::collection::vec(0..USERS, 0..4).prop_map(Others::Pool),
        ],
    )
        .prop_map(|(by, name, posting, others)| Op::Create { by, direct: true, name, posting, others });
    let group = (
        by(),
        name(),
        any::<bool>(),
        prop_oneof![
            9 => proptest::collection::vec(0..USERS, 0..6).prop_map(Others::Pool),
            1 => prop_oneof![Just(998u16), Just(999), Just(1_000), Just(1_001)].prop_map(Others::Bulk),
        ],
    )
        .prop_map(|(by, name, posting, others)| Op::Create { by, direct: false, name, posting, others });
    prop_oneof![direct, group]
}

/// One command of any kind, weighted towards messages and membership.
pub(crate) fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        1 => create_op(),
        2 => (by(), 0..NAMES.len() as u8).prop_map(|(by, name)| Op::Rename { by, name }),
        1 => by().prop_map(|by| Op::Archive { by }),
        3 => by().prop_map(|by| Op::Unarchive { by }),
        3 => (by(), 0..=USERS, role()).prop_map(|(by, user, role)| Op::Add { by, user, role }),
        2 => (by(), by()).prop_map(|(by, user)| Op::Remove { by, user }),
        2 => (by(), by(), role()).prop_map(|(by, user, role)| Op::ChangeRole { by, user, role }),
        1 => (by(), any::<Option<bool>>(), any::<Option<bool>>())
            .prop_map(|(by, muted, notifications)| Op::Settings { by, muted, notifications }),
        6 => (by(), proptest::bool::weighted(0.95), message(), proptest::option::weighted(0.2, message()), proptest::bool::weighted(0.2))
            .prop_map(|(by, fresh, message, reply_to, image)| Op::Send { by, fresh, message, reply_to, image }),
        2 => (by(), message(), proptest::bool::weighted(0.2)).prop_map(|(by, message, blank)| Op::Edit { by, message, blank }),
        2 => (by(), message()).prop_map(|(by, message)| Op::Delete { by, message }),
        4 => (by(), message(), 0..EMOJI.len() as u8).prop_map(|(by, message, emoji)| Op::React { by, message, emoji }),
        2 => (by(), proptest::option::weighted(0.7, any::<u8>()), message(), 0..EMOJI.len() as u8)
            .prop_map(|(by, reaction, message, emoji)| Op::Unreact { by, reaction, message, emoji }),
        3 => (by(), message()).prop_map(|(by, message)| Op::Read { by, message }),
    ]
}

/// A history: usually a creation first, then up to 80 commands of any kind.
pub(crate) fn command_sequences() -> impl Strategy<Value = Vec<Op>> {
    (proptest::option::weighted(0.9, create_op()), proptest::collection::vec(op(), 0..80))
        .prop_map(|(first, rest)| first.into_iter().chain(rest).collect())
}

/// The concrete command for `op`, the `step`-th of its sequence, on `state`
/// (new ids depend on the step, as the HTTP edge makes a fresh one per
/// request; message references pick from the state's messages).
pub(crate) fn command(op: &Op, step: usize, state: &Conversation) -> ConversationCommand {
    let message_id = |reference: u8| message_id(reference, state, step);
    let user = |by: u8| actor(by, state);
    use ConversationCommand as C;
    match op.clone() {
        Op::Create { by, direct, name, posting, others } => C::Create(CreateConversation {
            conversation_id: conversation_id(),
            kind: if direct { ConversationType::Direct } else { ConversationType::Group },
            name: name.map(|n| ConversationName::parse("name", NAMES[usize::from(n)]).expect("pool name")),
            posting_id: posting.then(|| PostingId(Uuid::from_u128(0xB0))),
            created_by: user(by),
            participant_ids: match others {
                Others::Pool(indices) => indices.into_iter().map(user).collect(),
                Others::Bulk(n) => (0..i64::from(n)).map(|i| UserId::new(BULK_FIRST + i).expect("bulk user id")).collect(),
            },
        }),
        Op::Rename { by, name } => {
            C::Rename { by: user(by), name: ConversationName::parse("name", NAMES[usize::from(name)]).expect("pool name") }
        }
        Op::Archive { by } => C::Archive { by: user(by) },
        Op::Unarchive { by } => C::Unarchive { by: user(by) },
        Op::Add { by, user: u, role } => C::AddParticipant { by: user(by), user_id: target(u), role },
        Op::Remove { by, user: u } => C::RemoveParticipant { by: user(by), user_id: user(u) },
        Op::ChangeRole { by, user: u, role } => C::ChangeRole { by: user(by), user_id: user(u), role },
        Op::Settings { by, muted, notifications } => {
            C::ChangeSettings { by: user(by), is_muted: muted, notifications_enabled: notifications }
        }
        Op::Send { by, fresh, message, reply_to, image } => {
            let body = if image {
                MessageBody::parse(Some(MessageType::Image), None, Some("https://x.test/a.png".into()), None)
            } else {
                MessageBody::parse(None, Some(format!("message {step}")), None, None)
            };
            C::SendMessage {
                by: user(by),
                message_id: if fresh { MessageId(Uuid::from_u128(0x1_0000 + step as u128)) } else { message_id(message) },
                body: body.expect("valid body"),
                reply_to_id: reply_to.map(message_id),
            }
        }
        Op::Edit { by, message, blank } => C::EditMessage {
            by: user(by),
            message_id: message_id(message),
            content: if blank { "  ".into() } else { format!("edit {step}") },
        },
        Op::Delete { by, message } => C::DeleteMessage { by: user(by), message_id: message_id(message) },
        Op::React { by, message, emoji: e } => C::AddReaction {
            by: user(by),
            message_id: message_id(message),
            reaction_id: ReactionId(Uuid::from_u128(0x2000 + step as u128)),
            emoji: emoji(e),
        },
        Op::Unreact { by, reaction, message, emoji: e } => {
            let by = user(by);
            let (message_id, emoji) = reaction.and_then(|r| own_reaction(state, by, r)).unwrap_or_else(|| (message_id(message), emoji(e)));
            C::RemoveReaction { by, message_id, emoji }
        }
        Op::Read { by, message } => C::MarkRead { by: user(by), message_id: message_id(message) },
    }
}

/// The `index`-th (modulo their number) of `by`'s reactions, in message order.
fn own_reaction(state: &Conversation, by: UserId, index: u8) -> Option<(MessageId, Emoji)> {
    let c = state.details.as_ref()?;
    let mut own: Vec<(u64, MessageId, Emoji)> = c
        .messages
        .iter()
        .flat_map(|(id, m)| m.reactions.keys().filter(|(user, _)| *user == by).map(move |(_, emoji)| (m.seq, *id, emoji.clone())))
        .collect();
    own.sort();
    let count = own.len();
    (count > 0).then(|| own.swap_remove(usize::from(index) % count)).map(|(_, id, emoji)| (id, emoji))
}

/// Reactions as the events alone say they are: (message, user, emoji, id).
type ReactionModel = Vec<(MessageId, UserId, Emoji, ReactionId)>;

/// Runs `ops` through decide and evolve, checking every property after each
/// step; answers the final state and the accepted events in order.
pub(crate) fn run(ops: &[Op]) -> Result<(Conversation, Vec<ConversationEvent>), TestCaseError> {
    let mut state = Conversation::default();
    let mut history = Vec::new();
    let mut reactions = ReactionModel::new();
    for (step, op) in ops.iter().enumerate() {
        let command = command(op, step, &state);
        let before = state.clone();
        let decision = decide(&command, &state);
        prop_assert_eq!(&decision, &decide(&command, &state), "deciding is deterministic");
        check_precedence(&command, &state, &decision)?;
        let events = match decision {
            Err(_) => {
                prop_assert_eq!(&state, &before, "a refused command leaves the state as it was");
                continue;
            }
            Ok(events) => events,
        };
        if events.is_empty() {
            check_noop_answer(&command, &state)?;
        }
        for event in &events {
            check_event(event, &state, &mut reactions)?;
            let version = state.version;
            state = evolve(state, event);
            prop_assert_eq!(state.version, version + 1, "each event adds one to the stream version");
            check_invariants(&state)?;
            check_reactions_match_model(&state, &reactions)?;
        }
        if !events.is_empty() && !matches!(command, ConversationCommand::EditMessage { .. }) {
            let again = decide(&command, &state);
            prop_assert!(again.as_ref().map_or(true, Vec::is_empty), "{command:?} decided again on its own result gave {again:?}");
        }
        history.extend(events);
    }
    check_stored_form_rebuilds(&history, &state)?;
    Ok((state, history))
}

/// Any command but a creation, from someone who is not a participant (or on
/// a conversation that does not exist), is refused as not found.
fn check_precedence(
    command: &ConversationCommand,
    state: &Conversation,
    decision: &Result<Vec<ConversationEvent>, DomainError>,
) -> Result<(), TestCaseError> {
    match (command, &state.details) {
        (ConversationCommand::Create(_), Some(_)) => {
            prop_assert!(matches!(decision, Err(DomainError::Conflict(_))), "creating twice: {decision:?}");
        }
        (ConversationCommand::Create(_), None) => {}
        (_, None) => prop_assert_eq!(decision, &Err(DomainError::NotFound("conversation"))),
        (_, Some(c)) if !c.participants.contains_key(&command.actor()) => {
            prop_assert_eq!(decision, &Err(DomainError::NotFound("conversation")), "a non-participant learns nothing");
        }
        _ => {}
    }
    Ok(())
}

/// A command that changes nothing answers with a version the stream has, and
/// with the existing reaction only when it repeats one.
fn check_noop_answer(command: &ConversationCommand, state: &Conversation) -> Result<(), TestCaseError> {
    let version = version_answering_noop(command, state);
    prop_assert!(version >= 1 && version <= state.version, "no-op answers version {version} of {}", state.version);
    let repeats_reaction = matches!(command, ConversationCommand::AddReaction { .. });
    prop_assert_eq!(existing_reaction(command, state).is_some(), repeats_reaction, "{:?}", command);
    Ok(())
}

/// What an event may say, given the state it is decided on.
fn check_event(event: &ConversationEvent, state: &Conversation, reactions: &mut ReactionModel) -> Result<(), TestCaseError> {
    use ConversationEvent as E;
    let Some(c) = &state.details else {
        prop_assert!(matches!(event, E::ConversationCreated { .. }), "only a creation starts a stream: {event:?}");
        return Ok(());
    };
    prop_assert_eq!(event_conversation(event), c.id, "events stay in their stream");
    if c.archived {
        let allowed = match event {
            E::ConversationUnarchived { .. } | E::ParticipantSettingsChanged { .. } | E::MessagesRead { .. } => true,
            E::ParticipantRemoved { user_id, removed_by, .. } => user_id == removed_by,
            _ => false,
        };
        prop_assert!(allowed, "{event:?} in an archived conversation");
    }
    match event {
        E::ConversationCreated { .. } => prop_assert!(false, "created twice"),
        E::MessageSent { seq, message_id, .. } => {
            prop_assert_eq!(*seq, c.message_count + 1, "messages are numbered 1, 2, 3...");
            prop_assert!(!c.messages.contains_key(message_id), "a message id is used once");
        }
        E::MessageEdited { message_id, edited_by, .. } => {
            let message = c.messages.get(message_id);
            prop_assert!(message.is_some_and(|m| !m.deleted && m.sender_id == *edited_by), "edit of {message:?} by {edited_by}");
        }
        E::MessageDeleted { message_id, .. } => {
            prop_assert!(c.messages.get(message_id).is_some_and(|m| !m.deleted), "deleting a deleted or unknown message");
        }
        E::ReactionAdded { message_id, reaction_id, user_id, emoji, .. } => {
            prop_assert!(c.messages.get(message_id).is_some_and(|m| !m.deleted), "reaction on a deleted or unknown message");
            let duplicate = reactions.iter().any(|(m, u, e, _)| m == message_id && u == user_id && e == emoji);
            prop_assert!(!duplicate, "a second {emoji:?} of {user_id} on {message_id:?}");
            reactions.push((*message_id, *user_id, emoji.clone(), *reaction_id));
        }
        E::ReactionRemoved { message_id, reaction_id, user_id, emoji, .. } => {
            let found = reactions.iter().position(|(m, u, e, r)| m == message_id && u == user_id && e == emoji && r == reaction_id);
            prop_assert!(found.is_some(), "removing a reaction that is not there: {event:?}");
            if let Some(i) = found {
                reactions.swap_remove(i);
            }
        }
        E::MessagesRead { user_id, message_id, .. } => {
            let old = c.participants.get(user_id).and_then(|p| p.read_mark).map_or(0, |m| m.seq);
            let new = c.messages.get(message_id).map(|m| m.seq);
            prop_assert!(new.is_some_and(|new| new > old), "read mark moves from {old} to {new:?}");
        }
        E::ParticipantAdded { user_id, role, .. } => {
            prop_assert!(!c.participants.contains_key(user_id), "added twice");
            prop_assert_ne!(*role, Role::Owner, "a second OWNER added");
        }
        E::ParticipantRemoved { user_id, .. } => {
            prop_assert!(c.participants.get(user_id).is_some_and(|p| p.role != Role::Owner), "removing the OWNER or a non-member");
        }
        _ => {}
    }
    Ok(())
}

fn event_conversation(event: &ConversationEvent) -> ConversationId {
    use ConversationEvent as E;
    match event {
        E::ConversationCreated { conversation_id, .. }
        | E::ConversationRenamed { conversation_id, .. }
        | E::ConversationArchived { conversation_id, .. }
        | E::ConversationUnarchived { conversation_id, .. }
        | E::ParticipantAdded { conversation_id, .. }
        | E::ParticipantRemoved { conversation_id, .. }
        | E::ParticipantRoleChanged { conversation_id, .. }
        | E::OwnershipTransferred { conversation_id, .. }
        | E::ParticipantSettingsChanged { conversation_id, .. }
        | E::MessageSent { conversation_id, .. }
        | E::MessageEdited { conversation_id, .. }
        | E::MessageDeleted { conversation_id, .. }
        | E::ReactionAdded { conversation_id, .. }
        | E::ReactionRemoved { conversation_id, .. }
        | E::MessagesRead { conversation_id, .. } => *conversation_id,
    }
}

/// What holds of every state.
fn check_invariants(state: &Conversation) -> Result<(), TestCaseError> {
    let Some(c) = &state.details else {
        prop_assert_eq!(state.version, 0, "events without a creation");
        return Ok(());
    };
    let owners = c.participants.values().filter(|p| p.role == Role::Owner).count();
    prop_assert_eq!(owners, 1, "exactly one OWNER: {:?}", c.participants);
    prop_assert!(!c.participants.is_empty() && c.participants.len() <= MAX_PARTICIPANTS, "{} participants", c.participants.len());
    if c.kind == ConversationType::Direct {
        prop_assert_eq!(c.participants.len(), 2, "a DIRECT has two participants");
        prop_assert!(c.name.is_none(), "a DIRECT has no name");
    }
    let seqs: BTreeSet<u64> = c.messages.values().map(|m| m.seq).collect();
    prop_assert_eq!(seqs.len(), c.messages.len(), "one seq per message");
    prop_assert!(seqs.iter().copied().eq(1..=c.message_count), "seqs are 1..={}: {:?}", c.message_count, seqs);
    for (user, p) in &c.participants {
        if let Some(mark) = p.read_mark {
            let message = c.messages.get(&mark.message_id);
            prop_assert!(message.is_some_and(|m| m.seq == mark.seq), "{user}'s mark {mark:?} is not a message's seq");
            prop_assert!(mark.set_at_version <= state.version, "mark set in the future");
        }
    }
    for m in c.messages.values() {
        for r in m.reactions.values() {
            prop_assert!(r.added_at_version >= 1 && r.added_at_version <= state.version, "reaction added at {}", r.added_at_version);
        }
    }
    Ok(())
}

/// The state's reactions are exactly those the events added and did not remove.
fn check_reactions_match_model(state: &Conversation, model: &ReactionModel) -> Result<(), TestCaseError> {
    let Some(c) = &state.details else { return Ok(()) };
    let mut in_state: Vec<_> = c
        .messages
        .iter()
        .flat_map(|(id, m)| m.reactions.iter().map(move |((user, emoji), r)| (*id, *user, emoji.clone(), r.reaction_id)))
        .collect();
    let mut in_model = model.clone();
    in_state.sort();
    in_model.sort();
    prop_assert_eq!(in_state, in_model);
    Ok(())
}

/// Every event written to the log's columns and read back is the same event,
/// and folding what the log holds rebuilds the same state.
fn check_stored_form_rebuilds(history: &[ConversationEvent], state: &Conversation) -> Result<(), TestCaseError> {
    use crate::event_store::{decode_payload, EventMetadata, NewEvent};
    let metadata = EventMetadata { user_id: Some(1), correlation_id: "c".into(), causation_id: "c".into(), idempotency_key: None };
    let mut rebuilt = Conversation::default();
    for event in history {
        let stored = NewEvent::from_payload(event, &metadata).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(stored.schema_version, event.schema_version());
        let back: ConversationEvent =
            decode_payload(stored.event_type, stored.schema_version, &stored.data).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&back, event);
        rebuilt = evolve(rebuilt, &back);
    }
    prop_assert_eq!(&rebuilt, state, "the log rebuilds the state");
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn every_history_keeps_the_conversation_rules(ops in command_sequences()) {
        run(&ops)?;
    }
}

/// The generator reaches the states the properties are about (otherwise they
/// would hold vacuously).
#[test]
fn histories_reach_interesting_states() {
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let (mut messages, mut reactions, mut archived, mut transfers, mut full, mut directs) = (0, 0, 0, 0, 0, 0);
    for _ in 0..300 {
        let ops = command_sequences().new_tree(&mut runner).expect("a history").current();
        let (state, history) = run(&ops).expect("properties hold");
        messages += history.iter().filter(|e| matches!(e, ConversationEvent::MessageSent { .. })).count();
        reactions += history.iter().filter(|e| matches!(e, ConversationEvent::ReactionRemoved { .. })).count();
        archived += history.iter().filter(|e| matches!(e, ConversationEvent::ConversationUnarchived { .. })).count();
        transfers += history.iter().filter(|e| matches!(e, ConversationEvent::OwnershipTransferred { .. })).count();
        if let Some(c) = &state.details {
            full += usize::from(c.participants.len() == MAX_PARTICIPANTS);
            directs += usize::from(c.kind == ConversationType::Direct);
        }
    }
    for (what, n) in [
        ("messages", messages),
        ("removed reactions", reactions),
        ("unarchivings", archived),
        ("transfers", transfers),
        ("full groups", full),
        ("directs", directs),
    ] {
        assert!(n > 0, "no {what} in 300 histories");
    }
}
