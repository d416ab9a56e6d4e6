//! Who is in a conversation at a given log position. The read models give
//! the members at their checkpoint C (read in one consistent snapshot); the
//! membership events of the log between the wanted position and C are then
//! undone, newest first.

use std::collections::{HashMap, HashSet};

use sqlx::{MySql, MySqlPool, QueryBuilder};

use crate::domain::conversation::ConversationEvent;
use crate::domain::UserId;
use crate::event_store::{StoreError, StoredEvent, EVENT_COLUMNS};
use crate::projections::CHECKPOINT;

/// Members of each of `conversations` just after the event at `position`.
pub async fn members_at(pool: &MySqlPool, conversations: &[String], position: u64) -> Result<HashMap<String, HashSet<UserId>>, StoreError> {
    let mut out: HashMap<String, HashSet<UserId>> = conversations.iter().map(|c| (c.clone(), HashSet::new())).collect();
    if conversations.is_empty() {
        return Ok(out);
    }
    let mut tx = pool.begin().await?;
    let checkpoint: Option<u64> =
        sqlx::query_scalar("SELECT position FROM projection_checkpoints WHERE name = ?").bind(CHECKPOINT).fetch_optional(&mut *tx).await?;
    let checkpoint = checkpoint.unwrap_or(0);
    let mut q = QueryBuilder::<MySql>::new("SELECT conversation_id, user_id FROM CONVERSATION_PARTICIPANTS WHERE conversation_id IN (");
    let mut list = q.separated(", ");
    for c in conversations {
        list.push_bind(c.as_str());
    }
    q.push(")");
    let rows: Vec<(String, i32)> = q.build_query_as().persistent(false).fetch_all(&mut *tx).await?;
    tx.commit().await?;
    for (conversation, user) in rows {
        if let (Some(set), Some(user)) = (out.get_mut(&conversation), UserId::new(i64::from(user))) {
            set.insert(user);
        }
    }
    if checkpoint > position {
        for event in membership_events(pool, conversations, position, checkpoint).await?.iter().rev() {
            if let (Some(set), Ok(decoded)) = (out.get_mut(&event.stream_id), event.decode::<ConversationEvent>()) {
                undo(set, &decoded);
            }
        }
    }
    Ok(out)
}

/// Applies a membership change to a member set (in log order).
pub fn apply(members: &mut HashSet<UserId>, event: &ConversationEvent) {
    match event {
        ConversationEvent::ConversationCreated { participants, .. } => members.extend(participants.iter().map(|p| p.user_id)),
        ConversationEvent::ParticipantAdded { user_id, .. } => {
            members.insert(*user_id);
        }
        ConversationEvent::ParticipantRemoved { user_id, .. } => {
            members.remove(user_id);
        }
        _ => {}
    }
}

fn undo(members: &mut HashSet<UserId>, event: &ConversationEvent) {
    match event {
        ConversationEvent::ConversationCreated { .. } => members.clear(),
        ConversationEvent::ParticipantAdded { user_id, .. } => {
            members.remove(user_id);
        }
        ConversationEvent::ParticipantRemoved { user_id, .. } => {
            members.insert(*user_id);
        }
        _ => {}
    }
}

/// Membership events of `conversations` in (after, until], in position order.
pub async fn membership_events(pool: &MySqlPool, conversations: &[String], after: u64, until: u64) -> Result<Vec<StoredEvent>, StoreError> {
    let mut q = QueryBuilder::<MySql>::new(format!("SELECT {EVENT_COLUMNS} FROM event_log WHERE position > "));
    q.push_bind(after).push(" AND position <= ").push_bind(until);
    q.push(" AND stream_type = 'conversation' AND event_type IN ('ConversationCreated', 'ParticipantAdded', 'ParticipantRemoved') AND stream_id IN (");
    let mut list = q.separated(", ");
    for c in conversations {
        list.push_bind(c.as_str());
    }
    q.push(") ORDER BY position");
    let rows: Vec<StoredEvent> = q.build_query_as().persistent(false).fetch_all(pool).await?;
    rows.into_iter().map(StoredEvent::upcast).collect()
}
