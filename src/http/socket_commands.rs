//! Commands sent over a realtime connection: WebSocket text frames
//! `{"command", "id", "data"}` and Socket.IO events with an
//! acknowledgement. Each is turned into the HTTP request that does the same
//! thing and run through this process's own router, in process: the same
//! validation, authorisation, rate limit and idempotency as over HTTP (the
//! client's `id` is the `Idempotency-Key`), one code path for both.
//!
//! The answer (the ack) is `{"ok": true, ..the HTTP answer's fields}` or
//! `{"ok": false, "error": <the problem document HTTP answers>}`.

use std::sync::{Arc, PoisonError, RwLock};

use axum::body::Body;
use axum::http::{header, Method, Request};
use axum::response::IntoResponse;
use axum::Router;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::{json, Map, Value};
use tokio::sync::mpsc;
use tower::ServiceExt;

use super::ApiError;

/// The commands a realtime connection accepts, by name.
pub const SOCKET_COMMANDS: [&str; 8] = [
    "message:send",
    "message:edit",
    "message:delete",
    "message:react",
    "message:unreact",
    "conversation:read",
    "typing:start",
    "typing:stop",
];

/// Commands one connection may have waiting; more are refused with 429 at once.
const QUEUE: usize = 32;
/// What is escaped in a path segment made of a client's value: all but
/// letters, digits and `-_~`, so that a value stays one segment.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'~');
/// Largest answer body read back from the router.
const MAX_ANSWER_BYTES: usize = 1024 * 1024;

/// The API's router, reachable from the realtime connections it serves (set
/// when the router is built). The router holds the services that hold this,
/// so it is cleared at shutdown: the cycle would otherwise keep the command
/// handles, and with them the appender, alive for ever.
#[derive(Clone, Default)]
pub struct InProcessRouter(Arc<RwLock<Option<Router>>>);

impl InProcessRouter {
    /// Makes `router` the one socket commands run through.
    pub fn set(&self, router: Router) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = Some(router);
    }

    /// Lets the router go (at shutdown, once the server has stopped serving).
    pub fn clear(&self) {
        self.0.write().unwrap_or_else(PoisonError::into_inner).take();
    }

    /// Runs one socket command as the user of `token`; the answer is the ack.
    pub async fn run(&self, token: &str, command: &str, key: Option<&str>, data: &Value) -> Value {
        let router = self.0.read().unwrap_or_else(PoisonError::into_inner).clone();
        let response = match (router, http_request(token, command, key, data)) {
            (Some(router), Ok(request)) => match router.oneshot(request).await {
                Ok(response) => response,
                Err(never) => match never {},
            },
            (None, _) => ApiError::Unavailable("the API is not running in this process".into()).into_response(),
            (_, Err(refused)) => refused.into_response(),
        };
        ack(response).await
    }
}

/// A command waiting for its turn, and where its ack goes.
pub struct QueuedCommand {
    pub command: String,
    pub key: Option<String>,
    pub data: Value,
    pub reply: Box<dyn FnOnce(Value) + Send>,
}

/// A connection's command queue: its commands run one after the other, in
/// the order the client sent them, while its events keep flowing.
#[derive(Clone)]
pub struct CommandQueue(mpsc::Sender<QueuedCommand>);

impl CommandQueue {
    /// Starts the queue of a connection authenticated with `token`; it ends
    /// when the last handle is dropped.
    pub fn start(router: InProcessRouter, token: String) -> Self {
        let (tx, mut rx) = mpsc::channel::<QueuedCommand>(QUEUE);
        tokio::spawn(async move {
            while let Some(queued) = rx.recv().await {
                let answer = router.run(&token, &queued.command, queued.key.as_deref(), &queued.data).await;
                (queued.reply)(answer);
            }
        });
        Self(tx)
    }

