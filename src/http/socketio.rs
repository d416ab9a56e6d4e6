//! The Socket.IO v4 endpoint (`/socket.io/`, socketioxide): the same events
//! and data as the WebSocket, so an unmodified `socket.io-client` works. The
//! token goes in the handshake `auth` as `{"token"}`, with an optional
//! `after_position` to resume. The client's commands are events with an
//! acknowledgement (`socket.emit("message:send", {...}, ack)`), run exactly
//! as over HTTP (`socket_commands.rs`); an `id` in the data is the
//! command's idempotency key.

use serde::Deserialize;
use serde_json::Value;
use socketioxide::extract::{AckSender, Data, SocketRef, State, TryData};
use socketioxide::handler::ConnectHandler;
use socketioxide::layer::SocketIoLayer;
use socketioxide::SocketIo;
use tokio_util::sync::CancellationToken;

use super::socket_commands::{CommandQueue, InProcessRouter, QueuedCommand, SOCKET_COMMANDS};
use super::JwtKeys;
use crate::realtime::{Ended, Frame, Hub, OpenError, Session, TooManyConnections};

/// What the Socket.IO handlers need.
#[derive(Clone)]
struct SocketState {
    hub: Hub,
    jwt: JwtKeys,
    router: InProcessRouter,
    shutdown: CancellationToken,
}

/// The handshake's `auth` object.
#[derive(Debug, Deserialize)]
struct Auth {
    token: String,
    after_position: Option<u64>,
}

/// Why a handshake is refused (the client gets a `connect_error` with this message).
#[derive(Debug, thiserror::Error)]
enum Refused {
    #[error("unauthorized: auth must be {{\"token\": \"<JWT>\"}}")]
    Unauthorized,
    #[error("rate_limited: {0}")]
    TooManyConnections(#[from] TooManyConnections),
    #[error("validation_failed: after_position is past the last position of the event log")]
    PastTheHead,
    #[error("unavailable: the event log cannot be read; retry")]
    Unavailable,
}

/// The tower layer serving `/socket.io/`.
pub fn layer(hub: Hub, jwt: JwtKeys, router: InProcessRouter, shutdown: CancellationToken) -> SocketIoLayer {
    let (layer, io) = SocketIo::builder().with_state(SocketState { hub, jwt, router, shutdown }).build_layer();
    io.ns("/", on_connect.with(authenticate));
    layer
}

async fn authenticate(TryData(auth): TryData<Auth>, State(state): State<SocketState>) -> Result<(), Refused> {
    let auth = auth.map_err(|_| Refused::Unauthorized)?;
    let caller = state.jwt.verify(&auth.token).ok_or(Refused::Unauthorized)?;
    if let Some(after) = auth.after_position {
        if after > state.hub.log_head().await.map_err(|_| Refused::Unavailable)? {
            return Err(Refused::PastTheHead);
        }
    }
    Ok(state.hub.admits(caller.user_id)?)
}

async fn on_connect(socket: SocketRef, Data(auth): Data<Auth>, State(state): State<SocketState>) {
    let Some(caller) = state.jwt.verify(&auth.token) else {
        let _ = socket.disconnect();
        return;
    };
    let commands = CommandQueue::start(state.router.clone(), auth.token.clone());
    for name in SOCKET_COMMANDS {
        let commands = commands.clone();
        socket.on(name, move |Data(data): Data<Value>, ack: AckSender| async move {
            let (key, data) = take_key(data);
            let reply = Box::new(move |answer: Value| {
                let _ = ack.send(&answer);
            });
            commands.submit(QueuedCommand { command: name.to_owned(), key, data, reply }).await;
        });
    }
    // The pump ends as soon as the client goes (its connection counts for presence until then).
    let gone = CancellationToken::new();
    let on_gone = gone.clone();
    socket.on_disconnect(move || async move { on_gone.cancel() });
    if !socket.connected() {
        gone.cancel();
    }
    tokio::spawn(pump(socket, state, caller.user_id, auth.after_position, gone));
}

/// The optional `id` of a command's data: its idempotency key.
fn take_key(data: Value) -> (Option<String>, Value) {
    match data {
        Value::Object(mut fields) => match fields.remove("id") {
            Some(Value::String(key)) => (Some(key), Value::Object(fields)),
            Some(other) => {
                // Not a string: left in place, so the command answers 422 naming `id`.
                fields.insert("id".to_owned(), other);
                (None, Value::Object(fields))
            }
            None => (None, Value::Object(fields)),
        },
        other => (None, other),
    }
}

/// Emits the session's frames (replay, `ready`, live) until the socket goes
/// away, the subscriber falls behind, or the server stops.
async fn pump(socket: SocketRef, state: SocketState, user: crate::domain::UserId, after: Option<u64>, gone: CancellationToken) {
    let mut session = match Session::open(&state.hub, user, after).await {
        Ok(session) => session,
        Err(OpenError::TooManyConnections(refused)) => {
            let _ = socket.emit("error", &serde_json::json!({"code": "rate_limited", "detail": refused.to_string()}));
            let _ = socket.disconnect();
            return;
        }
        Err(OpenError::Store(error)) => {
            tracing::warn!(%error, "socket.io resume failed");
            let _ = socket.disconnect();
            return;
        }
    };
    loop {
        tokio::select! {
            frame = session.next() => match frame {
                Ok(frame) => {
                    if emit(&socket, &frame).is_err() {
                        let _ = socket.disconnect();
                        return;
                    }
                }
                Err(Ended::SlowConsumer) => {
                    let _ = socket.emit("error", &serde_json::json!({"code": "slow_consumer", "after_position": session.resume_position()}));
                    let _ = socket.disconnect();
                    return;
                }
                Err(Ended::Replay(error)) => {
                    tracing::warn!(%error, "socket.io resume failed");
                    let _ = socket.disconnect();
                    return;
                }
            },
            _ = gone.cancelled() => return,
            _ = state.shutdown.cancelled() => {
                let _ = socket.disconnect();
                return;
            }
        }
    }
}

fn emit(socket: &SocketRef, frame: &Frame) -> Result<(), socketioxide::SendError> {
    socket.emit(frame.event, frame.data.as_ref())
}
