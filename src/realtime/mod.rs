//! Realtime fan-out: every API process runs a hub that follows the read
//! models' progress, reads each newly projected event from the log, works out
//! who may see it (the conversation's members at that event) and pushes it
//! to their connections (WebSocket or Socket.IO), in log order, only after
//! the read models reflect it.

mod frames;
mod hub;
mod membership;
mod replay;
mod routing;
pub mod socketio;

pub use frames::Frame;
pub use hub::{Hub, HubConfig, Subscription, TooManyConnections};