    /// Queues a command; when the queue is full, the reply is a 429 at once.
    pub async fn submit(&self, queued: QueuedCommand) {
        if let Err(mpsc::error::TrySendError::Full(queued) | mpsc::error::TrySendError::Closed(queued)) = self.0.try_send(queued) {
            let refused = ApiError::RateLimited { retry_after: std::time::Duration::from_secs(1) };
            (queued.reply)(ack(refused.into_response()).await);
        }
    }
}

/// The problem document of a refusal made before any request runs (a frame
/// that is not a command at all).
pub async fn refusal(error: ApiError) -> Value {
    ack(error.into_response()).await
}

/// A command frame read: `(command, id, data)`.
pub type ParsedFrame = (String, Option<String>, Value);

/// Reads a WebSocket text frame as a command; a refusal carries the
/// frame's `id` when it could be read, so the ack names it.
pub fn parse_frame(text: &str) -> Result<ParsedFrame, (Option<String>, ApiError)> {
    let value: Value = serde_json::from_str(text).map_err(|e| (None, ApiError::BadRequest(format!("malformed JSON: {e}"))))?;
    let Value::Object(mut fields) = value else { return Err((None, ApiError::invalid("body", "must be a JSON object"))) };
    let id = match fields.remove("id") {
        None | Some(Value::Null) => None,
        Some(Value::String(id)) => Some(id),
        Some(_) => return Err((None, ApiError::invalid("id", "must be a string"))),
    };
    let command = match fields.remove("command") {
        Some(Value::String(command)) => command,
        Some(_) => return Err((id, ApiError::invalid("command", "must be a string"))),
        None => return Err((id, ApiError::invalid("command", "is required"))),
    };
    let data = fields.remove("data").unwrap_or_else(|| Value::Object(Map::new()));
    if let Some(field) = fields.keys().next() {
        return Err((id, ApiError::invalid(field, "unknown field")));
    }
    Ok((command, id, data))
}

/// The HTTP request that does what `command` asks.
fn http_request(token: &str, command: &str, key: Option<&str>, data: &Value) -> Result<Request<Body>, ApiError> {
    let (method, path, body) = route(command, data)?;
    let mut request =
        Request::builder().method(method).uri(format!("/api/v1{path}")).header(header::AUTHORIZATION, format!("Bearer {token}"));
    if let Some(key) = key {
        if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ApiError::invalid("id", "must be 1 to 255 visible ASCII characters"));
        }
        request = request.header("idempotency-key", key);
    }
    let body = match body {
        Some(body) => {
            request = request.header(header::CONTENT_TYPE, "application/json");
            Body::from(Value::Object(body).to_string())
        }
        None => Body::empty(),
    };
    request.body(body).map_err(|e| ApiError::Internal(e.to_string()))
}

/// Method, path (under `/api/v1`) and body of an HTTP request.
type Route = (Method, String, Option<Map<String, Value>>);

/// Method, path (under `/api/v1`) and body of a command; the fields naming
/// the target (`conversation_id`, `message_id`, `emoji`) go into the path,
/// the rest is the body, exactly as over HTTP.
fn route(command: &str, data: &Value) -> Result<Route, ApiError> {
    let Value::Object(fields) = data else { return Err(ApiError::invalid("data", "must be a JSON object")) };
    let mut body = fields.clone();
    let mut take = |field: &str| match body.remove(field) {
        Some(Value::String(value)) => Ok(utf8_percent_encode(&value, SEGMENT).to_string()),
        Some(_) => Err(ApiError::invalid(field, "must be a string")),
        None => Err(ApiError::invalid(field, "is required")),
    };
    let (method, path, has_body) = match command {
        "message:send" => (Method::POST, format!("/conversations/{}/messages", take("conversation_id")?), true),
        "message:edit" => (Method::PATCH, format!("/messages/{}", take("message_id")?), true),
        "message:delete" => (Method::DELETE, format!("/messages/{}", take("message_id")?), false),
        "message:react" | "message:unreact" => {
            let path = format!("/messages/{}/reactions/{}", take("message_id")?, take("emoji")?);
            (if command == "message:react" { Method::PUT } else { Method::DELETE }, path, false)
        }
        "conversation:read" => (Method::POST, format!("/conversations/{}/read", take("conversation_id")?), true),
        "typing:start" | "typing:stop" => {
            let path = format!("/conversations/{}/typing", take("conversation_id")?);
            if let Some(field) = body.keys().next() {
                return Err(ApiError::invalid(field, "unknown field"));
            }
            let state = if command == "typing:start" { "started" } else { "stopped" };
            return Ok((Method::POST, path, Some(Map::from_iter([("state".to_owned(), json!(state))]))));
        }
        _ => return Err(ApiError::invalid("command", &format!("must be one of {}", SOCKET_COMMANDS.join(", ")))),
    };
    if !has_body {
        if let Some(field) = body.keys().next() {
            return Err(ApiError::invalid(field, "unknown field"));
        }
        return Ok((method, path, None));
    }
    Ok((method, path, Some(body)))
}

