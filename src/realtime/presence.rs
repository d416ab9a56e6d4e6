//! Presence, decided without I/O. Every API process announces on NATS core
//! the users holding a realtime connection to it: a full list in a
//! heartbeat every 5 s, and the changes in a delta once a second. Every
//! process folds those announcements into a `PresenceBook`: a user is
//! online while at least one process whose heartbeat has not lapsed (20 s: four missed heartbeats)
//! lists them. A process that dies takes its users offline when its
//! heartbeat lapses; one that stops says goodbye at once.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::UserId;

/// How often a process sends its full list.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(5);
/// A process not heard of for this long is gone, and its users with it.
pub const LAPSE_AFTER: Duration = Duration::from_secs(20);
/// How often changes are announced (and pushed): flaps within it cancel out.
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// What a process announces.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Announcement {
    /// Every user connected to `process` now.
    Heartbeat { process: String, users: Vec<UserId> },
    /// Users who connected or left since the last announcement.
    Delta { process: String, online: Vec<UserId>, offline: Vec<UserId> },
    /// The process stops: none of its users are connected to it any more.
    Goodbye { process: String },
    /// A process that just started asks the others for their heartbeats.
    Sync { process: String },
}

/// Online or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Online,
    Offline,
}

/// A user's presence as the book knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presence {
    pub user_id: UserId,
    pub status: Status,
    /// Now for an online user; when they were last online otherwise (null
    /// if not since this process started).
    pub last_seen_at: Option<DateTime<Utc>>,
}

impl Presence {
    /// The API's shape: `{"user_id", "status", "last_seen_at"}`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({"user_id": self.user_id, "status": self.status, "last_seen_at": self.last_seen_at.map(crate::time::rfc3339)})
    }
}

#[derive(Debug)]
struct Process {
    users: HashSet<UserId>,
    heard_at: Instant,
    heard_at_wall: DateTime<Utc>,
}

/// Every process's announced users, folded into each user's presence.
#[derive(Debug, Default)]
pub struct PresenceBook {
    processes: HashMap<String, Process>,
    /// Processes listing each online user.
    holders: HashMap<UserId, u32>,
    last_seen: HashMap<UserId, DateTime<Utc>>,
    /// Users whose presence may have changed since the last `take_changes`.
    touched: HashSet<UserId>,
    /// What the contacts were last told.
    told: HashMap<UserId, Status>,
}

impl PresenceBook {
    /// Folds one announcement in.
    pub fn apply(&mut self, announcement: Announcement, now: Instant, wall: DateTime<Utc>) {
        match announcement {
            Announcement::Heartbeat { process, users } => {
                let users: HashSet<UserId> = users.into_iter().collect();
                let entry = self.process(&process, now, wall);
                let gone: Vec<UserId> = entry.users.difference(&users).copied().collect();
                let new: Vec<UserId> = users.difference(&entry.users).copied().collect();
                entry.users = users;
                for user in gone {
                    self.release(user, wall);
                }
                for user in new {
                    self.hold(user);
                }
            }
            Announcement::Delta { process, online, offline } => {
                let entry = self.process(&process, now, wall);
                let new: Vec<UserId> = online.into_iter().filter(|u| entry.users.insert(*u)).collect();
                let gone: Vec<UserId> = offline.into_iter().filter(|u| entry.users.remove(u)).collect();
                for user in new {
                    self.hold(user);
                }
                for user in gone {
                    self.release(user, wall);
                }
            }
            Announcement::Goodbye { process } => self.forget(&process, wall),
            Announcement::Sync { .. } => {}
        }
    }

    /// Forgets the processes whose heartbeat lapsed; their users were last
    /// seen when the process was last heard of.
    pub fn expire(&mut self, now: Instant) {
        let lapsed: Vec<(String, DateTime<Utc>)> = self
            .processes
            .iter()
            .filter(|(_, p)| now.duration_since(p.heard_at) >= LAPSE_AFTER)
            .map(|(id, p)| (id.clone(), p.heard_at_wall))
            .collect();
        for (process, heard) in lapsed {
            self.forget(&process, heard);
        }
    }

