//! An in-process cache of query answers, kept exact by the event log.
//!
//! Each answer is stored with the position `as_of` it reflects at least and
//! the parts of the read models it was read from. A follower (`follow`)
//! reads every event the read models apply, in log order, and records for
//! each part the position of the last event that changed it. An answer is
//! served only while no part it depends on changed after its `as_of`, so it
//! equals what the read models would answer now; and a query's
//! `min_position` is served from here only once the follower has seen that
//! position (the answer is then known to include it). Everything else goes
//! to the database, as before. See ARCHITECTURE.md, "Read cache".

mod follower;
mod keys;
mod touched;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use lru::LruCache;
use tokio::sync::watch;

pub use follower::follow;
pub use keys::{CacheKey, Dependency, PageKey};
pub use touched::{touched, Touched};

/// A cached answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// 200 with this JSON body.
    Found(Bytes),
    /// 404: not there, or not the caller's.
    NotFound,
}

/// Taken before a miss reads the database: what it then reads reflects at
/// least the follower's position at that moment.
#[derive(Debug, Clone, Copy)]
pub struct Ticket {
    as_of: u64,
    epoch: u64,
}

/// Handle on the cache (cheap to clone); a disabled cache holds nothing.
#[derive(Clone)]
pub struct ReadCache {
    shared: Option<Arc<Shared>>,
}

struct Shared {
    state: Mutex<State>,
    /// Every event up to here has been accounted for in `State::changed`.
    seen: AtomicU64,
    /// `seen`, for those who wait for it to move (the realtime hub).
    seen_tx: watch::Sender<u64>,
    /// When the follower last reached the read models' applied position, in
    /// ms since `started`; answers are served only while this is recent.
    caught_up_ms: AtomicU64,
    started: Instant,
}

struct State {
    entries: LruCache<CacheKey, Entry>,
    bytes: usize,
    budget: usize,
    /// Position of the last event that changed each part.
    changed: HashMap<Dependency, u64>,
    /// Position of the last event that changed every part.
    everything_changed: u64,
    /// Bumped when the cache is emptied: tickets taken before are void.
    epoch: u64,
}

struct Entry {
    answer: Answer,
    as_of: u64,
    depends_on: Vec<Dependency>,
    size: usize,
}

/// How long answers stay servable after the follower last caught up: if it
/// stalls (its database reads fail), queries go to the database again.
const LIVENESS: Duration = Duration::from_secs(1);
/// Parts whose last change is remembered; past it the cache starts afresh.
const MAX_TRACKED_PARTS: usize = 1_000_000;
/// No single answer takes more than this share of the budget.
const MAX_ENTRY_SHARE: usize = 16;

impl ReadCache {
    /// A cache of at most `budget_bytes` of answers (0: disabled).
    pub fn new(budget_bytes: usize) -> Self {
        if budget_bytes == 0 {
            return Self { shared: None };
        }
        let state = State {
            entries: LruCache::unbounded(),
            bytes: 0,
            budget: budget_bytes,
            changed: HashMap::new(),
            everything_changed: 0,
            epoch: 0,
        };
        Self {
            shared: Some(Arc::new(Shared {
                state: Mutex::new(state),
                seen: AtomicU64::new(0),
                seen_tx: watch::channel(0).0,
                caught_up_ms: AtomicU64::new(0),
                started: Instant::now(),
            })),
        }
    }

    /// A disabled cache.
    pub fn disabled() -> Self {
        Self::new(0)
    }

    /// The answer for `key` if one is cached, still exact, and (with
    /// `min_position`) known to include that position.
    pub fn get(&self, key: &CacheKey, min_position: Option<u64>) -> Option<Answer> {
        let shared = self.shared.as_ref()?;
        if !shared.is_live() {
            metrics::counter!("chat_read_cache_lookups_total", "outcome" => "bypass").increment(1);
            return None;
        }
        // Loaded before the lock: the changes up to `seen` are in `changed`.
        let seen = shared.seen.load(Ordering::Acquire);
        if min_position.is_some_and(|position| position > seen) {
            metrics::counter!("chat_read_cache_lookups_total", "outcome" => "ahead").increment(1);
            return None;
        }
        let mut state = shared.lock();
        let State { entries, changed, everything_changed, .. } = &mut *state;
        // One lookup: `get` also marks the entry as recently used.
        let (outcome, answer) = match entries.get(key) {
            None => ("miss", None),
            Some(entry) if is_exact(changed, *everything_changed, entry.as_of, &entry.depends_on) => ("hit", Some(entry.answer.clone())),
            Some(_) => ("stale", None),
        };
        if outcome == "stale" {
            state.remove(key);
        }
        drop(state);
        metrics::counter!("chat_read_cache_lookups_total", "outcome" => outcome).increment(1);
        answer
    }

