//! Given/when/then tests of every conversation rule in API.md.

use super::*;
use crate::domain::values::{ConversationName, ConversationType, Emoji, MessageBody, Role};
use crate::domain::{ConversationId, DomainError, MessageId, PostingId, ReactionId, UserId};

const OWNER: i64 = 1;
const ALICE: i64 = 2;
const BOB: i64 = 3;
const STRANGER: i64 = 9;

fn user(id: i64) -> UserId {
    UserId::new(id).expect("test user id")
}

/// A scenario: the events that already happened.
struct Given {
    state: Conversation,
}

fn given(events: &[ConversationEvent]) -> Given {
    Given { state: events.iter().fold(Conversation::default(), evolve) }
}

impl Given {
    fn when(&self, command: ConversationCommand) -> Result<Vec<ConversationEvent>, DomainError> {
        decide(&command, &self.state)
    }
}

fn id() -> ConversationId {
    ConversationId(uuid::Uuid::from_u128(7))
}

fn created(kind: ConversationType, members: &[(i64, Role)]) -> ConversationEvent {
    ConversationEvent::ConversationCreated {
        conversation_id: id(),
        kind,
        name: (kind == ConversationType::Group).then(|| "team".to_owned()),
        posting_id: None,
        created_by: user(members[0].0),
        participants: members.iter().map(|(u, role)| InitialParticipant { user_id: user(*u), role: *role }).collect(),
    }
}

fn group() -> ConversationEvent {
    created(ConversationType::Group, &[(OWNER, Role::Owner), (ALICE, Role::Admin), (BOB, Role::Member)])
}

fn direct() -> ConversationEvent {
    created(ConversationType::Direct, &[(OWNER, Role::Owner), (BOB, Role::Member)])
}

fn archived() -> ConversationEvent {
    ConversationEvent::ConversationArchived { conversation_id: id(), archived_by: user(OWNER) }
}

fn msg(n: u128) -> MessageId {
    MessageId(uuid::Uuid::from_u128(1000 + n))
}

fn sent(n: u128, by: i64, seq: u64) -> ConversationEvent {
    ConversationEvent::MessageSent {
        conversation_id: id(),
        message_id: msg(n),
        sender_id: user(by),
        seq,
        message_type: crate::domain::values::MessageType::Text,
        content: Some(format!("message {n}")),
        media_url: None,
        media_metadata: None,
        reply_to_id: None,
    }
}

fn text(s: &str) -> MessageBody {
    MessageBody::parse(None, Some(s.to_owned()), None, None).expect("valid body")
}

fn emoji(s: &str) -> Emoji {
    Emoji::parse(s).expect("valid emoji")
}

fn send(by: i64, n: u128) -> ConversationCommand {
    ConversationCommand::SendMessage { by: user(by), message_id: msg(n), body: text("hi"), reply_to_id: None }
}

fn create(kind: ConversationType, by: i64, others: &[i64]) -> ConversationCommand {
    ConversationCommand::Create(CreateConversation {
        conversation_id: id(),
        kind,
        name: None,
        posting_id: None,
        created_by: user(by),
        participant_ids: others.iter().map(|u| user(*u)).collect(),
    })
}

fn conflict(result: Result<Vec<ConversationEvent>, DomainError>) -> bool {
    matches!(result, Err(DomainError::Conflict(_)))
}

fn forbidden(result: Result<Vec<ConversationEvent>, DomainError>) -> bool {
    matches!(result, Err(DomainError::Forbidden(_)))
}

fn invalid(result: Result<Vec<ConversationEvent>, DomainError>, field: &str) -> bool {
    matches!(&result, Err(DomainError::Invalid(errors)) if errors[0].field == field)
}

// --- creation -------------------------------------------------------------

#[test]
fn creator_becomes_owner_and_listed_users_members() {
    let events = given(&[]).when(create(ConversationType::Group, OWNER, &[ALICE, BOB, ALICE])).unwrap();
    let ConversationEvent::ConversationCreated { participants, .. } = &events[0] else { panic!("{events:?}") };
    let roles: Vec<_> = participants.iter().map(|p| (p.user_id.get(), p.role)).collect();
    assert_eq!(roles, vec![(1, Role::Owner), (2, Role::Member), (3, Role::Member)]);
}

