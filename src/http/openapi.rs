//! The OpenAPI 3.1 document, generated from the handlers and types.

use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::schema::{ArrayBuilder, Object, ObjectBuilder, Schema, SchemaType, Type};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{Content, Header, Ref, RefOr, Response};
use utoipa::{Modify, OpenApi};

use super::realtime_doc::RealtimeProtocol;
use super::routes;

/// Everything the API serves.
#[derive(OpenApi)]
#[openapi(
    info(title = "Chat backend", version = "1", description = "Event-sourced chat: commands append events; see API.md."),
    paths(
        routes::create_conversation, routes::rename_conversation, routes::archive_conversation, routes::unarchive_conversation,
        routes::add_participant, routes::remove_participant, routes::change_role, routes::change_own_settings,
        routes::send_message, routes::edit_message, routes::delete_message, routes::mark_read,
        routes::add_reaction, routes::remove_reaction, routes::put_user, routes::put_posting,
        routes::list_conversations, routes::get_conversation, routes::find_direct, routes::list_messages,
        routes::replay_events, routes::event_schemas, routes::websocket, routes::send_typing, routes::get_presence,
        routes::healthz, routes::readyz, routes::metrics, routes::openapi_document,
    ),
    modifiers(&BearerAuth, &ProblemResponses, &RealtimeProtocol),
    tags((name = "commands", description = "Write side: each command appends events and answers their position"),
         (name = "directory", description = "Users and postings (scope chat:admin)"),
         (name = "queries", description = "Read side: served from the read models; min_position gives read-your-writes"),
         (name = "replay", description = "The event log for analytics consumers (scope events:read)"),
         (name = "realtime", description = "WebSocket and Socket.IO push of the events of the caller's conversations, commands with acks, typing and presence (see `x-realtime` and GET /api/v1/ws)"),
         (name = "operations"))
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("bearer", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
    }
}

/// The media type of every error answer (RFC 9457).
const PROBLEM_MEDIA_TYPE: &str = "application/problem+json";

/// Declares the refusals that the shared layers (authentication, body
/// decoding, path ids, rate limit, dependencies) give on every operation
/// where they can happen, so the handlers' annotations need list only their
/// own (403, 409, ...); and serves every problem as `application/problem+json`.
/// Contract fuzzing (`.ci/contract`) checks each answer against this.
struct ProblemResponses;

impl Modify for ProblemResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for (_, method, operation) in operations(openapi) {
            describe_idempotency_key(operation);
            add_shared_refusals(method, operation);
            serve_problems_as_problem_json(operation);
        }
    }
}

/// Every operation of the document, with its path and method.
fn operations(openapi: &mut utoipa::openapi::OpenApi) -> impl Iterator<Item = (&str, &'static str, &mut Operation)> {
    openapi.paths.paths.iter_mut().flat_map(|(path, item)| {
        [("get", &mut item.get), ("put", &mut item.put), ("post", &mut item.post), ("delete", &mut item.delete), ("patch", &mut item.patch)]
            .into_iter()
            .filter_map(move |(method, operation)| operation.as_mut().map(|operation| (path.as_str(), method, operation)))
    })
}

/// The `Idempotency-Key` header as the server checks it (the same on every command).
fn describe_idempotency_key(operation: &mut Operation) {
    let Some(parameters) = operation.parameters.as_mut() else { return };
    for parameter in parameters.iter_mut().filter(|p| p.name.eq_ignore_ascii_case("Idempotency-Key")) {
        let key = ObjectBuilder::new().schema_type(Type::String).min_length(Some(1)).max_length(Some(255)).pattern(Some("^[!-~]+$"));
        parameter.schema = Some(RefOr::T(key.build().into()));
        parameter.description = Some(
            "Retry-safe key, per user: 1-255 visible ASCII characters. A retry with the same key and body answers as the first \
             time and appends nothing; the same key with another body answers 422."
                .into(),
        );
    }
}

