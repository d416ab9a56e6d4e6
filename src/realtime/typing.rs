//! Typing indicators, decided without I/O: which `typing` pushes go out for
//! the raw signals (`started` / `stopped`) of the users typing. A `started`
//! lasts 6 s unless refreshed (then `stopped` goes out by itself), and a
//! user's state in a conversation is pushed at most once per 2 s: changes in
//! between are coalesced into the last one.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::domain::UserId;

/// A `started` without a refresh for this long is over.
pub const EXPIRES_AFTER: Duration = Duration::from_secs(6);
/// At most one push per user and conversation in this time.
pub const MIN_INTERVAL: Duration = Duration::from_secs(2);

/// Whether a user is typing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TypingState {
    Started,
    Stopped,
}

/// A raw signal from a client, as carried on NATS core.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TypingSignal {
    pub conversation_id: String,
    pub user_id: UserId,
    pub state: TypingState,
}

/// What the participants are told: the `typing` frame's data.
pub type TypingPush = TypingSignal;

#[derive(Debug)]
struct Entry {
    wanted: TypingState,
    /// What the participants were last told (nothing means "not typing").
    told: TypingState,
    told_at: Option<Instant>,
    expires_at: Option<Instant>,
}

impl Entry {
    fn may_push(&self, now: Instant) -> bool {
        self.told_at.is_none_or(|at| now.duration_since(at) >= MIN_INTERVAL)
    }

    /// The next time something may change for this entry.
    fn deadline(&self) -> Option<Instant> {
        let push_at = (self.wanted != self.told).then(|| self.told_at.map_or(Instant::now(), |at| at + MIN_INTERVAL));
        [push_at, self.expires_at].into_iter().flatten().min()
    }
}

/// The typing state of every user and conversation this process has heard of.
#[derive(Debug, Default)]
pub struct TypingCoalescer {
    entries: HashMap<(String, UserId), Entry>,
}

impl TypingCoalescer {
    /// Takes a signal; the push to make now, if any.
    pub fn signal(&mut self, signal: TypingSignal, now: Instant) -> Option<TypingPush> {
        let key = (signal.conversation_id, signal.user_id);
        let entry = self.entries.entry(key.clone()).or_insert(Entry {
            wanted: TypingState::Stopped,
            told: TypingState::Stopped,
            told_at: None,
            expires_at: None,
        });
        entry.wanted = signal.state;
        entry.expires_at = (signal.state == TypingState::Started).then(|| now + EXPIRES_AFTER);
        Self::push_if_due(&key, entry, now)
    }

    /// Expires stale `started`s and makes the pushes that were held back.
    pub fn tick(&mut self, now: Instant) -> Vec<TypingPush> {
        let mut pushes = Vec::new();
        for (key, entry) in &mut self.entries {
            if entry.expires_at.is_some_and(|at| at <= now) {
                entry.wanted = TypingState::Stopped;
                entry.expires_at = None;
            }
            pushes.extend(Self::push_if_due(key, entry, now));
        }
        // Nothing left to say about users who stopped and whose window is over.
        self.entries.retain(|_, e| !(e.wanted == TypingState::Stopped && e.told == TypingState::Stopped && e.may_push(now)));
        pushes
    }

    /// When `tick` next has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.entries.values().filter_map(Entry::deadline).min()
    }

    fn push_if_due(key: &(String, UserId), entry: &mut Entry, now: Instant) -> Option<TypingPush> {
        if entry.wanted == entry.told || !entry.may_push(now) {
            return None;
        }
        entry.told = entry.wanted;
        entry.told_at = Some(now);
        Some(TypingSignal { conversation_id: key.0.clone(), user_id: key.1, state: entry.told })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signal(state: TypingState) -> TypingSignal {
        TypingSignal { conversation_id: "c".into(), user_id: UserId::new(7).expect("user id"), state }
    }

    #[test]
    fn started_is_pushed_at_once_and_refreshes_are_not() {
        let mut typing = TypingCoalescer::default();
        let t0 = Instant::now();
        assert_eq!(typing.signal(signal(TypingState::Started), t0).map(|p| p.state), Some(TypingState::Started));
        assert_eq!(typing.signal(signal(TypingState::Started), t0 + Duration::from_secs(3)), None);
        assert!(typing.tick(t0 + Duration::from_secs(8)).is_empty(), "refreshed at 3 s: still typing at 8 s");
    }

    #[test]
    fn a_started_expires_after_six_seconds_without_a_refresh() {
        let mut typing = TypingCoalescer::default();
        let t0 = Instant::now();
        typing.signal(signal(TypingState::Started), t0);
        assert!(typing.tick(t0 + Duration::from_millis(5_900)).is_empty());
        assert_eq!(typing.next_deadline(), Some(t0 + EXPIRES_AFTER));
        let pushes = typing.tick(t0 + EXPIRES_AFTER);
        assert_eq!(pushes.iter().map(|p| p.state).collect::<Vec<_>>(), [TypingState::Stopped]);
        assert!(typing.tick(t0 + Duration::from_secs(20)).is_empty());
        assert!(typing.entries.is_empty(), "forgotten once over");
    }

    #[test]
    fn changes_within_two_seconds_are_coalesced_into_the_last() {
        let mut typing = TypingCoalescer::default();
        let t0 = Instant::now();
        typing.signal(signal(TypingState::Started), t0);
        assert_eq!(typing.signal(signal(TypingState::Stopped), t0 + Duration::from_millis(500)), None, "held back");
        assert!(typing.tick(t0 + Duration::from_millis(1_900)).is_empty());
        let pushes = typing.tick(t0 + MIN_INTERVAL);
        assert_eq!(pushes.iter().map(|p| p.state).collect::<Vec<_>>(), [TypingState::Stopped]);
        // Stopped then started again within the window: the participants still see "typing", no push at all.
        let t1 = t0 + Duration::from_secs(10);
        typing.signal(signal(TypingState::Started), t1);
        typing.signal(signal(TypingState::Stopped), t1 + Duration::from_millis(100));
        typing.signal(signal(TypingState::Started), t1 + Duration::from_millis(200));
        assert!(typing.tick(t1 + MIN_INTERVAL).is_empty());
    }

    #[test]
    fn a_stopped_without_a_started_says_nothing() {
        let mut typing = TypingCoalescer::default();
        let t0 = Instant::now();
        assert_eq!(typing.signal(signal(TypingState::Stopped), t0), None);
        assert!(typing.tick(t0 + Duration::from_secs(3)).is_empty());
    }

    #[test]
    fn at_most_one_push_per_two_seconds_under_a_storm() {
        let mut typing = TypingCoalescer::default();
        let t0 = Instant::now();
        let mut pushes = 0;
        for i in 0..100u64 {
            let now = t0 + Duration::from_millis(i * 100);
            let state = if i % 2 == 0 { TypingState::Started } else { TypingState::Stopped };
            pushes += usize::from(typing.signal(signal(state), now).is_some());
            pushes += typing.tick(now).len();
        }
        assert!(pushes <= 6, "10 s of flapping: {pushes} pushes");
    }
}
