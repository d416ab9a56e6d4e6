//! The hub of one API process: follows the read models' progress, routes
//! each newly projected event and pushes it into the bounded queues of the
//! connections of its recipients. A connection whose queue is full is
//! dropped (it resumes later with `after_position`), so a slow subscriber
//! never holds memory or other subscribers back.

use std::collections::{HashMap, HashSet};
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use lru::LruCache;
use sqlx::MySqlPool;
use tokio::sync::{mpsc, watch, RwLock};
use tokio_util::sync::CancellationToken;

use super::routing::{route, Routed};
use super::{membership, replay, Frame};
use crate::domain::UserId;
use crate::event_store::{EventReader, StoreError};
use crate::queries::progress::wait_for_progress;
use crate::queries::{ProjectionProgress, ReadCache};

/// Events routed per round, at most: a round is never larger than a
/// connection's queue, so a burst (the backlog after an outage, say) cannot
/// by itself overflow the queue of a subscriber that keeps reading; its
/// connection task drains between rounds.
const CHUNK: u32 = 500;
/// How often the read models' checkpoint is polled when no local projector wakes the hub.
const POLL: Duration = Duration::from_millis(20);

/// Limits of the hub.
#[derive(Debug, Clone, Copy)]
pub struct HubConfig {
    /// Frames a connection may have queued before it is dropped as too slow.
    pub queue_capacity: usize,
    /// Conversations whose members the hub keeps in memory.
    pub membership_cache: usize,
    /// Realtime connections one user may hold in this process.
    pub connections_per_user: usize,
}

impl Default for HubConfig {
    fn default() -> Self {
        Self {
            queue_capacity: 1024,
            membership_cache: 100_000,
            connections_per_user: crate::config::Limits::DEFAULT.realtime_connections_per_user,
        }
    }
}

struct Connection {
    id: u64,
    tx: mpsc::Sender<Frame>,
}

#[derive(Default)]
struct Registry {
    users: HashMap<UserId, Vec<Connection>>,
    /// Every event up to here has been pushed; later ones not yet.
    dispatched: u64,
}

/// Handle to the hub (cheap to clone).
#[derive(Clone)]
pub struct Hub {
    registry: Arc<RwLock<Registry>>,
    pool: MySqlPool,
    config: HubConfig,
    next_id: Arc<AtomicU64>,
    open: OpenConnections,
    /// The position up to which every event has been pushed (`Registry::dispatched`),
    /// published after each round's pushes: a connection that sees N here has
    /// every frame up to N in its queue already.
    dispatched: Arc<watch::Sender<u64>>,
}

/// Open connections per user, counted apart from the registry (which only
/// notices a closed connection when it next pushes to it) so that the cap
/// counts exactly the connections alive now.
type OpenConnections = Arc<std::sync::Mutex<HashMap<UserId, usize>>>;

/// Refused: the user already holds the most realtime connections allowed.
#[derive(Debug, thiserror::Error)]
#[error("this user already holds {0} realtime connections, the most allowed")]
pub struct TooManyConnections(pub usize);

/// A live subscription of one connection: its queue, and the position it is live from.
pub struct Subscription {
    pub id: u64,
    pub user: UserId,
    /// Every event after `live_from` the user may see arrives here.
    pub frames: mpsc::Receiver<Frame>,
    pub live_from: u64,
    /// How far the hub has pushed (see `Hub::dispatched`).
    pub dispatched: watch::Receiver<u64>,
    open: OpenConnections,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        metrics::gauge!("chat_realtime_connections").decrement(1.0);
        let mut open = self.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.user) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.user);
            }
        }
    }
}