/// Adds the refusals an operation can meet before or around its handler.
fn add_shared_refusals(method: &str, operation: &mut Operation) {
    let secured = operation.security.as_ref().is_some_and(|s| !s.is_empty());
    let params = operation.parameters.as_deref().unwrap_or_default();
    let has_path_ids = params.iter().any(|p| matches!(p.parameter_in, ParameterIn::Path));
    let takes_idempotency_key = params.iter().any(|p| p.name.eq_ignore_ascii_case("Idempotency-Key"));
    let has_input = !params.is_empty() || operation.request_body.is_some();
    let has_body = operation.request_body.is_some();
    let is_command = method != "get";

    let mut add = |status: &str, description: &str| {
        operation.responses.responses.entry(status.to_owned()).or_insert_with(|| RefOr::T(Response::new(description)));
    };
    if has_body {
        add("400", "bad_request: malformed JSON, or a body that is not UTF-8");
        add("408", "request_timeout: the body was not sent in time");
        add("413", "payload_too_large: a body over 64 KiB");
        add("415", "unsupported_media_type: a body that is not application/json");
    }
    if secured {
        add("401", "unauthorized: a missing, invalid or expired bearer token");
    }
    if has_path_ids {
        add("404", "not_found: an id that cannot exist, or a resource the caller may not see");
    }
    if takes_idempotency_key {
        add("409", "idempotency_in_progress: a request with this Idempotency-Key is still running");
    }
    if has_input {
        add("422", "validation_failed: a field, parameter or header breaks a rule (see `errors`)");
    }
    if secured && is_command {
        add("429", "rate_limited: too many commands from this user");
    }
    if secured {
        add("503", "unavailable (a dependency is down) or projection_lagging (min_position not reached in time)");
    }
    for status in ["429", "503"] {
        // Problems of these statuses carry Retry-After (the readiness report of `/readyz` does not).
        if let Some(RefOr::T(response)) = operation.responses.responses.get_mut(status) {
            if is_problem(response) {
                response.headers.entry("Retry-After".into()).or_insert_with(|| seconds_header("seconds to wait before retrying"));
            }
        }
    }
    if let Some(RefOr::T(unauthorized)) = operation.responses.responses.get_mut("401") {
        unauthorized.headers.entry("WWW-Authenticate".into()).or_insert_with(|| {
            let mut header = Header::new(Object::with_type(Type::String));
            header.description = Some("`Bearer`".into());
            header
        });
    }
}

/// Every 4xx/5xx answer declared as a problem (or with no body) is a problem
/// document served as `application/problem+json`. Other error bodies (the
/// readiness report of `/readyz`) keep their own media type.
fn serve_problems_as_problem_json(operation: &mut Operation) {
    for (status, response) in operation.responses.responses.iter_mut() {
        let RefOr::T(response) = response else { continue };
        let is_error = status.starts_with('4') || status.starts_with('5');
        if is_error && is_problem(response) {
            response.content.clear();
            response.content.insert(PROBLEM_MEDIA_TYPE.into(), Content::new(Some(Ref::from_schema_name("Problem"))));
        }
    }
}

/// True when a response declares the `Problem` schema, or no body at all.
fn is_problem(response: &Response) -> bool {
    let problem = Ref::from_schema_name("Problem");
    response.content.values().all(|c| matches!(&c.schema, Some(RefOr::Ref(r)) if *r == problem))
}

fn seconds_header(description: &str) -> Header {
    let mut header = Header::new(Object::with_type(Type::Integer));
    header.description = Some(description.into());
    header
}

/// Largest user id: user ids are positive INTs (API.md).
pub(in crate::http) const MAX_USER_ID: i64 = i32::MAX as i64;

/// A string schema that takes one of `values` (and null when `nullable`).
fn one_of(values: &[&str], nullable: bool, description: &str) -> Schema {
    let mut enum_values: Vec<serde_json::Value> = values.iter().map(|v| serde_json::Value::from(*v)).collect();
    let schema_type = if nullable {
        enum_values.push(serde_json::Value::Null);
        SchemaType::from_iter([Type::String, Type::Null])
    } else {
        SchemaType::new(Type::String)
    };
    ObjectBuilder::new().schema_type(schema_type).enum_values(Some(enum_values)).description(Some(description)).build().into()
}

/// `type` of a conversation.
pub(in crate::http) fn conversation_type_schema() -> Schema {
    one_of(&["DIRECT", "GROUP"], false, "`DIRECT` (exactly one other participant, no name) or `GROUP`.")
}

/// `role` when adding a participant.
pub(in crate::http) fn added_role_schema() -> Schema {
    one_of(&["ADMIN", "MEMBER"], true, "`ADMIN` or `MEMBER` (default).")
}

/// `role` when changing one.
pub(in crate::http) fn role_schema() -> Schema {
    one_of(&["OWNER", "ADMIN", "MEMBER"], false, "`OWNER` (transfers ownership), `ADMIN` or `MEMBER`.")
}

/// `message_type` of a new message (`SYSTEM` is the server's own).
pub(in crate::http) fn message_type_schema() -> Schema {
    one_of(&["TEXT", "IMAGE", "FILE"], true, "`TEXT` (default), `IMAGE` or `FILE`.")
}

/// `participant_ids` at creation: user ids, at most 1,000.
pub(in crate::http) fn participant_ids_schema() -> Schema {
    let user_id = ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(1)).maximum(Some(MAX_USER_ID));
    ArrayBuilder::new()
        .items(user_id)
        .max_items(Some(crate::domain::values::MAX_PARTICIPANTS))
        .description(Some("The other participants (existing user ids); the creator is added as OWNER."))
        .build()
        .into()
}