    /// A user's presence now.
    pub fn presence(&self, user: UserId, wall: DateTime<Utc>) -> Presence {
        if self.holders.contains_key(&user) {
            Presence { user_id: user, status: Status::Online, last_seen_at: Some(wall) }
        } else {
            Presence { user_id: user, status: Status::Offline, last_seen_at: self.last_seen.get(&user).copied() }
        }
    }

    /// The users whose status differs from what their contacts were last
    /// told: each at most once per call, so a flap between calls is nothing.
    pub fn take_changes(&mut self, wall: DateTime<Utc>) -> Vec<Presence> {
        let mut changes = Vec::new();
        for user in std::mem::take(&mut self.touched) {
            let presence = self.presence(user, wall);
            let told = self.told.get(&user).copied().unwrap_or(Status::Offline);
            if presence.status != told {
                changes.push(presence);
            }
            match presence_status(&self.holders, user) {
                Status::Online => self.told.insert(user, Status::Online),
                Status::Offline => self.told.remove(&user),
            };
        }
        changes.sort_by_key(|p| p.user_id);
        changes
    }

    fn process(&mut self, id: &str, now: Instant, wall: DateTime<Utc>) -> &mut Process {
        let process =
            self.processes.entry(id.to_owned()).or_insert_with(|| Process { users: HashSet::new(), heard_at: now, heard_at_wall: wall });
        process.heard_at = now;
        process.heard_at_wall = wall;
        process
    }

    fn forget(&mut self, process: &str, wall: DateTime<Utc>) {
        if let Some(gone) = self.processes.remove(process) {
            for user in gone.users {
                self.release(user, wall);
            }
        }
    }

    fn hold(&mut self, user: UserId) {
        *self.holders.entry(user).or_default() += 1;
        self.touched.insert(user);
    }

    fn release(&mut self, user: UserId, wall: DateTime<Utc>) {
        if let Some(count) = self.holders.get_mut(&user) {
            *count -= 1;
            if *count == 0 {
                self.holders.remove(&user);
                self.last_seen.insert(user, wall);
                self.touched.insert(user);
            }
        }
    }
}

fn presence_status(holders: &HashMap<UserId, u32>, user: UserId) -> Status {
    if holders.contains_key(&user) {
        Status::Online
    } else {
        Status::Offline
    }
}

/// What one process announces about its own connections: the changes since
/// its last announcement (a connect and a disconnect between two cancel out).
#[derive(Debug, Default)]
pub struct LocalAnnouncer {
    announced: HashSet<UserId>,
}

impl LocalAnnouncer {
    /// The delta from what was announced to `connected`, if anything changed.
    pub fn delta(&mut self, process: &str, connected: HashSet<UserId>) -> Option<Announcement> {
        let mut online: Vec<UserId> = connected.difference(&self.announced).copied().collect();
        let mut offline: Vec<UserId> = self.announced.difference(&connected).copied().collect();
        self.announced = connected;
        if online.is_empty() && offline.is_empty() {
            return None;
        }
        online.sort();
        offline.sort();
        Some(Announcement::Delta { process: process.to_owned(), online, offline })
    }

    /// The users this process last announced as connected here.
    pub fn announced(&self) -> &HashSet<UserId> {
        &self.announced
    }

    /// The full list (the heartbeat), which also becomes what was announced.
    pub fn heartbeat(&mut self, process: &str, connected: HashSet<UserId>) -> Announcement {
        let mut users: Vec<UserId> = connected.iter().copied().collect();
        users.sort();
        self.announced = connected;
        Announcement::Heartbeat { process: process.to_owned(), users }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: i64) -> UserId {
        UserId::new(id).expect("user id")
    }

    fn delta(process: &str, online: &[i64], offline: &[i64]) -> Announcement {
        Announcement::Delta {
            process: process.into(),
            online: online.iter().map(|u| user(*u)).collect(),
            offline: offline.iter().map(|u| user(*u)).collect(),
        }
    }