impl Hub {
    /// Starts the hub's dispatcher; it runs until `shutdown`.
    pub async fn start(
        pool: MySqlPool,
        progress: ProjectionProgress,
        applied: watch::Receiver<u64>,
        read_cache: ReadCache,
        config: HubConfig,
        shutdown: CancellationToken,
    ) -> Result<Self, StoreError> {
        let start = progress.stored().await?;
        let registry = Arc::new(RwLock::new(Registry { users: HashMap::new(), dispatched: start }));
        let hub = Self {
            registry,
            pool: pool.clone(),
            config,
            next_id: Arc::new(AtomicU64::new(1)),
            open: OpenConnections::default(),
            dispatched: Arc::new(watch::channel(start).0),
        };
        // With a read cache, the hub pushes only what the cache has accounted
        // for (it wakes when the cache moves): a client that fetches after a
        // push never gets a cached answer from before it.
        let (applied, ceiling) = match read_cache.subscribe_seen() {
            Some(seen) => (seen, Some(read_cache)),
            None => (applied, None),
        };
        let dispatcher = Dispatcher {
            hub: hub.clone(),
            reader: EventReader::new(pool),
            progress,
            applied,
            ceiling,
            members: LruCache::new(NonZeroUsize::new(config.membership_cache.max(1)).unwrap_or(NonZeroUsize::MIN)),
        };
        tokio::spawn(dispatcher.run(shutdown));
        Ok(hub)
    }

    /// True when `user` may open one more connection (checked before a
    /// WebSocket upgrade, to answer 429; `subscribe` checks again).
    pub fn admits(&self, user: UserId) -> Result<(), TooManyConnections> {
        let open = self.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let limit = self.config.connections_per_user;
        if open.get(&user).copied().unwrap_or(0) >= limit {
            return Err(TooManyConnections(limit));
        }
        Ok(())
    }

    /// Registers a connection of `user`, within the per-user cap; events
    /// after `live_from` come to its queue.
    pub async fn subscribe(&self, user: UserId) -> Result<Subscription, TooManyConnections> {
        {
            let mut open = self.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let count = open.entry(user).or_default();
            if *count >= self.config.connections_per_user {
                metrics::counter!("chat_realtime_connections_refused_total").increment(1);
                return Err(TooManyConnections(self.config.connections_per_user));
            }
            *count += 1;
        }
        metrics::gauge!("chat_realtime_connections").increment(1.0);
        let (tx, frames) = mpsc::channel(self.config.queue_capacity);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut registry = self.registry.write().await;
        let connections = registry.users.entry(user).or_default();
        connections.retain(|connection| !connection.tx.is_closed());
        connections.push(Connection { id, tx });
        Ok(Subscription {
            id,
            user,
            frames,
            live_from: registry.dispatched,
            dispatched: self.dispatched.subscribe(),
            open: self.open.clone(),
        })
    }

    /// The frames `user` would have received for events in (after, until].
    pub async fn replay(&self, user: UserId, after: u64, until: u64) -> Result<Vec<Frame>, StoreError> {
        replay::frames_for(&self.pool, user, after, until).await
    }

    /// The last committed position of the event log.
    pub async fn log_head(&self) -> Result<u64, StoreError> {
        EventReader::new(self.pool.clone()).head().await
    }

    /// True when `user` holds a connection to this process now.
    pub fn is_connected(&self, user: UserId) -> bool {
        self.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner).contains_key(&user)
    }

    /// True when anyone holds a connection to this process now (a cheap
    /// check before work that only matters to connected users).
    pub fn has_connections(&self) -> bool {
        !self.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner).is_empty()
    }

    /// The users holding a connection to this process now.
    pub fn connected_users(&self) -> std::collections::HashSet<UserId> {
        self.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner).keys().copied().collect()
    }

    /// Pushes a frame that is not an event of the log (typing, presence) to
    /// every connection of `users` here, behind the events already queued.
    pub async fn push_ephemeral(&self, users: &[UserId], event: &'static str, data: serde_json::Value) {
        let mut registry = self.registry.write().await;
        let frame = Frame::ephemeral(event, data, registry.dispatched);
        let delivery = Routed { recipients: users.to_vec(), payload: super::routing::Payload::Shared(frame) };
        push(&mut registry, &delivery);
    }
}

struct Dispatcher {
    hub: Hub,
    reader: EventReader,
    progress: ProjectionProgress,
    applied: watch::Receiver<u64>,
    members: LruCache<String, HashSet<UserId>>,
    /// The read cache, when there is one: nothing past its position is pushed.
    ceiling: Option<ReadCache>,
}

