//! `GET /api/v1/ws`: the realtime WebSocket. Frames are `{"event", "data",
//! "position"}`; `ready` tells the position the connection is live from
//! (`realtime::Session` decides the order). Text frames from the client are
//! commands (`socket_commands.rs`), answered by `ack` frames.

use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::Extension;
use futures::{SinkExt, StreamExt};

use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::super::query_params::QueryParams;
use super::super::socket_commands::{self, CommandQueue, QueuedCommand};
use super::super::{ApiError, AppState, Caller, ConnectionSlot};
use crate::realtime::{Ended, Frame, OpenError, Session};

/// Ping interval; a client silent for `DEAD_AFTER` is disconnected.
const PING_EVERY: Duration = Duration::from_secs(20);
const DEAD_AFTER: Duration = Duration::from_secs(60);
/// A send that does not complete in this time means the client stopped reading.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// Close code for a subscriber dropped for not keeping up.
pub const CLOSE_SLOW_CONSUMER: u16 = 4001;
/// Close code for a connection over the per-user cap (raced past the check before the upgrade).
const CLOSE_POLICY_VIOLATION: u16 = 1008;

/// Opens a realtime subscription (token in the `Authorization` header or `?token=`;
/// `?after_position=N` replays what was missed since N first).
#[utoipa::path(get, path = "/api/v1/ws", tag = "realtime", description = super::super::realtime_doc::PROTOCOL,
    params(("token" = Option<String>, Query, description = "bearer token, if not in the Authorization header"),
        ("after_position" = Option<u64>, Query, maximum = 9223372036854775807_i64, description = "replay every event after N first")),
    responses((status = 101, description = "WebSocket upgrade"),
        (status = 400, body = super::super::problem::Problem, description = "not a WebSocket handshake"),
        (status = 401, body = super::super::problem::Problem),
        (status = 426, body = super::super::problem::Problem, description = "upgrade_required: no Upgrade header"),
        (status = 422, body = super::super::problem::Problem, description = "after_position past the log's last position"),
        (status = 429, body = super::super::problem::Problem, description = "rate_limited: this user holds the most realtime connections"),
        (status = 503, body = super::super::problem::Problem, description = "realtime is not running in this process")))]
pub async fn websocket(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    slot: Option<Extension<ConnectionSlot>>,
    upgrade: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let params = QueryParams::parse(query.as_deref());
    let token = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .or(params.text("token"))
        .ok_or(ApiError::Unauthorized)?;
    let token = token.trim().to_owned();
    let caller = state.jwt.verify(&token).ok_or(ApiError::Unauthorized)?;
    let after = params.integer("after_position", 0, i64::MAX as u64, None)?;
    let hub = state.hub.clone().ok_or_else(|| ApiError::Unavailable("realtime is not running in this process".into()))?;
    if let Some(after) = after {
        if after > hub.log_head().await? {
            return Err(ApiError::invalid("after_position", "is past the last position of the event log"));
        }
    }
    hub.admits(caller.user_id).map_err(|refused| ApiError::TooManyConnections(refused.0))?;
    Ok(upgrade
        .read_buffer_size(4 * 1024)
        .write_buffer_size(4 * 1024)
        .max_write_buffer_size(256 * 1024)
        .max_message_size(64 * 1024)
        .on_upgrade(move |socket| async move {
            // The socket keeps its connection's slot (`CHAT_MAX_CONNECTIONS`) while it lives.
            let _slot = slot;
            serve(socket, state, hub, caller, token, after).await
        }))
}

