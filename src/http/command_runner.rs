//! Runs a command request end to end: `Idempotency-Key` reservation and
//! replay, the command context, and the answer `{..ids, "position"}`.

use std::future::Future;

use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::{ApiError, AppState, Caller};
use crate::app::idempotency::{IdempotencyStore, Reservation};
use crate::app::CommandContext;
use crate::event_store::IdempotencyCompletion;

/// Method, path and headers of a command request (never rejects).
pub struct RequestHead {
    pub method: Method,
    pub uri: Uri,
    pub headers: HeaderMap,
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for RequestHead {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Self { method: parts.method.clone(), uri: parts.uri.clone(), headers: parts.headers.clone() })
    }
}

/// The request as far as idempotency and tracing need it.
pub struct CommandRequest {
    pub key: Option<String>,
    pub fingerprint: String,
    pub request_id: String,
}

impl CommandRequest {
    /// Reads the `Idempotency-Key` (1-255 visible ASCII characters) and
    /// fingerprints method, path and body.
    pub fn new(head: &RequestHead, body: &[u8]) -> Result<Self, ApiError> {
        let RequestHead { method, uri, headers } = head;
        let key = match headers.get("idempotency-key") {
            None => None,
            Some(value) => {
                let key = value.to_str().ok().filter(|k| !k.is_empty() && k.len() <= 255 && k.bytes().all(|b| b.is_ascii_graphic()));
                Some(key.ok_or_else(|| ApiError::invalid("Idempotency-Key", "must be 1 to 255 visible ASCII characters"))?.to_owned())
            }
        };
        let mut hash = Sha256::new();
        hash.update(method.as_str());
        hash.update(b" ");
        hash.update(uri.path());
        hash.update(b"\n");
        hash.update(body);
        let request_id = headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty() && v.len() <= 64)
            .map(str::to_owned)
            .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
        Ok(Self { key, fingerprint: hex::encode(hash.finalize()), request_id })
    }
}

/// The answer of a command: status and body (ids and `position`).
pub struct Answer {
    pub status: StatusCode,
    pub body: Map<String, Value>,
}

impl Answer {
    /// `{ "<field>": id }` with `status`, before `position` is known.
    pub fn new(status: StatusCode) -> Self {
        Self { status, body: Map::new() }
    }

    pub fn with(mut self, field: &str, value: impl Into<Value>) -> Self {
        self.body.insert(field.to_owned(), value.into());
        self
    }

    pub fn at(mut self, position: u64) -> Self {
        self.body.insert("position".to_owned(), position.into());
        self
    }

    fn into_response(self) -> Response {
        (self.status, axum::Json(Value::Object(self.body))).into_response()
    }
}

/// Runs `run` for `caller` with idempotency. `planned` is the answer if the
/// command appends (stored with the events when a key is given); `run` returns
/// the actual answer, position included.
pub async fn run_command<F, Fut>(
    state: &AppState,
    caller: &Caller,
    request: CommandRequest,
    planned: Answer,
    run: F,
) -> Result<Response, ApiError>
where
    F: FnOnce(CommandContext) -> Fut,
    Fut: Future<Output = Result<Answer, ApiError>>,
{
    let user = caller.user_id;
    let lease = IdempotencyStore::new_lease();
    if let Some(key) = &request.key {
        let reservation = state.idempotency.reserve(user, key, &request.fingerprint, &lease).await.inspect_err(|_| {
            // The reservation may have been committed before the connection failed.
            state.idempotency.release_later(user, key, &lease);
        })?;
        match reservation {
            Reservation::Acquired => {}
            Reservation::Replay { status, body } => {
                let status = StatusCode::from_u16(status).map_err(|e| ApiError::Internal(e.to_string()))?;
                let body: Value = serde_json::from_str(&body).map_err(|e| ApiError::Internal(e.to_string()))?;
                return Ok((status, [("idempotent-replayed", "true")], axum::Json(body)).into_response());
            }
            Reservation::Mismatch => {
                return Err(ApiError::invalid("Idempotency-Key", "was already used with a different request"));
            }
            Reservation::InProgress => return Err(ApiError::IdempotencyInProgress),
        }
    }
    let ctx = CommandContext {
        actor: Some(user),
        correlation_id: request.request_id.clone(),
        causation_id: request.request_id.clone(),
        idempotency: request.key.clone().map(|key| IdempotencyCompletion {
            user_id: user.get(),
            key,
            status: planned.status.as_u16(),
            body: planned.body.clone(),
        }),
    };
    let result = run(ctx).await;
    if let Some(key) = &request.key {
        match &result {
            // The appender stored the response with the events when it appended;
            // a no-op answer (no append) is stored here. Storing twice is harmless.
            // A failure to store it only means a retry runs the command again,
            // which then changes nothing and answers the same.
            Ok(answer) => {
                let body = Value::Object(answer.body.clone()).to_string();
                if let Err(error) = state.idempotency.complete(user, key, answer.status.as_u16(), &body).await {
                    tracing::warn!(%error, "could not store an idempotent response");
                }
            }
            // The database is likely down: answer now, free the key when it is back.
            Err(ApiError::Unavailable(_)) => state.idempotency.release_later(user, key, &lease),
            // A refusal: free the key before answering, so a corrected retry runs.
            Err(_) => {
                if let Err(error) = state.idempotency.release(user, key, &lease).await {
                    tracing::warn!(%error, "could not release an idempotency key; retrying in the background");
                    state.idempotency.release_later(user, key, &lease);
                }
            }
        }
    }
    result.map(Answer::into_response)
}