    fn statuses(changes: &[Presence]) -> Vec<(i32, Status)> {
        changes.iter().map(|p| (p.user_id.get(), p.status)).collect()
    }

    #[test]
    fn online_while_any_process_holds_a_connection() {
        let (mut book, t0, wall) = (PresenceBook::default(), Instant::now(), Utc::now());
        book.apply(delta("a", &[1], &[]), t0, wall);
        book.apply(delta("b", &[1], &[]), t0, wall);
        assert_eq!(statuses(&book.take_changes(wall)), [(1, Status::Online)]);
        book.apply(delta("a", &[], &[1]), t0, wall);
        assert!(book.take_changes(wall).is_empty(), "still on b");
        assert_eq!(book.presence(user(1), wall).status, Status::Online);
        book.apply(delta("b", &[], &[1]), t0, wall);
        assert_eq!(statuses(&book.take_changes(wall)), [(1, Status::Offline)]);
        assert_eq!(book.presence(user(1), wall).last_seen_at, Some(wall));
    }

    #[test]
    fn a_flap_between_two_flushes_tells_nobody() {
        let (mut book, t0, wall) = (PresenceBook::default(), Instant::now(), Utc::now());
        book.apply(delta("a", &[1], &[]), t0, wall);
        book.take_changes(wall);
        for _ in 0..10 {
            book.apply(delta("a", &[], &[1]), t0, wall);
            book.apply(delta("a", &[1], &[]), t0, wall);
        }
        assert!(book.take_changes(wall).is_empty());
    }

    #[test]
    fn a_process_whose_heartbeat_lapses_takes_its_users_offline() {
        let (mut book, t0, wall) = (PresenceBook::default(), Instant::now(), Utc::now());
        book.apply(Announcement::Heartbeat { process: "a".into(), users: vec![user(1), user(2)] }, t0, wall);
        book.apply(delta("b", &[2], &[]), t0 + Duration::from_secs(15), wall);
        book.take_changes(wall);
        book.expire(t0 + LAPSE_AFTER - Duration::from_millis(1));
        assert!(book.take_changes(wall).is_empty());
        book.expire(t0 + LAPSE_AFTER);
        assert_eq!(statuses(&book.take_changes(wall)), [(1, Status::Offline)], "2 is still on b");
        assert_eq!(book.presence(user(1), wall).last_seen_at, Some(wall), "last seen at a's last heartbeat");
    }

    #[test]
    fn a_heartbeat_replaces_what_the_process_listed() {
        let (mut book, t0, wall) = (PresenceBook::default(), Instant::now(), Utc::now());
        book.apply(delta("a", &[1, 2], &[]), t0, wall);
        book.take_changes(wall);
        book.apply(Announcement::Heartbeat { process: "a".into(), users: vec![user(2), user(3)] }, t0, wall);
        assert_eq!(statuses(&book.take_changes(wall)), [(1, Status::Offline), (3, Status::Online)]);
        book.apply(Announcement::Goodbye { process: "a".into() }, t0, wall);
        assert_eq!(statuses(&book.take_changes(wall)), [(2, Status::Offline), (3, Status::Offline)]);
    }

    #[test]
    fn the_local_announcer_sends_only_changes() {
        let mut local = LocalAnnouncer::default();
        let set = |ids: &[i64]| ids.iter().map(|u| user(*u)).collect::<HashSet<_>>();
        assert_eq!(local.delta("p", set(&[1, 2])), Some(delta("p", &[1, 2], &[])));
        assert_eq!(local.delta("p", set(&[1, 2])), None);
        assert_eq!(local.delta("p", set(&[2, 3])), Some(delta("p", &[3], &[1])));
        assert_eq!(local.heartbeat("p", set(&[3])), Announcement::Heartbeat { process: "p".into(), users: vec![user(3)] });
        assert_eq!(local.delta("p", set(&[3])), None);
    }
}
