//! What subscribers receive: `{"event", "data", "position"}` (WebSocket) or
//! the event name with its data (Socket.IO).

use std::sync::Arc;

use serde_json::{json, Value};

/// One pushed event, serialised once and shared by every recipient.
#[derive(Debug, Clone)]
pub struct Frame {
    pub event: &'static str,
    pub data: Arc<Value>,
    pub position: u64,
    /// The WebSocket text frame (reference-counted: every recipient's
    /// connection sends the same bytes, none copies them).
    pub text: axum::extract::ws::Utf8Bytes,
    /// When the event was recorded (for delivery-lag metrics).
    pub recorded_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Not an event of the log (typing, presence): `position` only says how
    /// far the log had been pushed when it was sent, so it is never
    /// filtered as a duplicate, and it is not sent before `ready`.
    pub ephemeral: bool,
}

impl Frame {
    pub fn new(event: &'static str, data: Value, position: u64, recorded_at: Option<chrono::DateTime<chrono::Utc>>) -> Self {
        let text = json!({"event": event, "data": &data, "position": position}).to_string();
        Self { event, data: Arc::new(data), position, text: text.into(), recorded_at, ephemeral: false }
    }

    /// A frame that is not an event of the log (typing, presence), sent
    /// when the log had been pushed up to `position`.
    pub fn ephemeral(event: &'static str, data: Value, position: u64) -> Self {
        Self { ephemeral: true, ..Self::new(event, data, position, None) }
    }

    /// The `ready` frame: the connection is live from `position` on.
    pub fn ready(position: u64) -> Self {
        Self::new("ready", json!({"position": position}), position, None)
    }
}
