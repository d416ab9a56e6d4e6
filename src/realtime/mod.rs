//! Realtime fan-out: every API process runs a hub that follows the read
//! models' progress, reads each newly projected event from the log, works out
//! who may see it (the conversation's members at that event) and pushes it
//! to their connections (WebSocket or Socket.IO), in log order, only after
//! the read models reflect it. Typing and presence travel beside the log,
//! on NATS core (`live.rs`).

mod frames;
mod hub;
pub mod live;
mod membership;
pub mod presence;
mod replay;
mod routing;
mod session;
pub mod typing;

pub use frames::Frame;
pub use hub::{Hub, HubConfig, Subscription, TooManyConnections};
pub use live::{LiveError, LiveSignals};
pub use session::{Ended, OpenError, Session};
