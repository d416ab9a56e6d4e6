//! A WebSocket subscriber for tests (tokio-tungstenite).

use std::time::Duration;

use futures::StreamExt;

use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

use super::TestApp;

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A connected subscriber.
pub struct Subscriber {
    socket: Socket,
    /// The position of the `ready` frame.
    pub ready_at: u64,
    /// Frames received before `ready` (a resume's replay).
    pub replayed: Vec<Value>,
    /// Whether `typing` and `presence` frames are kept (tests of the log's
    /// events leave them out: they come whenever someone types or connects).
    keep_signals: bool,
    /// Frames read while waiting for an ack, not yet handed out.
    stashed: std::collections::VecDeque<Value>,
}

impl Subscriber {
    /// Connects as `user` (token in the query string) and waits for `ready`.
    pub async fn connect(app: &TestApp, user: i64, after: Option<u64>) -> Self {
        Self::connect_to(app, user, after, false).await
    }

    /// Like `connect`, keeping `typing` and `presence` frames.
    pub async fn connect_with_signals(app: &TestApp, user: i64) -> Self {
        Self::connect_to(app, user, None, true).await
    }

    async fn connect_to(app: &TestApp, user: i64, after: Option<u64>, keep_signals: bool) -> Self {
        let token = app.token(user);
        let base = app.base.replacen("http://", "ws://", 1);
        let url = match after {
            Some(after) => format!("{base}/api/v1/ws?token={token}&after_position={after}"),
            None => format!("{base}/api/v1/ws?token={token}"),
        };
        let (socket, _) = tokio_tungstenite::connect_async(url).await.expect("websocket connects");
        let mut subscriber = Self { socket, ready_at: 0, replayed: Vec::new(), keep_signals, stashed: Default::default() };
        loop {
            let frame = subscriber.next(Duration::from_secs(10)).await.expect("ready arrives");
            if frame["event"] == "ready" {
                subscriber.ready_at = frame["position"].as_u64().expect("ready position");
                assert_eq!(frame["data"]["position"], frame["position"]);
                return subscriber;
            }
            subscriber.replayed.push(frame);
        }
    }

    /// The next event frame, if one arrives within `timeout`.
    pub async fn next(&mut self, timeout: Duration) -> Option<Value> {
        if let Some(frame) = self.stashed.pop_front() {
            return Some(frame);
        }
        self.read(timeout).await
    }

    /// Sends a command frame `{"command", "id", "data"}`.
    pub async fn send_command(&mut self, command: &str, id: Option<&str>, data: Value) {
        let frame = serde_json::json!({"command": command, "id": id, "data": data});
        self.send_text(&frame.to_string()).await;
    }

    /// Sends a raw text frame.
    pub async fn send_text(&mut self, text: &str) {
        use futures::SinkExt;
        self.socket.send(Message::Text(text.to_owned().into())).await.expect("frame sent");
    }

    /// Sends a command and waits for its ack's `data` (other frames are kept for `next`).
    pub async fn command(&mut self, command: &str, id: &str, data: Value) -> Value {
        self.send_command(command, Some(id), data).await;
        self.ack(Some(id)).await
    }

    /// Waits for the ack of `id` (other frames are kept for `next`); panics after 10 s.
    pub async fn ack(&mut self, id: Option<&str>) -> Value {
        loop {
            let frame = self.read(Duration::from_secs(10)).await.unwrap_or_else(|| panic!("no ack for {id:?} within 10 s"));
            if frame["event"] == "ack" && frame["data"]["id"].as_str() == id {
                assert!(frame.get("position").is_none(), "an ack has no position of its own: {frame}");
                return frame["data"].clone();
            }
            self.stashed.push_back(frame);
        }
    }

    async fn read(&mut self, timeout: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let message = tokio::time::timeout_at(deadline, self.socket.next()).await.ok()??.ok()?;
            match message {
                Message::Text(text) => {
                    let frame: Value = serde_json::from_str(text.as_str()).expect("JSON frame");
                    if !self.keep_signals && (frame["event"] == "typing" || frame["event"] == "presence") {
                        continue;
                    }
                    return Some(frame);
                }
                Message::Close(frame) => {
                    return Some(serde_json::json!({"closed": frame.map(|f| (u16::from(f.code), f.reason.to_string()))}))
                }
                _ => continue,
            }
        }
    }

    /// Frames until one with `event` arrives (included); panics after 10 s.
    pub async fn until(&mut self, event: &str) -> Vec<Value> {
        let mut frames = Vec::new();
        loop {
            let frame = self.next(Duration::from_secs(10)).await.unwrap_or_else(|| panic!("no {event} within 10 s; got {frames:?}"));
            let done = frame["event"] == event;
            frames.push(frame);
            if done {
                return frames;
            }
        }
    }

    /// Asserts nothing arrives for `quiet`.
    pub async fn expect_silence(&mut self, quiet: Duration) {
        if let Some(frame) = self.next(quiet).await {
            panic!("unexpected frame {frame}");
        }
    }

    pub async fn close(mut self) {
        let _ = self.socket.close(None).await;
    }
}
