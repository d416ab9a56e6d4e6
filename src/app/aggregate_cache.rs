//! Aggregate states kept in memory between commands, one lock per stream.
//!
//! A command locks its stream's slot, brings the state up to date, decides,
//! queues its events for the group commit, applies them to the cached state
//! optimistically and releases the lock before the commit: commands on one
//! stream are decided one after another but committed together. If an append
//! fails, the slot is reset and reloaded from the log on next use.
//!
//! The cache is bounded twice: by the number of streams, and by the number of
//! events folded into the cached states together (a conversation's state
//! grows with its messages, so a few huge conversations could otherwise fill
//! the memory). Past either bound, the least recently used states are dropped
//! and folded again from the log when next needed.

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use lru::LruCache;
use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

use crate::domain::Aggregate;
use crate::event_store::{EventReader, StoreError, StreamRef};

/// One stream's cached state at stream `version`; `loaded` is false until
/// read from the log (and again after a failed append).
pub struct Slot<A: Aggregate> {
    pub state: A::State,
    pub version: u64,
    pub loaded: bool,
    weight: Arc<Weight>,
}

/// The events folded into one slot's state, counted into its cache's total
/// for as long as the slot is cached.
struct Weight {
    /// (events in the state, still counted in `total`)
    events: Mutex<(u64, bool)>,
    total: Arc<AtomicU64>,
}

impl Weight {
    fn new(total: Arc<AtomicU64>) -> Self {
        Self { events: Mutex::new((0, true)), total }
    }

    fn change(&self, update: impl FnOnce(u64) -> u64) {
        let mut events = self.events.lock().unwrap_or_else(PoisonError::into_inner);
        let (before, counted) = *events;
        let after = update(before);
        if counted && after >= before {
            self.total.fetch_add(after - before, Ordering::Relaxed);
        } else if counted {
            self.total.fetch_sub(before - after, Ordering::Relaxed);
        }
        *events = (after, counted);
    }

    /// The slot leaves the cache: its events no longer count (it may still be
    /// in use by a command that holds it).
    fn evict(&self) {
        let mut events = self.events.lock().unwrap_or_else(PoisonError::into_inner);
        if events.1 {
            self.total.fetch_sub(events.0, Ordering::Relaxed);
            events.1 = false;
        }
    }
}

impl<A: Aggregate> Slot<A> {
    fn empty(weight: Arc<Weight>) -> Self {
        Self { state: A::State::default(), version: 0, loaded: false, weight }
    }

    /// Applies the events the log has beyond the cached version.
    pub async fn catch_up(&mut self, reader: &EventReader, stream: &StreamRef) -> Result<(), StoreError> {
        if !self.loaded {
            self.state = A::State::default();
            self.version = 0;
            self.weight.change(|_| 0);
        }
        for stored in reader.stream_events(stream, self.version).await? {
            let event: A::Event = stored.decode()?;
            self.apply(&event);
        }
        self.loaded = true;
        Ok(())
    }

    /// Folds `event` into the cached state.
    pub fn apply(&mut self, event: &A::Event) {
        let state = std::mem::take(&mut self.state);
        self.state = A::evolve(state, event);
        self.version += 1;
        self.weight.change(|events| events + 1);
    }

    /// Forgets the state; the next command reloads it from the log.
    pub fn reset(&mut self) {
        self.loaded = false;
    }
}

/// A cached slot and its weight (readable without locking the slot).
struct Entry<A: Aggregate> {
    slot: Arc<AsyncMutex<Slot<A>>>,
    weight: Arc<Weight>,
}

/// An LRU map from stream id to its slot, bounded in streams and in events.
pub struct AggregateCache<A: Aggregate> {
    slots: Mutex<LruCache<String, Entry<A>>>,
    /// Events folded into the cached states, all slots together.
    cached_events: Arc<AtomicU64>,
    event_budget: u64,
}

impl<A: Aggregate> AggregateCache<A> {
    /// At most `capacity` streams, holding at most `event_budget` events together.
    pub fn new(capacity: usize, event_budget: u64) -> Self {
        let capacity = NonZeroUsize::new(capacity.max(1)).unwrap_or(NonZeroUsize::MIN);
        Self { slots: Mutex::new(LruCache::new(capacity)), cached_events: Arc::default(), event_budget: event_budget.max(1) }
    }

    /// Locks the slot of `stream_id`, creating an empty one if needed.
    pub async fn lock(&self, stream_id: &str) -> OwnedMutexGuard<Slot<A>> {
        let slot = {
            let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
            let slot = match slots.get(stream_id) {
                Some(entry) => entry.slot.clone(),
                None => {
                    let weight = Arc::new(Weight::new(self.cached_events.clone()));
                    let slot = Arc::new(AsyncMutex::new(Slot::empty(weight.clone())));
                    if let Some((_, pushed_out)) = slots.push(stream_id.to_owned(), Entry { slot: slot.clone(), weight }) {
                        pushed_out.weight.evict();
                    }
                    slot
                }
            };
            // The state just used is the most recent: the oldest go first.
            while self.cached_events.load(Ordering::Relaxed) > self.event_budget && slots.len() > 1 {
                match slots.pop_lru() {
                    Some((_, oldest)) => oldest.weight.evict(),
                    None => break,
                }
            }
            slot
        };
        slot.lock_owned().await
    }

    /// Events folded into the cached states now (for tests and metrics).
    pub fn cached_events(&self) -> u64 {
        self.cached_events.load(Ordering::Relaxed)
    }

    /// Streams cached now.
    pub fn len(&self) -> usize {
        self.slots.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::DomainError;

    /// A counter: the smallest aggregate whose events can be folded.
    struct Counter;

    #[derive(Clone, serde::Serialize, serde::Deserialize)]
    struct Counted;

    impl crate::domain::EventPayload for Counted {
        fn event_type(&self) -> &'static str {
            "Counted"
        }
    }

    impl Aggregate for Counter {
        const STREAM_TYPE: &'static str = "counter";
        type Command = ();
        type Event = Counted;
        type State = u64;

        fn decide(_: &(), _: &u64) -> Result<Vec<Counted>, DomainError> {
            Ok(vec![Counted])
        }

        fn evolve(state: u64, _: &Counted) -> u64 {
            state + 1
        }
    }

    async fn fold(cache: &AggregateCache<Counter>, stream: &str, events: u64) {
        let mut slot = cache.lock(stream).await;
        for _ in 0..events {
            slot.apply(&Counted);
        }
    }

    #[tokio::test]
    async fn the_least_recently_used_states_go_when_the_event_budget_is_spent() {
        let cache = AggregateCache::<Counter>::new(100, 10);
        fold(&cache, "a", 4).await;
        fold(&cache, "b", 4).await;
        assert_eq!((cache.len(), cache.cached_events()), (2, 8));
        fold(&cache, "c", 4).await; // 12 events: over the budget at the next use
        fold(&cache, "b", 0).await;
        assert_eq!((cache.len(), cache.cached_events()), (2, 8), "a, the oldest, is gone");
        assert_eq!(cache.lock("a").await.version, 0, "a starts again from the log");
    }

    #[tokio::test]
    async fn a_state_in_use_when_evicted_no_longer_counts() {
        let cache = AggregateCache::<Counter>::new(1, 1_000);
        let mut held = cache.lock("a").await;
        held.apply(&Counted);
        drop(cache.lock("b").await); // pushes "a" out: capacity 1
        held.apply(&Counted);
        assert_eq!(cache.cached_events(), 0, "the evicted state's events are not counted, before or after");
        fold(&cache, "b", 3).await;
        assert_eq!(cache.cached_events(), 3);
    }
}
