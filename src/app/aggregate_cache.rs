//! Aggregate states kept in memory between commands, one lock per stream.
//!
//! A command locks its stream's slot, brings the state up to date, decides,
//! queues its events for the group commit, applies them to the cached state
//! optimistically and releases the lock before the commit: commands on one
//! stream are decided one after another but committed together. If an append
//! fails, the slot is reset and reloaded from the log on next use.

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};

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
}

impl<A: Aggregate> Slot<A> {
    fn empty() -> Self {
        Self { state: A::State::default(), version: 0, loaded: false }
    }

    /// Applies the events the log has beyond the cached version.
    pub async fn catch_up(&mut self, reader: &EventReader, stream: &StreamRef) -> Result<(), StoreError> {
        if !self.loaded {
            *self = Self::empty();
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
    }

    /// Forgets the state; the next command reloads it from the log.
    pub fn reset(&mut self) {
        self.loaded = false;
    }
}

/// An LRU map from stream id to its slot.
pub struct AggregateCache<A: Aggregate> {
    slots: Mutex<LruCache<String, Arc<AsyncMutex<Slot<A>>>>>,
}

impl<A: Aggregate> AggregateCache<A> {
    pub fn new(capacity: usize) -> Self {
        let capacity = NonZeroUsize::new(capacity.max(1)).unwrap_or(NonZeroUsize::MIN);
        Self { slots: Mutex::new(LruCache::new(capacity)) }
    }

    /// Locks the slot of `stream_id`, creating an empty one if needed.
    pub async fn lock(&self, stream_id: &str) -> OwnedMutexGuard<Slot<A>> {
        let slot = {
            let mut slots = self.slots.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            slots.get_or_insert(stream_id.to_owned(), || Arc::new(AsyncMutex::new(Slot::empty()))).clone()
        };
        slot.lock_owned().await
    }
}
