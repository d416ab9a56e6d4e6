//! One realtime connection's frames, in the order API.md promises, for
//! either transport: with `after_position=N`, every event after N that the
//! user would have received (replayed from the log, then taken from the
//! live queue until the hub has pushed past the log's head at connect
//! time), then `ready` with the position R the connection is live from,
//! then only live frames after R; each event once.
//!
//! Why the wait: the hub pushes an event only once the read models have
//! applied it, so at connect time it may not yet have pushed the newest
//! committed events. Sending `ready` at the hub's position then would put
//! events the client missed *after* `ready`, and a client could not tell
//! when its history is complete.

use std::collections::VecDeque;

use tokio::sync::watch;

use super::hub::{Hub, Subscription, TooManyConnections};
use super::Frame;
use crate::domain::UserId;
use crate::event_store::StoreError;

/// Events replayed from the log per read: a long resume is streamed, not
/// held in memory at once.
const REPLAY_CHUNK: u64 = 5_000;

/// Why a session could not open.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    TooManyConnections(#[from] TooManyConnections),
    #[error("cannot read the event log: {0}")]
    Store(#[from] StoreError),
}

/// Why a session ended.
#[derive(Debug, thiserror::Error)]
pub enum Ended {
    /// The connection's queue filled up: the client reads too slowly. It
    /// resumes with `after_position` = `Session::resume_position`.
    #[error("slow consumer")]
    SlowConsumer,
    /// Replaying from the log failed (the database went away).
    #[error("resume failed: {0}")]
    Replay(#[from] StoreError),
}

/// The frames of one connection, in order (see the module doc).
pub struct Session {
    subscription: Subscription,
    dispatched: watch::Receiver<u64>,
    hub: Hub,
    /// Frames to send before anything else.
    backlog: VecDeque<Frame>,
    /// What is still to be replayed from the log: (after, until].
    replay: Option<(u64, u64)>,
    /// `ready` is still to come, once the hub has pushed up to here.
    ready_after: Option<u64>,
    /// Queued frames of events at or below this were replayed, or are at
    /// or before the client's own position: they are not sent again.
    floor: u64,
    /// The position of the last event frame handed out (or of `ready`).
    resume_position: u64,
}

impl Session {
    /// Subscribes `user`; with `after`, the session first replays what the
    /// user missed since that position.
    pub async fn open(hub: &Hub, user: UserId, after: Option<u64>) -> Result<Self, OpenError> {
        let subscription = hub.subscribe(user).await?;
        let live_from = subscription.live_from;
        let dispatched = subscription.dispatched.clone();
        let mut session = Session {
            subscription,
            dispatched,
            hub: hub.clone(),
            backlog: VecDeque::new(),
            replay: None,
            ready_after: None,
            floor: live_from,
            resume_position: live_from,
        };
        match after {
            None => session.backlog.push_back(Frame::ready(live_from)),
            Some(after) => {
                // Every event committed before this point was missed, so
                // `ready` waits until the hub has pushed past it.
                let head = hub.log_head().await?;
                session.ready_after = Some(head.max(after));
                session.floor = live_from.max(after);
                session.resume_position = after;
                if after < live_from {
                    session.replay = Some((after, live_from));
                }
            }
        }
        Ok(session)
    }

    /// The user this session is for.
    pub fn user(&self) -> UserId {
        self.subscription.user
    }

    /// The position a client resumes from after this session ends: every
    /// event up to it has been handed out.
    pub fn resume_position(&self) -> u64 {
        self.resume_position
    }

    /// The next frame to send. Cancel-safe: a frame is only taken from the
    /// queue when it is returned.
    pub async fn next(&mut self) -> Result<Frame, Ended> {
        loop {
            if let Some(frame) = self.backlog.pop_front() {
                return Ok(self.handed_out(frame));
            }
            if let Some((after, until)) = self.replay {
                let to = until.min(after.saturating_add(REPLAY_CHUNK));
                self.backlog.extend(self.hub.replay(self.user(), after, to).await?);
                self.replay = (to < until).then_some((to, until));
                continue;
            }
            let Some(target) = self.ready_after else {
                // Live.
                match self.subscription.frames.recv().await {
                    None => return Err(Ended::SlowConsumer),
                    Some(frame) if !frame.ephemeral && frame.position <= self.floor => continue,
                    Some(frame) => return Ok(self.handed_out(frame)),
                }
            };
            let pushed = *self.dispatched.borrow_and_update();
            if pushed >= target {
                self.say_ready(pushed);
                continue;
            }
            // Catching up: what the hub pushes now still comes before `ready`.
            tokio::select! {
                frame = self.subscription.frames.recv() => match frame {
                    None => return Err(Ended::SlowConsumer),
                    Some(frame) if frame.ephemeral || frame.position <= self.floor => continue,
                    Some(frame) => return Ok(self.handed_out(frame)),
                },
                changed = self.dispatched.changed() => {
                    if changed.is_err() {
                        // The hub stopped (shutdown): nothing more comes.
                        std::future::pending::<()>().await;
                    }
                }
            }
        }
    }

    /// Hands `frame` out, moving the resume position past a log event.
    fn handed_out(&mut self, frame: Frame) -> Frame {
        if !frame.ephemeral {
            self.resume_position = frame.position;
        }
        frame
    }

    /// The hub has pushed up to `pushed`, past the target: every frame up to
    /// it is in the queue. Those go first, then `ready`, then the rest.
    fn say_ready(&mut self, pushed: u64) {
        self.ready_after = None;
        let mut later = Vec::new();
        while let Ok(frame) = self.subscription.frames.try_recv() {
            if frame.ephemeral {
                continue;
            }
            if frame.position > pushed {
                later.push(frame);
            } else if frame.position > self.floor {
                self.backlog.push_back(frame);
            }
        }
        self.backlog.push_back(Frame::ready(pushed));
        self.backlog.extend(later);
        self.floor = pushed;
    }
}