async fn serve(socket: WebSocket, state: AppState, hub: crate::realtime::Hub, caller: Caller, token: String, after: Option<u64>) {
    let (mut sink, mut incoming) = socket.split();
    let mut session = match Session::open(&hub, caller.user_id, after).await {
        Ok(session) => session,
        Err(OpenError::TooManyConnections(refused)) => {
            let _ = tokio::time::timeout(SEND_TIMEOUT, sink.send(close(CLOSE_POLICY_VIOLATION, &refused.to_string()))).await;
            return;
        }
        Err(OpenError::Store(error)) => {
            tracing::warn!(%error, "resume failed");
            let _ = tokio::time::timeout(SEND_TIMEOUT, sink.send(close(1011, "resume failed; retry"))).await;
            return;
        }
    };
    let commands = CommandQueue::start(state.in_process.clone(), token);
    let (ack_tx, mut acks) = mpsc::unbounded_channel::<Message>();
    let mut last_heard = Instant::now();
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.tick().await;
    loop {
        tokio::select! {
            biased;
            Some(ack) = acks.recv() => {
                if tokio::time::timeout(SEND_TIMEOUT, sink.send(ack)).await.map_or(true, |r| r.is_err()) {
                    return;
                }
            }
            frame = session.next() => match frame {
                Ok(frame) => {
                    if send(&mut sink, &frame).await.is_err() {
                        return;
                    }
                }
                Err(Ended::SlowConsumer) => {
                    let reason = format!("slow consumer; resume with after_position={}", session.resume_position());
                    let _ = tokio::time::timeout(SEND_TIMEOUT, sink.send(close(CLOSE_SLOW_CONSUMER, &reason))).await;
                    return;
                }
                Err(Ended::Replay(error)) => {
                    tracing::warn!(%error, "resume failed");
                    let _ = tokio::time::timeout(SEND_TIMEOUT, sink.send(close(1011, "resume failed; retry"))).await;
                    return;
                }
            },
            message = incoming.next() => match message {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(Message::Text(text))) => {
                    last_heard = Instant::now();
                    take_command(&commands, &ack_tx, text.as_str()).await;
                }
                Some(Ok(_)) => last_heard = Instant::now(),
            },
            _ = ping.tick() => {
                if last_heard.elapsed() > DEAD_AFTER {
                    let _ = tokio::time::timeout(SEND_TIMEOUT, sink.send(close(1001, "heartbeat timeout"))).await;
                    return;
                }
                if tokio::time::timeout(SEND_TIMEOUT, sink.send(Message::Ping(Default::default()))).await.map_or(true, |r| r.is_err()) {
                    return;
                }
            }
            _ = state.shutdown.cancelled() => {
                let reason = format!("server shutting down; resume with after_position={}", session.resume_position());
                let _ = tokio::time::timeout(SEND_TIMEOUT, sink.send(close(1012, &reason))).await;
                return;
            }
        }
    }
}

/// A text frame from the client is a command: queue it; its ack
/// `{"event": "ack", "data": {"id", "ok", ...}}` comes back on `acks`.
async fn take_command(commands: &CommandQueue, acks: &mpsc::UnboundedSender<Message>, text: &str) {
    match socket_commands::parse_frame(text) {
        Ok((command, id, data)) => {
            let acks = acks.clone();
            let reply_id = id.clone();
            let reply = Box::new(move |ack: Value| {
                let _ = acks.send(ack_frame(reply_id, ack));
            });
            commands.submit(QueuedCommand { command, key: id, data, reply }).await;
        }
        Err((id, refused)) => {
            let _ = acks.send(ack_frame(id, socket_commands::refusal(refused).await));
        }
    }
}

/// The ack frame. It has no `position` of its own: the command's position
/// (in `data`) may be ahead of the events this connection has received yet.
fn ack_frame(id: Option<String>, ack: Value) -> Message {
    let mut data = serde_json::Map::from_iter([("id".to_owned(), id.map_or(Value::Null, Value::String))]);
    if let Value::Object(fields) = ack {
        data.extend(fields);
    }
    Message::Text(json!({"event": "ack", "data": data}).to_string().into())
}

async fn send(sink: &mut futures::stream::SplitSink<WebSocket, Message>, frame: &Frame) -> Result<(), ()> {
    match tokio::time::timeout(SEND_TIMEOUT, sink.send(Message::Text(frame.text.clone()))).await {
        Ok(Ok(())) => Ok(()),
        _ => Err(()),
    }
}

fn close(code: u16, reason: &str) -> Message {
    Message::Close(Some(CloseFrame { code, reason: reason.into() }))
}
