//! Resume: the frames a user would have received for events in (after, until].

use std::collections::HashSet;

use sqlx::{MySql, MySqlPool, QueryBuilder};

use super::membership;
use super::routing::route;
use super::Frame;
use crate::domain::conversation::ConversationEvent;
use crate::domain::UserId;
use crate::event_store::{StoreError, StoredEvent, EVENT_COLUMNS};

/// Most events a resume replays; a client further behind should re-read the
/// conversations with the query API, then connect without `after_position`.
pub const MAX_REPLAY: u64 = 100_000;

/// Frames for `user` in (after, until], in log order.
pub async fn frames_for(pool: &MySqlPool, user: UserId, after: u64, until: u64) -> Result<Vec<Frame>, StoreError> {
    if until <= after {
        return Ok(Vec::new());
    }
    let conversations = candidate_conversations(pool, user, after).await?;
    if conversations.is_empty() {
        return Ok(Vec::new());
    }
    let mut members = membership::members_at(pool, &conversations, after).await?;
    let events = events_of(pool, &conversations, after, until).await?;
    let routed = route(pool, &events, &mut members, &|u| u == user).await?;
    Ok(routed.iter().filter_map(|r| r.frame_for(user).cloned()).collect())
}

/// Conversations the user is in now, or left or was removed from since `after`.
async fn candidate_conversations(pool: &MySqlPool, user: UserId, after: u64) -> Result<Vec<String>, StoreError> {
    let mut set: HashSet<String> = sqlx::query_scalar("SELECT conversation_id FROM CONVERSATION_PARTICIPANTS WHERE user_id = ?")
        .bind(user.get())
        .fetch_all(pool)
        .await?
        .into_iter()
        .collect();
    let removed: Vec<StoredEvent> = sqlx::query_as(&format!(
        "SELECT {EVENT_COLUMNS} FROM event_log WHERE position > ? AND event_type = 'ParticipantRemoved' ORDER BY position"
    ))
    .bind(after)
    .fetch_all(pool)
    .await?;
    for event in removed {
        if let Ok(ConversationEvent::ParticipantRemoved { user_id, .. }) = event.decode::<ConversationEvent>() {
            if user_id == user {
                set.insert(event.stream_id);
            }
        }
    }
    Ok(set.into_iter().collect())
}

async fn events_of(pool: &MySqlPool, conversations: &[String], after: u64, until: u64) -> Result<Vec<StoredEvent>, StoreError> {
    let mut q = QueryBuilder::<MySql>::new(format!("SELECT {EVENT_COLUMNS} FROM event_log WHERE position > "));
    q.push_bind(after).push(" AND position <= ").push_bind(until.min(after.saturating_add(MAX_REPLAY)));
    q.push(" AND stream_type = 'conversation' AND stream_id IN (");
    let mut list = q.separated(", ");
    for c in conversations {
        list.push_bind(c.as_str());
    }
    q.push(") ORDER BY position");
    let rows: Vec<StoredEvent> = q.build_query_as().persistent(false).fetch_all(pool).await?;
    rows.into_iter().map(StoredEvent::upcast).collect()
}