/// The ack of an HTTP answer.
async fn ack(response: axum::response::Response) -> Value {
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), MAX_ANSWER_BYTES).await.unwrap_or_default();
    let body: Value = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap_or(Value::Null) };
    if status.is_success() {
        let mut ack = Map::from_iter([("ok".to_owned(), Value::Bool(true))]);
        if let Value::Object(fields) = body {
            ack.extend(fields);
        }
        Value::Object(ack)
    } else {
        json!({"ok": false, "error": body})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(error: ApiError) -> String {
        match error {
            ApiError::Validation(errors) => errors[0].field.clone(),
            other => format!("{other:?}"),
        }
    }

    #[test]
    fn commands_map_to_their_http_requests() {
        let c = "0193a0c2-8c1e-7000-8000-000000000001";
        let (method, path, body) = route("message:send", &json!({"conversation_id": c, "content": "hi"})).unwrap();
        assert_eq!((method, path.as_str()), (Method::POST, format!("/conversations/{c}/messages").as_str()));
        assert_eq!(body, Some(Map::from_iter([("content".to_owned(), json!("hi"))])));
        let (method, path, body) = route("message:react", &json!({"message_id": "m", "emoji": "👍"})).unwrap();
        assert_eq!((method, path.as_str(), body), (Method::PUT, "/messages/m/reactions/%F0%9F%91%8D", None));
        let (method, _, body) = route("typing:stop", &json!({"conversation_id": c})).unwrap();
        assert_eq!((method, body.unwrap()["state"].clone()), (Method::POST, json!("stopped")));
        // A slash in an id stays inside its path segment.
        let (_, path, _) = route("message:delete", &json!({"message_id": "a/../b"})).unwrap();
        assert_eq!(path, "/messages/a%2F%2E%2E%2Fb");
    }

    #[test]
    fn bad_commands_name_the_field() {
        assert_eq!(field(route("message:send", &json!({"content": "hi"})).unwrap_err()), "conversation_id");
        assert_eq!(field(route("message:send", &json!({"conversation_id": 1})).unwrap_err()), "conversation_id");
        assert_eq!(field(route("message:delete", &json!({"message_id": "m", "extra": 1})).unwrap_err()), "extra");
        assert_eq!(field(route("message:fly", &json!({})).unwrap_err()), "command");
        assert_eq!(field(route("message:send", &json!([1])).unwrap_err()), "data");
        assert!(matches!(parse_frame("{"), Err((None, ApiError::BadRequest(_)))));
        assert!(matches!(parse_frame(r#"{"command": "message:send", "id": "k", "x": 1}"#), Err((Some(_), ApiError::Validation(_)))));
        let (command, id, data) = parse_frame(r#"{"command": "message:delete", "id": "k1", "data": {"message_id": "m"}}"#).unwrap();
        assert_eq!((command.as_str(), id.as_deref(), data), ("message:delete", Some("k1"), json!({"message_id": "m"})));
    }
}
