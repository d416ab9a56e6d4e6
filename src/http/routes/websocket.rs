//! `GET /api/v1/ws`: the realtime WebSocket. Frames are `{"event", "data",
//! "position"}`; `ready` tells the position the connection is live from.

use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::Extension;
use futures::{SinkExt, StreamExt};

use super::super::query_params::QueryParams;
use super::super::{ApiError, AppState, Caller, ConnectionSlot};
use crate::realtime::Frame;

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
#[utoipa::path(get, path = "/api/v1/ws", tag = "realtime",
    params(("token" = Option<String>, Query, description = "bearer token, if not in the Authorization header"),
        ("after_position" = Option<u64>, Query, maximum = 9223372036854775807_i64, description = "replay every event after N first")),
    responses((status = 101, description = "WebSocket upgrade"),
        (status = 400, body = super::super::problem::Problem, description = "not a WebSocket handshake"),
        (status = 401, body = super::super::problem::Problem),
        (status = 426, body = super::super::problem::Problem, description = "upgrade_required: no Upgrade header"),
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
    let caller = state.jwt.verify(token.trim()).ok_or(ApiError::Unauthorized)?;
    let after = params.integer("after_position", 0, i64::MAX as u64, None)?;
    let hub = state.hub.clone().ok_or_else(|| ApiError::Unavailable("realtime is not running in this process".into()))?;
    hub.admits(caller.user_id).map_err(|refused| ApiError::TooManyConnections(refused.0))?;
    let shutdown = state.shutdown.clone();
    Ok(upgrade
        .read_buffer_size(4 * 1024)
        .write_buffer_size(4 * 1024)
        .max_write_buffer_size(256 * 1024)
        .max_message_size(64 * 1024)
        .on_upgrade(move |socket| async move {
            // The socket keeps its connection's slot (`CHAT_MAX_CONNECTIONS`) while it lives.
            let _slot = slot;
            serve(socket, hub, caller, after, shutdown).await
        }))
}

async fn serve(
    socket: WebSocket,
    hub: crate::realtime::Hub,
    caller: Caller,
    after: Option<u64>,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let (mut sink, mut incoming) = socket.split();
    let mut subscription = match hub.subscribe(caller.user_id).await {
        Ok(subscription) => subscription,
        Err(refused) => {
            let _ = tokio::time::timeout(SEND_TIMEOUT, sink.send(close(CLOSE_POLICY_VIOLATION, &refused.to_string()))).await;
            return;
        }
    };
    let mut live_from = subscription.live_from;
    if let Some(after) = after {
        if after < live_from {
            match hub.replay(caller.user_id, after, live_from).await {
                Ok(frames) => {
                    for frame in frames {
                        if send(&mut sink, &frame).await.is_err() {
                            return;
                        }
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "resume failed");
                    let _ = sink.send(close(1011, "resume failed; retry")).await;
                    return;
                }
            }
        }
        live_from = live_from.max(after);
    }
    if send(&mut sink, &Frame::ready(live_from)).await.is_err() {
        return;
    }
    let mut last_sent = live_from;
    let mut last_heard = Instant::now();
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.tick().await;
    loop {
        tokio::select! {
            frame = subscription.frames.recv() => match frame {
                Some(frame) if frame.position <= live_from => {}
                Some(frame) => {
                    if send(&mut sink, &frame).await.is_err() {
                        return;
                    }
                    last_sent = frame.position;
                }
                None => {
                    let reason = format!("slow consumer; resume with after_position={last_sent}");
                    let _ = tokio::time::timeout(SEND_TIMEOUT, sink.send(close(CLOSE_SLOW_CONSUMER, &reason))).await;
                    return;
                }
            },
            message = incoming.next() => match message {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
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
            _ = shutdown.cancelled() => {
                let reason = format!("server shutting down; resume with after_position={last_sent}");
                let _ = tokio::time::timeout(SEND_TIMEOUT, sink.send(close(1012, &reason))).await;
                return;
            }
        }
    }
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
