//! The application layer: runs a command against its aggregate and appends
//! the outcome. Sits between the HTTP edge and the event store; knows nothing
//! of HTTP.

mod aggregate_cache;
mod command_context;
mod directory;
mod error;
mod executor;
pub mod idempotency;

pub use aggregate_cache::AggregateCache;
pub use command_context::CommandContext;
pub use directory::Directory;
pub use error::CommandError;
pub use executor::{CommandOutcome, CommandTarget, ExecuteError, Executor, DIRECT_LOOKUP, MESSAGE_LOOKUP};
