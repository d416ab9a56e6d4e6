//! Runs one command: lock the stream, decide, check references, queue the
//! events for the group commit, and retry on a version conflict.

use std::time::Duration;

use crate::domain::conversation::{existing_reaction, version_answering_noop, ConversationAggregate, ConversationEvent};
use crate::domain::posting::PostingAggregate;
use crate::domain::user::UserAggregate;
use crate::domain::Aggregate;
use crate::event_store::{AppendError, AppendRequest, Appender, EventReader, Lookup, NewEvent, StreamRef};

use super::{AggregateCache, CommandContext, CommandError, Directory};

/// Attempts before a contended command gives up.
const MAX_ATTEMPTS: u32 = 30;
/// How long a no-op's answer waits for the event it refers to to be committed.
const NOOP_COMMIT_WAIT: Duration = Duration::from_secs(3);

/// Write-side knowledge of an aggregate beyond its rules: which lookups its
/// events maintain, and which version a no-op answers with.
pub trait CommandTarget: Aggregate {
    /// Lookup keys to write with `event`.
    fn lookups(_event: &Self::Event) -> Vec<Lookup> {
        Vec::new()
    }

    /// The stream version whose position a command that changed nothing answers with.
    fn noop_version(_command: &Self::Command, _state: &Self::State, version: u64) -> u64 {
        version
    }

    /// For a command that changed nothing because it repeats an earlier one,
    /// the id of what the earlier one created.
    fn existing_id(_command: &Self::Command, _state: &Self::State) -> Option<String> {
        None
    }
}

impl CommandTarget for ConversationAggregate {
    fn lookups(event: &ConversationEvent) -> Vec<Lookup> {
        match event {
            ConversationEvent::MessageSent { message_id, .. } => {
                vec![Lookup {
                    kind: MESSAGE_LOOKUP,
                    key: message_id.to_string(),
                    // A fresh UUIDv7 made by this server: no need to check it is free.
                    unique: false,
                }]
            }
            ConversationEvent::ConversationCreated { kind, participants, posting_id, .. } => match participants.as_slice() {
                [a, b] if *kind == crate::domain::values::ConversationType::Direct => {
                    let key = crate::domain::conversation::direct_key(a.user_id, b.user_id, *posting_id);
                    vec![Lookup { kind: DIRECT_LOOKUP, key, unique: true }]
                }
                _ => Vec::new(),
            },
            _ => Vec::new(),
        }
    }

    fn noop_version(command: &Self::Command, state: &Self::State, _version: u64) -> u64 {
        version_answering_noop(command, state)
    }

    fn existing_id(command: &Self::Command, state: &Self::State) -> Option<String> {
        existing_reaction(command, state).map(|id| id.to_string())
    }
}

impl CommandTarget for UserAggregate {}
impl CommandTarget for PostingAggregate {}

/// Lookup kind: message id → conversation id.
pub const MESSAGE_LOOKUP: &str = "message";
/// Lookup kind: DIRECT key (pair of users and posting) → conversation id.
pub const DIRECT_LOOKUP: &str = "direct";

/// What a command did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandOutcome {
    /// Position of the last event appended, or for a no-op of the event the answer refers to.
    pub position: u64,
    /// False when the command changed nothing.
    pub appended: bool,
    /// For a repeated command, the id of what the first one created.
    pub existing_id: Option<String>,
}

/// Runs commands against aggregates through the event store.
pub struct Executor {
    appender: Appender,
    reader: EventReader,
    directory: Directory,
}

/// A failure that may need the caller's attention beyond the error itself.
#[derive(Debug)]
pub enum ExecuteError {
    Command(CommandError),
    /// A unique lookup (a DIRECT pair) already points at another stream.
    LookupTaken {
        existing_stream_id: String,
    },
}

impl<E: Into<CommandError>> From<E> for ExecuteError {
    fn from(error: E) -> Self {
        ExecuteError::Command(error.into())
    }
}