#[test]
fn creator_listing_themselves_is_not_a_second_member() {
    let events = given(&[]).when(create(ConversationType::Direct, OWNER, &[OWNER, BOB])).unwrap();
    let ConversationEvent::ConversationCreated { participants, .. } = &events[0] else { panic!() };
    assert_eq!(participants.len(), 2);
}

#[test]
fn direct_needs_exactly_one_other_user() {
    assert!(invalid(given(&[]).when(create(ConversationType::Direct, OWNER, &[])), "participant_ids"));
    assert!(invalid(given(&[]).when(create(ConversationType::Direct, OWNER, &[OWNER])), "participant_ids"));
    assert!(invalid(given(&[]).when(create(ConversationType::Direct, OWNER, &[ALICE, BOB])), "participant_ids"));
}

#[test]
fn direct_has_no_name() {
    let ConversationCommand::Create(mut c) = create(ConversationType::Direct, OWNER, &[BOB]) else { unreachable!() };
    c.name = Some(ConversationName::parse("name", "x").unwrap());
    assert!(invalid(given(&[]).when(ConversationCommand::Create(c)), "name"));
}

#[test]
fn group_has_at_most_a_thousand_participants() {
    let others: Vec<i64> = (2..=1000).collect();
    assert!(given(&[]).when(create(ConversationType::Group, OWNER, &others)).is_ok());
    let others: Vec<i64> = (2..=1001).collect();
    assert!(invalid(given(&[]).when(create(ConversationType::Group, OWNER, &others)), "participant_ids"));
}

#[test]
fn direct_key_ignores_order_and_counts_no_posting_as_a_value() {
    let posting = PostingId(uuid::Uuid::from_u128(5));
    assert_eq!(direct_key(user(1), user(2), None), direct_key(user(2), user(1), None));
    assert_ne!(direct_key(user(1), user(2), None), direct_key(user(1), user(2), Some(posting)));
}

#[test]
fn a_conversation_is_created_once() {
    assert!(conflict(given(&[group()]).when(create(ConversationType::Group, OWNER, &[]))));
}

// --- who may act ----------------------------------------------------------

#[test]
fn non_participants_and_missing_conversations_are_not_found() {
    assert_eq!(given(&[]).when(send(OWNER, 1)), Err(DomainError::NotFound("conversation")));
    assert_eq!(given(&[group()]).when(send(STRANGER, 1)), Err(DomainError::NotFound("conversation")));
}

#[test]
fn only_owner_and_admin_rename_a_group() {
    let name = || ConversationName::parse("name", "new").unwrap();
    assert!(given(&[group()]).when(ConversationCommand::Rename { by: user(ALICE), name: name() }).is_ok());
    assert!(forbidden(given(&[group()]).when(ConversationCommand::Rename { by: user(BOB), name: name() })));
    assert!(conflict(given(&[direct()]).when(ConversationCommand::Rename { by: user(OWNER), name: name() })));
}

#[test]
fn renaming_to_the_same_name_changes_nothing() {
    let same = ConversationName::parse("name", "team").unwrap();
    assert_eq!(given(&[group()]).when(ConversationCommand::Rename { by: user(OWNER), name: same }), Ok(vec![]));
}

// --- archive --------------------------------------------------------------

#[test]
fn either_direct_participant_archives_but_only_group_managers() {
    assert!(given(&[direct()]).when(ConversationCommand::Archive { by: user(BOB) }).is_ok());
    assert!(forbidden(given(&[group()]).when(ConversationCommand::Archive { by: user(BOB) })));
    assert!(given(&[group()]).when(ConversationCommand::Archive { by: user(ALICE) }).is_ok());
}

