//! The realtime protocol in the OpenAPI document: what a WebSocket or
//! Socket.IO connection receives and may send. OpenAPI has no words for a
//! socket's frames, so the frames are schemas (`Realtime*`) and the
//! protocol is the `x-realtime` extension of the document and the
//! description of `GET /api/v1/ws`.

use serde_json::{json, Value};
use utoipa::openapi::{OpenApi, RefOr, Schema};
use utoipa::Modify;

use super::SOCKET_COMMANDS;

/// How the realtime endpoints behave, in words (the WebSocket operation's description).
pub const PROTOCOL: &str = "\
Realtime pushes of the caller's conversations. WebSocket: each text frame is `{\"event\", \"data\", \"position\"}` \
(schema RealtimeEventFrame). Socket.IO (v4, path `/socket.io/`, token in the handshake `auth` as `{\"token\", \
\"after_position\"?}`): the same event names and data.\n\n\
Order: with `after_position=N`, every event after N the user would have received comes first (replayed), then \
`ready` `{\"position\": R}`, then live events after R only. R is at or past the log's last position when the \
client connected, so every event the client missed comes before `ready`, each once.\n\n\
Events from the log: message:new, message:edited, message:deleted, message:reaction, message:read, \
conversation:created, conversation:updated, conversation:archived, conversation:unarchived. Ephemeral \
(never in the log, never replayed, never before `ready`): `typing` (RealtimeTypingData) and `presence` \
(RealtimePresenceData); their `position` is how far the log had been pushed on this connection when they \
were sent, a safe resume point.\n\n\
Commands from the client (the same rules, rate limit and idempotency as over HTTP): message:send, \
message:edit, message:delete, message:react, message:unreact, conversation:read, typing:start, typing:stop. \
WebSocket: a text frame `{\"command\", \"id\", \"data\"}` (RealtimeCommandFrame), answered by `{\"event\": \
\"ack\", \"data\": {\"id\", \"ok\", ...}}` (RealtimeAckFrame; an ack has no `position` of its own). \
Socket.IO: `socket.emit(command, data, ack)`, with an optional `id` in `data`; the ack is `{\"ok\": true, \
...}` or `{\"ok\": false, \"error\": <problem>}`. The `id` is the command's Idempotency-Key: make it unique \
(a UUID), since a reused id answers the first command's answer.";

/// Adds the realtime frames' schemas and the `x-realtime` summary.
pub struct RealtimeProtocol;

impl Modify for RealtimeProtocol {
    fn modify(&self, openapi: &mut OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        for (name, schema) in schemas() {
            if let Ok(schema) = serde_json::from_value::<Schema>(schema) {
                components.schemas.insert(name.to_owned(), RefOr::T(schema));
            }
        }
        let summary = json!({
            "websocket": "/api/v1/ws",
            "socket_io": "/socket.io/",
            "server_events": ["ready", "message:new", "message:edited", "message:deleted", "message:reaction", "message:read",
                "conversation:created", "conversation:updated", "conversation:archived", "conversation:unarchived", "typing", "presence", "ack"],
            "client_commands": SOCKET_COMMANDS,
            "command_data": {
                "message:send": "{conversation_id, content?, message_type?, media_url?, media_metadata?, reply_to_id?}",
                "message:edit": "{message_id, content}",
                "message:delete": "{message_id}",
                "message:react": "{message_id, emoji}",
                "message:unreact": "{message_id, emoji}",
                "conversation:read": "{conversation_id, message_id}",
                "typing:start": "{conversation_id}",
                "typing:stop": "{conversation_id}"
            },
        });
        let extensions = openapi.extensions.get_or_insert_with(Default::default);
        extensions.insert("x-realtime".to_owned(), summary);
    }
}

fn schemas() -> Vec<(&'static str, Value)> {
    let problem = json!({"$ref": "#/components/schemas/Problem"});
    vec![
        (
            "RealtimeEventFrame",
            json!({
                "type": "object", "required": ["event", "data", "position"],
                "properties": {"event": {"type": "string"}, "data": {"type": "object"}, "position": {"type": "integer", "minimum": 0}},
                "description": "A pushed event (WebSocket text frame)."
            }),
        ),
        (
            "RealtimeCommandFrame",
            json!({
                "type": "object", "required": ["command"],
                "properties": {
                    "command": {"type": "string", "enum": SOCKET_COMMANDS},
                    "id": {"type": ["string", "null"], "minLength": 1, "maxLength": 255, "description": "The Idempotency-Key; echoed in the ack."},
                    "data": {"type": "object", "description": "The HTTP body, plus the ids that name the target (conversation_id, message_id, emoji)."}
                },
                "additionalProperties": false,
                "description": "A command sent by the client over the WebSocket."
            }),
        ),
        (
            "RealtimeAckFrame",
            json!({
                "type": "object", "required": ["event", "data"],
                "properties": {
                    "event": {"type": "string", "enum": ["ack"]},
                    "data": {"type": "object", "required": ["id", "ok"], "properties": {
                        "id": {"type": ["string", "null"]}, "ok": {"type": "boolean"},
                        "message_id": {"type": "string"}, "reaction_id": {"type": "string"}, "position": {"type": "integer"},
                        "error": problem
                    }}
                },
                "description": "The answer to a command: the HTTP answer's fields when ok, else the problem document HTTP answers."
            }),
        ),
        (
            "RealtimeTypingData",
            json!({
                "type": "object", "required": ["conversation_id", "user_id", "state"],
                "properties": {"conversation_id": {"type": "string", "format": "uuid"}, "user_id": {"type": "integer"},
                    "state": {"type": "string", "enum": ["started", "stopped"]}},
                "description": "`typing`: to the other participants; a `started` not refreshed within 6 s is followed by `stopped`; at most one per user and conversation per 2 s."
            }),
        ),
        (
            "RealtimePresenceData",
            json!({
                "type": "object", "required": ["user_id", "status", "last_seen_at"],
                "properties": {"user_id": {"type": "integer"}, "status": {"type": "string", "enum": ["online", "offline"]},
                    "last_seen_at": {"type": ["string", "null"], "format": "date-time"}},
                "description": "`presence`: to the users who share a conversation with `user_id`, when their status changes (coalesced per second)."
            }),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_frame_schema_is_a_valid_openapi_schema() {
        for (name, schema) in schemas() {
            if let Err(e) = serde_json::from_value::<Schema>(schema) {
                panic!("{name}: {e}");
            }
        }
    }
}