impl Executor {
    /// The position of `stream`'s event `version`, once committed. The cached
    /// state runs ahead of the log while a group commit is in flight, so a
    /// no-op decided on it may refer to an event a few milliseconds from
    /// being committed: the answer waits for it rather than naming no
    /// position (or one that may never exist).
    async fn committed_position(&self, stream: &StreamRef, version: u64) -> Result<u64, CommandError> {
        if version == 0 {
            return Ok(0);
        }
        let deadline = tokio::time::Instant::now() + NOOP_COMMIT_WAIT;
        loop {
            if let Some(position) = self.reader.position_of(stream, version).await? {
                return Ok(position);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(CommandError::Unavailable(format!("event {version} of {} is not committed yet", stream.stream_id)));
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    pub fn new(appender: Appender, reader: EventReader) -> Self {
        let directory = Directory::new(reader.clone());
        Self { appender, reader, directory }
    }

    pub fn reader(&self) -> &EventReader {
        &self.reader
    }

    /// This process's last committed position; changes when it appends.
    pub fn head(&self) -> tokio::sync::watch::Receiver<u64> {
        self.appender.head()
    }

    /// Decides `command` against the stream `stream_id` and appends its events.
    #[tracing::instrument(name = "execute", skip_all, fields(stream_type = A::STREAM_TYPE, stream_id = %stream_id))]
    pub async fn execute<A: CommandTarget>(
        &self,
        cache: &AggregateCache<A>,
        stream_id: &str,
        command: &A::Command,
        ctx: &CommandContext,
    ) -> Result<CommandOutcome, ExecuteError> {
        let stream = StreamRef { stream_type: A::STREAM_TYPE, stream_id: stream_id.to_owned() };
        for attempt in 1..=MAX_ATTEMPTS {
            let mut slot = cache.lock(stream_id).await;
            let was_cached = slot.loaded;
            if !was_cached {
                slot.catch_up(&self.reader, &stream).await?;
            }
            let mut decision = A::decide(command, &slot.state);
            if was_cached && !matches!(&decision, Ok(events) if !events.is_empty()) {
                // Refusals and no-ops are answered without the database, so
                // make sure they are not based on a state another process has moved past.
                slot.catch_up(&self.reader, &stream).await?;
                decision = A::decide(command, &slot.state);
            }
            let events = decision.map_err(CommandError::Domain)?;
            if events.is_empty() {
                let version = A::noop_version(command, &slot.state, slot.version);
                let existing_id = A::existing_id(command, &slot.state);
                drop(slot);
                let position = self.committed_position(&stream, version).await?;
                return Ok(CommandOutcome { position, appended: false, existing_id });
            }
            let references: Vec<_> = events.iter().flat_map(A::references).collect();
            self.directory.check(&references).await?;

            let metadata = ctx.metadata();
            let new_events = events
                .iter()
                .map(|e| NewEvent::from_payload(e, &metadata))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| CommandError::Corrupt(e.to_string()))?;
            let request = AppendRequest {
                stream: stream.clone(),
                expected_version: slot.version,
                events: new_events,
                lookups: events.iter().flat_map(A::lookups).collect(),
                idempotency: ctx.idempotency.clone(),
            };
            let pending = self.appender.submit(request).await?;
            for event in &events {
                slot.apply(event);
            }
            let slot_lock = tokio::sync::OwnedMutexGuard::mutex(&slot).clone();
            drop(slot);

            let outcome = pending.await.unwrap_or(Err(AppendError::Closed));
            match outcome {
                Ok(appended) => return Ok(CommandOutcome { position: appended.last_position, appended: true, existing_id: None }),
                Err(error) => {
                    slot_lock.lock().await.reset();
                    match error {
                        AppendError::VersionConflict(_) => {
                            tracing::debug!(attempt, "version conflict; retrying");
                            metrics::counter!("chat_command_retries_total").increment(1);
                            tokio::time::sleep(Duration::from_millis(u64::from(attempt.min(10)))).await;
                        }
                        AppendError::LookupTaken { existing_stream_id, .. } => {
                            return Err(ExecuteError::LookupTaken { existing_stream_id });
                        }
                        other => return Err(other.into()),
                    }
                }
            }
        }
        Err(CommandError::Contended(stream.to_string()).into())
    }
}