    /// Taken before reading the database for an answer to `insert`.
    pub fn ticket(&self) -> Ticket {
        match &self.shared {
            None => Ticket { as_of: 0, epoch: 0 },
            Some(shared) => {
                let state = shared.lock();
                Ticket { as_of: shared.seen.load(Ordering::Acquire), epoch: state.epoch }
            }
        }
    }

    /// Stores an answer read after `ticket` was taken, unless a part it
    /// depends on has changed since (it may then predate that change).
    pub fn insert(&self, key: CacheKey, answer: Answer, ticket: Ticket, depends_on: Vec<Dependency>) {
        let Some(shared) = &self.shared else { return };
        let mut state = shared.lock();
        if ticket.epoch != state.epoch || !state.is_exact(ticket.as_of, &depends_on) {
            return;
        }
        let body = match &answer {
            Answer::Found(body) => body.len(),
            Answer::NotFound => 0,
        };
        let size = body + depends_on.len() * std::mem::size_of::<Dependency>() + 2 * std::mem::size_of::<CacheKey>() + 64;
        if size > state.budget / MAX_ENTRY_SHARE {
            return;
        }
        state.remove(&key);
        state.bytes += size;
        state.entries.put(key, Entry { answer, as_of: ticket.as_of, depends_on, size });
        while state.bytes > state.budget {
            let Some((_, evicted)) = state.entries.pop_lru() else { break };
            state.bytes -= evicted.size;
        }
        metrics::gauge!("chat_read_cache_bytes").set(state.bytes as f64);
    }

    /// Records the events from just after `seen` up to `up_to` (each with
    /// what it touched), then moves `seen` to `up_to`.
    pub fn advance(&self, changes: impl IntoIterator<Item = (u64, Touched)>, up_to: u64) {
        let Some(shared) = &self.shared else { return };
        let mut state = shared.lock();
        for (position, touched) in changes {
            match touched {
                Touched::Nothing => {}
                Touched::Everything => state.everything_changed = position,
                Touched::Parts(parts) => {
                    for part in parts {
                        state.changed.insert(part, position);
                    }
                }
            }
        }
        if state.changed.len() > MAX_TRACKED_PARTS {
            state.clear(up_to);
        }
        shared.seen.store(up_to, Ordering::Release);
        drop(state);
        shared.seen_tx.send_replace(up_to);
    }

    /// Empties the cache and starts again from `position` (the read models
    /// went back: rebuilt, or restored).
    pub fn restart_at(&self, position: u64) {
        let Some(shared) = &self.shared else { return };
        let mut state = shared.lock();
        state.clear(position);
        shared.seen.store(position, Ordering::Release);
        drop(state);
        shared.seen_tx.send_replace(position);
    }

    /// The follower has reached the read models' applied position.
    pub fn caught_up(&self) {
        if let Some(shared) = &self.shared {
            shared.caught_up_ms.store(shared.started.elapsed().as_millis() as u64 + 1, Ordering::Release);
        }
    }

    /// Up to where the follower has accounted for every event.
    pub fn seen(&self) -> u64 {
        self.shared.as_ref().map_or(0, |shared| shared.seen.load(Ordering::Acquire))
    }

    /// Follows `seen`; `None` when the cache is disabled. The realtime hub
    /// pushes an event only once the cache has accounted for it, so that a
    /// client that fetches after a push never gets an answer from before it.
    pub fn subscribe_seen(&self) -> Option<watch::Receiver<u64>> {
        self.shared.as_ref().map(|shared| shared.seen_tx.subscribe())
    }

    /// Whether the cache holds anything at all.
    pub fn is_enabled(&self) -> bool {
        self.shared.is_some()
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves consistent-enough state: the
        // worst is an entry counted twice in `bytes`.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn is_live(&self) -> bool {
        let at = self.caught_up_ms.load(Ordering::Acquire);
        at != 0 && self.started.elapsed().as_millis() as u64 <= at + LIVENESS.as_millis() as u64
    }
}

impl State {
    fn is_exact(&self, as_of: u64, depends_on: &[Dependency]) -> bool {
        is_exact(&self.changed, self.everything_changed, as_of, depends_on)
    }

    fn remove(&mut self, key: &CacheKey) {
        if let Some(entry) = self.entries.pop(key) {
            self.bytes -= entry.size;
        }
    }

    fn clear(&mut self, position: u64) {
        self.entries.clear();
        self.changed.clear();
        self.bytes = 0;
        self.everything_changed = position;
        self.epoch += 1;
    }
}

/// True if nothing `depends_on` names changed after `as_of`.
fn is_exact(changed: &HashMap<Dependency, u64>, everything_changed: u64, as_of: u64, depends_on: &[Dependency]) -> bool {
    everything_changed <= as_of && depends_on.iter().all(|part| changed.get(part).is_none_or(|at| *at <= as_of))
}

#[cfg(test)]
mod tests;