impl Dispatcher {
    async fn run(mut self, shutdown: CancellationToken) {
        loop {
            let outcome = tokio::select! {
                outcome = self.round() => outcome,
                _ = shutdown.cancelled() => return,
            };
            match outcome {
                Ok(true) => {}
                Ok(false) => {
                    if !wait_for_progress(&mut self.applied, POLL, &shutdown).await {
                        return;
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "realtime dispatch failed; retrying");
                    self.members.clear();
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    }

    /// Routes and pushes the next projected events; false when there were none.
    async fn round(&mut self) -> Result<bool, StoreError> {
        let registry_lock = self.hub.registry.clone();
        let mut registry = registry_lock.write().await;
        let from = registry.dispatched;
        // This process's projector tells where the read models are; the
        // stored checkpoint is read only when it has nothing newer (the
        // projector may run in another process).
        let local = *self.applied.borrow();
        let applied = match &self.ceiling {
            Some(cache) => cache.seen(),
            None if local > from => local,
            None => local.max(self.progress.stored().await?),
        };
        if applied <= from {
            return Ok(false);
        }
        if registry.users.is_empty() {
            // Nobody to push to: skip ahead (the member sets would go stale, so forget them).
            self.members.clear();
            registry.dispatched = applied;
            self.hub.dispatched.send_replace(applied);
            return Ok(true);
        }
        let events: Vec<_> = self
            .reader
            .events_after_without_metadata(from, self.round_size())
            .await?
            .into_iter()
            .filter(|e| e.position <= applied)
            .collect();
        let Some(last) = events.last().map(|e| e.position) else { return Ok(false) };
        let mut members = self.members_before(&events, from).await?;
        let connected: HashSet<UserId> = registry.users.keys().copied().collect();
        let routed = route(&self.hub.pool, &events, &mut members, &|user| connected.contains(&user)).await?;
        for (conversation, set) in members {
            self.members.put(conversation, set);
        }
        for delivery in &routed {
            push(&mut registry, delivery);
        }
        registry.dispatched = last;
        // After the pushes, under the registry lock: whoever sees `last` here
        // finds every frame up to it in its queue.
        self.hub.dispatched.send_replace(last);
        Ok(true)
    }

    /// Events per round: `CHUNK`, or the queue capacity when smaller.
    fn round_size(&self) -> u32 {
        CHUNK.min(u32::try_from(self.hub.config.queue_capacity).unwrap_or(u32::MAX)).max(1)
    }

    /// Members of every conversation of `events` just before the first one.
    async fn members_before(
        &mut self,
        events: &[crate::event_store::StoredEvent],
        from: u64,
    ) -> Result<HashMap<String, HashSet<UserId>>, StoreError> {
        let mut members = HashMap::new();
        let mut missing = Vec::new();
        for event in events.iter().filter(|e| e.stream_type == "conversation") {
            if members.contains_key(&event.stream_id) || missing.contains(&event.stream_id) {
                continue;
            }
            match self.members.pop(&event.stream_id) {
                Some(set) => {
                    members.insert(event.stream_id.clone(), set);
                }
                None => missing.push(event.stream_id.clone()),
            }
        }
        members.extend(membership::members_at(&self.hub.pool, &missing, from).await?);
        Ok(members)
    }
}

/// Queues a routed event for each connection of its recipients; drops the
/// connections that are full (slow) or gone.
fn push(registry: &mut Registry, delivery: &Routed) {
    let pushed = metrics::counter!("chat_realtime_events_pushed_total");
    let lag = metrics::histogram!("chat_realtime_delivery_lag_seconds");
    let now = chrono::Utc::now();
    for user in &delivery.recipients {
        let Some(frame) = delivery.frame_for(*user) else { continue };
        let Some(connections) = registry.users.get_mut(user) else { continue };
        connections.retain(|connection| match connection.tx.try_send(frame.clone()) {
            Ok(()) => {
                pushed.increment(1);
                if let Some(at) = frame.recorded_at {
                    lag.record((now - at).num_milliseconds().max(0) as f64 / 1000.0);
                }
                true
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                tracing::info!(connection = connection.id, user = %user, "dropping a slow subscriber");
                metrics::counter!("chat_realtime_slow_consumers_dropped_total").increment(1);
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        });
        if connections.is_empty() {
            registry.users.remove(user);
        }
    }
}
