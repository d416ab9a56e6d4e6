//! The Socket.IO v4 endpoint (`/socket.io/`, socketioxide): the same events
//! and data as the WebSocket, so an unmodified `socket.io-client` works. The
//! token goes in the handshake `auth` as `{"token"}`, with an optional
//! `after_position` to resume.

use serde::Deserialize;
use socketioxide::extract::{Data, SocketRef, State, TryData};
use socketioxide::handler::ConnectHandler;
use socketioxide::layer::SocketIoLayer;
use socketioxide::SocketIo;
use tokio_util::sync::CancellationToken;

use super::{Frame, Hub};
use crate::http::JwtKeys;

/// What the Socket.IO handlers need.
#[derive(Clone)]
struct SocketState {
    hub: Hub,
    jwt: JwtKeys,
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
    TooManyConnections(#[from] super::hub::TooManyConnections),
}

/// The tower layer serving `/socket.io/`.
pub fn layer(hub: Hub, jwt: JwtKeys, shutdown: CancellationToken) -> SocketIoLayer {
    let (layer, io) = SocketIo::builder().with_state(SocketState { hub, jwt, shutdown }).build_layer();
    io.ns("/", on_connect.with(authenticate));
    layer
}

async fn authenticate(TryData(auth): TryData<Auth>, State(state): State<SocketState>) -> Result<(), Refused> {
    let auth = auth.map_err(|_| Refused::Unauthorized)?;
    let caller = state.jwt.verify(&auth.token).ok_or(Refused::Unauthorized)?;
    Ok(state.hub.admits(caller.user_id)?)
}

async fn on_connect(socket: SocketRef, Data(auth): Data<Auth>, State(state): State<SocketState>) {
    let Some(caller) = state.jwt.verify(&auth.token) else {
        let _ = socket.disconnect();
        return;
    };
    tokio::spawn(pump(socket, state, caller.user_id, auth.after_position));
}

/// Replays what was missed, says `ready`, then forwards live frames until the
/// socket goes away, the subscriber falls behind, or the server stops.
async fn pump(socket: SocketRef, state: SocketState, user: crate::domain::UserId, after: Option<u64>) {
    let mut subscription = match state.hub.subscribe(user).await {
        Ok(subscription) => subscription,
        Err(refused) => {
            let _ = socket.emit("error", &serde_json::json!({"code": "rate_limited", "detail": refused.to_string()}));
            let _ = socket.disconnect();
            return;
        }
    };
    let mut live_from = subscription.live_from;
    if let Some(after) = after {
        if after < live_from {
            match state.hub.replay(user, after, live_from).await {
                Ok(frames) => {
                    for frame in &frames {
                        if emit(&socket, frame).is_err() {
                            return;
                        }
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "socket.io resume failed");
                    let _ = socket.disconnect();
                    return;
                }
            }
        }
        live_from = live_from.max(after);
    }
    if emit(&socket, &Frame::ready(live_from)).is_err() {
        return;
    }
    let mut last_sent = live_from;
    loop {
        tokio::select! {
            frame = subscription.frames.recv() => match frame {
                Some(frame) if frame.position <= live_from => {}
                Some(frame) => {
                    if emit(&socket, &frame).is_err() {
                        let _ = socket.disconnect();
                        return;
                    }
                    last_sent = frame.position;
                }
                None => {
                    let _ = socket.emit("error", &serde_json::json!({"code": "slow_consumer", "after_position": last_sent}));
                    let _ = socket.disconnect();
                    return;
                }
            },
            _ = tokio::time::sleep(std::time::Duration::from_secs(5)) => {
                if !socket.connected() {
                    return;
                }
            }
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
