//! The official JavaScript `socket.io-client` v4, run by Node.js
//! (`tests/socketio/client.js`; `npm ci --prefix tests/socketio`), as a test client.

use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use super::TestApp;

/// A running `socket.io-client`.
pub struct JsClient {
    child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
    /// Whether `typing` and `presence` events are kept (see `ws::Subscriber`).
    keep_signals: bool,
    stashed: std::collections::VecDeque<Value>,
    tags: u64,
}

impl JsClient {
    pub async fn connect(app: &TestApp, token: &str, after: Option<u64>) -> Self {
        Self::connect_to(app, token, after, false).await
    }

    /// Like `connect`, keeping `typing` and `presence` events.
    pub async fn connect_with_signals(app: &TestApp, token: &str) -> Self {
        Self::connect_to(app, token, None, true).await
    }

    async fn connect_to(app: &TestApp, token: &str, after: Option<u64>, keep_signals: bool) -> Self {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/socketio");
        assert!(std::path::Path::new(dir).join("node_modules/socket.io-client").exists(), "run `npm ci --prefix tests/socketio` first");
        let mut command = Command::new("node");
        command.current_dir(dir).arg("client.js").arg(&app.base).arg(token);
        if let Some(after) = after {
            command.arg(after.to_string());
        }
        let mut child =
            command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::inherit()).kill_on_drop(true).spawn().expect("node runs");
        let lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let stdin = child.stdin.take().expect("stdin");
        Self { child, stdin, lines, keep_signals, stashed: Default::default(), tags: 0 }
    }

    pub async fn next(&mut self, timeout: Duration) -> Option<Value> {
        if let Some(event) = self.stashed.pop_front() {
            return Some(event);
        }
        self.read(timeout).await
    }

    async fn read(&mut self, timeout: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let line = tokio::time::timeout_at(deadline, self.lines.next_line()).await.ok()?.ok()??;
            let event: Value = serde_json::from_str(&line).expect("a JSON line");
            if !self.keep_signals && (event["event"] == "typing" || event["event"] == "presence") {
                continue;
            }
            return Some(event);
        }
    }

    /// Emits `event` with `data` and an acknowledgement, without waiting; the tag to wait with.
    pub async fn emit(&mut self, event: &str, data: Value) -> String {
        self.tags += 1;
        let tag = format!("t{}", self.tags);
        let line = serde_json::json!({"tag": tag, "event": event, "data": data}).to_string() + "\n";
        self.stdin.write_all(line.as_bytes()).await.expect("command written");
        self.stdin.flush().await.expect("command flushed");
        tag
    }

    /// The ack of the emit tagged `tag` (other events are kept for `next`).
    pub async fn ack(&mut self, tag: &str) -> Value {
        loop {
            let event = self.read(Duration::from_secs(15)).await.unwrap_or_else(|| panic!("no ack for {tag}"));
            if event["event"] == "ack" && event["data"]["tag"] == tag {
                assert!(event["data"].get("error").is_none(), "the ack timed out: {event}");
                return event["data"]["ack"].clone();
            }
            self.stashed.push_back(event);
        }
    }

    /// Emits a command and waits for its ack.
    pub async fn command(&mut self, event: &str, data: Value) -> Value {
        let tag = self.emit(event, data).await;
        self.ack(&tag).await
    }

    /// Events until `event` (included).
    pub async fn until(&mut self, event: &str) -> Vec<Value> {
        let mut events = Vec::new();
        loop {
            let next = self.next(Duration::from_secs(15)).await.unwrap_or_else(|| panic!("no {event}; got {events:?}"));
            let done = next["event"] == event;
            events.push(next);
            if done {
                return events;
            }
        }
    }
}

impl Drop for JsClient {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}