#[test]
fn archived_conversations_refuse_writes_but_allow_unarchive_read_leave_and_settings() {
    let history = [group(), sent(1, BOB, 1), archived()];
    let g = given(&history);
    assert!(conflict(g.when(send(OWNER, 2))));
    assert!(conflict(g.when(ConversationCommand::Archive { by: user(OWNER) })));
    assert!(conflict(g.when(ConversationCommand::AddParticipant { by: user(OWNER), user_id: user(STRANGER), role: Role::Member })));
    assert!(g.when(ConversationCommand::MarkRead { by: user(OWNER), message_id: msg(1) }).is_ok());
    assert!(g.when(ConversationCommand::RemoveParticipant { by: user(BOB), user_id: user(BOB) }).is_ok());
    assert!(g.when(ConversationCommand::ChangeSettings { by: user(BOB), is_muted: Some(true), notifications_enabled: None }).is_ok());
    assert!(g.when(ConversationCommand::Unarchive { by: user(OWNER) }).is_ok());
}

#[test]
fn unarchiving_an_active_conversation_is_a_conflict() {
    assert!(conflict(given(&[group()]).when(ConversationCommand::Unarchive { by: user(OWNER) })));
}

// --- membership -----------------------------------------------------------

#[test]
fn managers_add_participants_as_member_by_default() {
    let events = given(&[group()])
        .when(ConversationCommand::AddParticipant { by: user(ALICE), user_id: user(STRANGER), role: Role::Member })
        .unwrap();
    assert!(matches!(events[0], ConversationEvent::ParticipantAdded { role: Role::Member, .. }));
    let by_member = ConversationCommand::AddParticipant { by: user(BOB), user_id: user(STRANGER), role: Role::Member };
    assert!(forbidden(given(&[group()]).when(by_member)));
}

#[test]
fn adding_an_existing_participant_is_a_conflict() {
    let again = ConversationCommand::AddParticipant { by: user(OWNER), user_id: user(BOB), role: Role::Member };
    assert!(conflict(given(&[group()]).when(again)));
}

#[test]
fn the_thousand_and_first_participant_is_a_conflict() {
    let mut members = vec![(OWNER, Role::Owner)];
    members.extend((2..=1000).map(|u| (u, Role::Member)));
    let full = created(ConversationType::Group, &members);
    let add = ConversationCommand::AddParticipant { by: user(OWNER), user_id: user(5000), role: Role::Member };
    assert!(conflict(given(&[full]).when(add)));
}

#[test]
fn direct_membership_is_fixed() {
    let add = ConversationCommand::AddParticipant { by: user(OWNER), user_id: user(ALICE), role: Role::Member };
    assert!(conflict(given(&[direct()]).when(add)));
    let leave = ConversationCommand::RemoveParticipant { by: user(BOB), user_id: user(BOB) };
    assert!(conflict(given(&[direct()]).when(leave)));
}

#[test]
fn members_leave_but_cannot_remove_others() {
    let leave = ConversationCommand::RemoveParticipant { by: user(BOB), user_id: user(BOB) };
    assert!(given(&[group()]).when(leave).is_ok());
    let kick = ConversationCommand::RemoveParticipant { by: user(BOB), user_id: user(ALICE) };
    assert!(forbidden(given(&[group()]).when(kick)));
    let kick = ConversationCommand::RemoveParticipant { by: user(ALICE), user_id: user(BOB) };
    assert!(given(&[group()]).when(kick).is_ok());
}

#[test]
fn the_owner_can_neither_be_removed_nor_leave() {
    let kick = ConversationCommand::RemoveParticipant { by: user(ALICE), user_id: user(OWNER) };
    assert!(conflict(given(&[group()]).when(kick)));
    let leave = ConversationCommand::RemoveParticipant { by: user(OWNER), user_id: user(OWNER) };
    assert!(conflict(given(&[group()]).when(leave)));
}

#[test]
fn removing_a_non_participant_is_not_found() {
    let kick = ConversationCommand::RemoveParticipant { by: user(OWNER), user_id: user(STRANGER) };
    assert_eq!(given(&[group()]).when(kick), Err(DomainError::NotFound("participant")));
}

// --- roles ----------------------------------------------------------------

#[test]
fn only_the_owner_changes_roles() {
    let promote = ConversationCommand::ChangeRole { by: user(ALICE), user_id: user(BOB), role: Role::Admin };
    assert!(forbidden(given(&[group()]).when(promote)));
    let promote = ConversationCommand::ChangeRole { by: user(OWNER), user_id: user(BOB), role: Role::Admin };
    assert!(matches!(given(&[group()]).when(promote).unwrap()[0], ConversationEvent::ParticipantRoleChanged { role: Role::Admin, .. }));
}

