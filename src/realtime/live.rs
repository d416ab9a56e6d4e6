//! Typing and presence across processes, carried on NATS core: never in the
//! event log, never in JetStream. Subjects (`<live prefix>` is the events'
//! subject prefix with `.events` replaced by `.live`, e.g. `chat.live`):
//! - `<live prefix>.typing.<conversation id>`: raw `TypingSignal`s, published by
//!   the process that took the client's signal. Every API process receives
//!   them, coalesces them (`typing.rs`) and pushes `typing` to the
//!   participants connected to it.
//! - `<live prefix>.presence`: each process's `Announcement`s (`presence.rs`).
//!   Every process folds them into its `PresenceBook` and pushes `presence`
//!   to the connected contacts of the users whose status changed.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::{MySql, MySqlPool, QueryBuilder};
use tokio_util::sync::CancellationToken;

use super::presence::{Announcement, LocalAnnouncer, Presence, PresenceBook, FLUSH_EVERY, HEARTBEAT_EVERY};
use super::typing::{TypingCoalescer, TypingPush, TypingSignal};
use super::Hub;
use crate::domain::UserId;

/// Why a live signal could not be sent or followed.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    #[error("cannot subscribe on NATS: {0}")]
    Subscribe(#[from] async_nats::SubscribeError),
    #[error("cannot publish on NATS: {0}")]
    Publish(#[from] async_nats::PublishError),
}

/// The live-signal subject prefix for an events subject prefix.
pub fn live_prefix(events_prefix: &str) -> String {
    match events_prefix.strip_suffix(".events") {
        Some(base) => format!("{base}.live"),
        // Never under the events prefix: the stream would capture it.
        None => format!("{events_prefix}_live"),
    }
}

/// An announcement as sent: stamped with the sender's wall clock, so that
/// every process records the same `last_seen_at` for a user who left.
#[derive(Serialize, Deserialize)]
struct Stamped {
    at: chrono::DateTime<chrono::Utc>,
    #[serde(flatten)]
    announcement: Announcement,
}

/// Handle on this process's typing and presence (cheap to clone).
#[derive(Clone)]
pub struct LiveSignals {
    nats: async_nats::Client,
    prefix: Arc<str>,
    book: Arc<Mutex<PresenceBook>>,
}

impl LiveSignals {
    /// Subscribes to the live subjects and starts pushing to `hub`'s connections.
    pub async fn start(
        nats: async_nats::Client,
        events_prefix: &str,
        hub: Hub,
        pool: MySqlPool,
        shutdown: CancellationToken,
    ) -> Result<Self, LiveError> {
        let prefix: Arc<str> = live_prefix(events_prefix).into();
        let typing = nats.subscribe(format!("{prefix}.typing.*")).await?;
        let presence = nats.subscribe(format!("{prefix}.presence")).await?;
        let live = Self { nats, prefix, book: Arc::default() };
        tokio::spawn(follow_typing(typing, hub.clone(), pool.clone(), shutdown.clone()));
        tokio::spawn(live.clone().follow_presence(presence, hub, pool, shutdown));
        Ok(live)
    }

    /// Sends a client's typing signal to every process.
    pub async fn publish_typing(&self, signal: &TypingSignal) -> Result<(), LiveError> {
        let payload = serde_json::to_vec(signal).unwrap_or_default();
        self.nats.publish(format!("{}.typing.{}", self.prefix, signal.conversation_id), payload.into()).await?;
        Ok(())
    }

    /// The presence of `users` as this process knows it now.
    pub fn presence(&self, users: &[UserId]) -> Vec<Presence> {
        let book = self.book.lock().unwrap_or_else(PoisonError::into_inner);
        let now = chrono::Utc::now();
        users.iter().map(|user| book.presence(*user, now)).collect()
    }

    async fn announce(&self, announcement: &Announcement) {
        let stamped = Stamped { at: chrono::Utc::now(), announcement: announcement.clone() };
        let payload = serde_json::to_vec(&stamped).unwrap_or_default();
        if let Err(error) = self.nats.publish(format!("{}.presence", self.prefix), payload.into()).await {
            tracing::debug!(%error, "presence announcement not sent");
        }
    }

    /// Announces this process's connections, folds every process's
    /// announcements, and pushes the changes to the contacts connected here.
    async fn follow_presence(self, mut announcements: async_nats::Subscriber, hub: Hub, pool: MySqlPool, shutdown: CancellationToken) {
        let process = uuid::Uuid::now_v7().to_string();
        let mut local = LocalAnnouncer::default();
        self.announce(&Announcement::Sync { process: process.clone() }).await;
        self.announce(&local.heartbeat(&process, HashSet::new())).await;
        let mut flush = tokio::time::interval(FLUSH_EVERY);
        let mut last_heartbeat = Instant::now();
        loop {
            tokio::select! {
                message = announcements.next() => {
                    let Some(message) = message else { return };
                    let Ok(Stamped { at, announcement }) = serde_json::from_slice::<Stamped>(&message.payload) else { continue };
                    if matches!(&announcement, Announcement::Sync { process: from } if *from != process) {
                        // A new process: it learns who is here without waiting for the next heartbeat.
                        self.announce(&local.heartbeat(&process, hub.connected_users())).await;
                        last_heartbeat = Instant::now();
                    }
                    self.book.lock().unwrap_or_else(PoisonError::into_inner).apply(announcement, Instant::now(), at);
                }
                _ = flush.tick() => {
                    let connected = hub.connected_users();
                    let announcement = if last_heartbeat.elapsed() >= HEARTBEAT_EVERY {
                        last_heartbeat = Instant::now();
                        Some(local.heartbeat(&process, connected))
                    } else {
                        local.delta(&process, connected)
                    };
                    if let Some(announcement) = announcement {
                        self.announce(&announcement).await;
                    }
                    let changes = {
                        let mut book = self.book.lock().unwrap_or_else(PoisonError::into_inner);
                        book.expire(Instant::now());
                        book.take_changes(chrono::Utc::now())
                    };
                    if !changes.is_empty() {
                        metrics::counter!("chat_presence_changes_total").increment(changes.len() as u64);
                        if let Err(error) = push_presence(&hub, &pool, &changes, local.announced()).await {
                            tracing::warn!(%error, "presence push failed");
                        }
                    }
                }
                _ = shutdown.cancelled() => {
                    self.announce(&Announcement::Goodbye { process }).await;
                    let _ = self.nats.flush().await;
                    return;
                }
            }
        }
    }
}

/// Coalesces every process's typing signals and pushes `typing` to the
/// other participants connected here.
async fn follow_typing(mut signals: async_nats::Subscriber, hub: Hub, pool: MySqlPool, shutdown: CancellationToken) {
    let mut typing = TypingCoalescer::default();
    loop {
        let wake = typing.next_deadline().map(tokio::time::Instant::from_std);
        let pushes: Vec<TypingPush> = tokio::select! {
            message = signals.next() => {
                let Some(message) = message else { return };
                let Ok(signal) = serde_json::from_slice::<TypingSignal>(&message.payload) else { continue };
                typing.signal(signal, Instant::now()).into_iter().collect()
            }
            _ = async { match wake { Some(at) => tokio::time::sleep_until(at).await, None => std::future::pending().await } } => {
                typing.tick(Instant::now())
            }
            _ = shutdown.cancelled() => return,
        };
        if pushes.is_empty() || !hub.has_connections() {
            continue;
        }
        if let Err(error) = push_typing(&hub, &pool, &pushes).await {
            tracing::warn!(%error, "typing push failed");
        }
    }
}

async fn push_typing(hub: &Hub, pool: &MySqlPool, pushes: &[TypingPush]) -> Result<(), sqlx::Error> {
    let conversations: Vec<&str> = pushes.iter().map(|p| p.conversation_id.as_str()).collect();
    let mut q = QueryBuilder::<MySql>::new("SELECT conversation_id, user_id FROM CONVERSATION_PARTICIPANTS WHERE conversation_id IN (");
    let mut list = q.separated(", ");
    for c in &conversations {
        list.push_bind(*c);
    }
    q.push(")");
    let rows: Vec<(String, i32)> = q.build_query_as().persistent(false).fetch_all(pool).await?;
    let mut members: HashMap<String, Vec<UserId>> = HashMap::new();
    for (conversation, user) in rows {
        if let Some(user) = UserId::new(i64::from(user)).filter(|u| hub.is_connected(*u)) {
            members.entry(conversation).or_default().push(user);
        }
    }
    for push in pushes {
        let recipients: Vec<UserId> =
            members.get(&push.conversation_id).into_iter().flatten().copied().filter(|u| *u != push.user_id).collect();
        if !recipients.is_empty() {
            metrics::counter!("chat_typing_pushes_total").increment(recipients.len() as u64);
            hub.push_ephemeral(&recipients, "typing", json!(push)).await;
        }
    }
    Ok(())
}

/// Pushes each change to the contacts among `connected` (this process's
/// users, read once per flush rather than once per contact).
async fn push_presence(hub: &Hub, pool: &MySqlPool, changes: &[Presence], connected: &HashSet<UserId>) -> Result<(), sqlx::Error> {
    if connected.is_empty() {
        return Ok(());
    }
    for chunk in changes.chunks(500) {
        let contacts = contacts_of(pool, chunk.iter().map(|p| p.user_id)).await?;
        for change in chunk {
            let recipients: Vec<UserId> =
                contacts.get(&change.user_id).into_iter().flatten().copied().filter(|u| connected.contains(u)).collect();
            if !recipients.is_empty() {
                hub.push_ephemeral(&recipients, "presence", change.to_json()).await;
            }
        }
    }
    Ok(())
}

/// For each of `users`, the users who share a conversation with them.
pub async fn contacts_of(pool: &MySqlPool, users: impl Iterator<Item = UserId>) -> Result<HashMap<UserId, Vec<UserId>>, sqlx::Error> {
    let mut q = QueryBuilder::<MySql>::new(
        "SELECT DISTINCT a.user_id, b.user_id FROM CONVERSATION_PARTICIPANTS a \
         JOIN CONVERSATION_PARTICIPANTS b ON b.conversation_id = a.conversation_id AND b.user_id <> a.user_id \
         WHERE a.user_id IN (",
    );
    let mut list = q.separated(", ");
    let mut any = false;
    for user in users {
        list.push_bind(user.get());
        any = true;
    }
    q.push(")");
    if !any {
        return Ok(HashMap::new());
    }
    let rows: Vec<(i32, i32)> = q.build_query_as().persistent(false).fetch_all(pool).await?;
    let mut contacts: HashMap<UserId, Vec<UserId>> = HashMap::new();
    for (user, contact) in rows {
        if let (Some(user), Some(contact)) = (UserId::new(i64::from(user)), UserId::new(i64::from(contact))) {
            contacts.entry(user).or_default().push(contact);
        }
    }
    Ok(contacts)
}