#[test]
fn making_someone_owner_transfers_ownership() {
    let transfer = ConversationCommand::ChangeRole { by: user(OWNER), user_id: user(BOB), role: Role::Owner };
    let events = given(&[group()]).when(transfer).unwrap();
    let after = events.iter().fold(given(&[group()]).state, evolve);
    let c = after.details.unwrap();
    assert_eq!(c.participants[&user(BOB)].role, Role::Owner);
    assert_eq!(c.participants[&user(OWNER)].role, Role::Admin);
    assert_eq!(c.participants.values().filter(|p| p.role == Role::Owner).count(), 1);
}

#[test]
fn the_owner_cannot_demote_themselves() {
    let demote = ConversationCommand::ChangeRole { by: user(OWNER), user_id: user(OWNER), role: Role::Member };
    assert!(conflict(given(&[group()]).when(demote)));
}

#[test]
fn direct_roles_are_fixed() {
    let promote = ConversationCommand::ChangeRole { by: user(OWNER), user_id: user(BOB), role: Role::Admin };
    assert!(conflict(given(&[direct()]).when(promote)));
}

// --- own settings ---------------------------------------------------------

#[test]
fn settings_change_only_what_is_given() {
    let mute = ConversationCommand::ChangeSettings { by: user(BOB), is_muted: Some(true), notifications_enabled: None };
    let events = given(&[group()]).when(mute.clone()).unwrap();
    assert_eq!(
        events,
        vec![ConversationEvent::ParticipantSettingsChanged {
            conversation_id: id(),
            user_id: user(BOB),
            is_muted: true,
            notifications_enabled: true
        }]
    );
    let after = [group(), events[0].clone()];
    assert_eq!(given(&after).when(mute), Ok(vec![]));
}

// --- messages -------------------------------------------------------------

#[test]
fn messages_are_numbered_in_send_order() {
    let events = given(&[group(), sent(1, BOB, 1)]).when(send(ALICE, 2)).unwrap();
    assert!(matches!(events[0], ConversationEvent::MessageSent { seq: 2, .. }));
}

#[test]
fn replies_must_point_into_the_same_conversation() {
    let reply = |to| ConversationCommand::SendMessage { by: user(BOB), message_id: msg(9), body: text("re"), reply_to_id: Some(to) };
    assert!(given(&[group(), sent(1, BOB, 1)]).when(reply(msg(1))).is_ok());
    assert!(invalid(given(&[group(), sent(1, BOB, 1)]).when(reply(msg(2))), "reply_to_id"));
}

#[test]
fn only_the_sender_edits() {
    let edit = |by| ConversationCommand::EditMessage { by: user(by), message_id: msg(1), content: "new".into() };
    assert!(given(&[group(), sent(1, BOB, 1)]).when(edit(BOB)).is_ok());
    assert!(forbidden(given(&[group(), sent(1, BOB, 1)]).when(edit(OWNER))));
}

#[test]
fn editing_to_blank_text_is_invalid() {
    let edit = ConversationCommand::EditMessage { by: user(BOB), message_id: msg(1), content: " ".into() };
    assert!(invalid(given(&[group(), sent(1, BOB, 1)]).when(edit), "content"));
}

#[test]
fn sender_or_managers_delete() {
    let delete = |by| ConversationCommand::DeleteMessage { by: user(by), message_id: msg(1) };
    let history = [group(), sent(1, BOB, 1), sent(2, ALICE, 2)];
    assert!(given(&history).when(delete(BOB)).is_ok());
    assert!(given(&history).when(delete(ALICE)).is_ok());
    let others = ConversationCommand::DeleteMessage { by: user(BOB), message_id: msg(2) };
    assert!(forbidden(given(&history).when(others)));
}

#[test]
fn deleted_messages_cannot_be_edited_deleted_or_reacted_to() {
    let deleted = ConversationEvent::MessageDeleted { conversation_id: id(), message_id: msg(1), deleted_by: user(BOB) };
    let g = given(&[group(), sent(1, BOB, 1), deleted]);
    assert!(conflict(g.when(ConversationCommand::EditMessage { by: user(BOB), message_id: msg(1), content: "x".into() })));
    assert!(conflict(g.when(ConversationCommand::DeleteMessage { by: user(BOB), message_id: msg(1) })));
    let react =
        ConversationCommand::AddReaction { by: user(BOB), message_id: msg(1), reaction_id: ReactionId::new(), emoji: emoji("👍") };
    assert!(conflict(g.when(react)));
}

#[test]
fn unknown_messages_are_not_found() {
    let edit = ConversationCommand::EditMessage { by: user(BOB), message_id: msg(5), content: "x".into() };
    assert_eq!(given(&[group()]).when(edit), Err(DomainError::NotFound("message")));
}

// --- reactions ------------------------------------------------------------

#[test]
fn a_repeated_reaction_adds_nothing_and_answers_the_first_version() {
    let first = ReactionId::new();
    let react = |reaction_id| ConversationCommand::AddReaction { by: user(BOB), message_id: msg(1), reaction_id, emoji: emoji("👍") };
    let g = given(&[group(), sent(1, BOB, 1)]);
    let events = g.when(react(first)).unwrap();
    let after: Vec<_> = [group(), sent(1, BOB, 1)].into_iter().chain(events).chain([sent(2, BOB, 2)]).collect();
    let g = given(&after);
    let again = react(ReactionId::new());
    assert_eq!(g.when(again.clone()), Ok(vec![]));
    assert_eq!(version_answering_noop(&again, &g.state), 3);
}

#[test]
fn the_same_emoji_from_two_users_is_two_reactions() {
    let added = ConversationEvent::ReactionAdded {
        conversation_id: id(),
        message_id: msg(1),
        reaction_id: ReactionId::new(),
        user_id: user(BOB),
        emoji: emoji("👍"),
    };
    let react =
        ConversationCommand::AddReaction { by: user(ALICE), message_id: msg(1), reaction_id: ReactionId::new(), emoji: emoji("👍") };
    assert_eq!(given(&[group(), sent(1, BOB, 1), added]).when(react).map(|e| e.len()), Ok(1));
}

#[test]
fn removing_an_absent_reaction_is_not_found() {
    let remove = ConversationCommand::RemoveReaction { by: user(BOB), message_id: msg(1), emoji: emoji("👍") };
    assert_eq!(given(&[group(), sent(1, BOB, 1)]).when(remove), Err(DomainError::NotFound("reaction")));
}

#[test]
fn removing_a_reaction_names_the_one_added() {
    let reaction_id = ReactionId::new();
    let added =
        ConversationEvent::ReactionAdded {
            conversation_id: id(), message_id: msg(1), reaction_id, user_id: user(BOB), emoji: emoji("👍")
        };
    let remove = ConversationCommand::RemoveReaction { by: user(BOB), message_id: msg(1), emoji: emoji("👍") };
    let events = given(&[group(), sent(1, BOB, 1), added]).when(remove).unwrap();
    assert!(matches!(events[0], ConversationEvent::ReactionRemoved { reaction_id: r, .. } if r == reaction_id));
}

// --- read marks -----------------------------------------------------------

#[test]
fn read_marks_only_move_forward() {
    let read = |n| ConversationCommand::MarkRead { by: user(BOB), message_id: msg(n) };
    let history = [group(), sent(1, OWNER, 1), sent(2, OWNER, 2)];
    let events = given(&history).when(read(2)).unwrap();
    let after: Vec<_> = history.into_iter().chain(events).collect();
    assert_eq!(given(&after).when(read(1)), Ok(vec![]));
    assert_eq!(given(&after).when(read(2)), Ok(vec![]));
}

#[test]
fn read_marks_must_name_a_message_of_this_conversation() {
    let read = ConversationCommand::MarkRead { by: user(BOB), message_id: msg(42) };
    assert!(invalid(given(&[group()]).when(read), "message_id"));
}

#[test]
fn every_event_advances_the_version() {
    let g = given(&[group(), sent(1, BOB, 1), archived()]);
    assert_eq!(g.state.version, 3);
}
