//! Event replay for analytics (scope `events:read`) and the event schemas.

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::super::problem::Problem;
use super::super::query_params::QueryParams;
use super::super::{ApiError, AppState, Caller, SCOPE_EVENTS};
use crate::replay::{known_event_types, ndjson, EventFilter, Follow};

/// Most events one request may ask for.
const MAX_LIMIT: u64 = 100_000_000;

/// The event log as NDJSON in position order: `position, event_id, stream_type,
/// stream_id, stream_version, type, schema_version, data, metadata, recorded_at`.
/// With `follow=true` the response stays open and streams events as they are
/// appended; empty lines are keep-alives.
#[utoipa::path(get, path = "/api/v1/events", tag = "replay",
    params(("after" = Option<u64>, Query, maximum = 9223372036854775807_i64, description = "events after this position (default 0)"),
        ("limit" = Option<u64>, Query, minimum = 1, maximum = 100000000, description = "at most this many events (default 1000)"),
        ("type" = Option<String>, Query, description = "only these event types (comma-separated, or repeated)"),
        ("stream_id" = Option<String>, Query, min_length = 1, max_length = 64, pattern = "^[!-~]+$", description = "only this stream"),
        ("follow" = Option<bool>, Query, description = "keep streaming new events")),
    responses((status = 200, content_type = "application/x-ndjson", description = "one event per line"),
        (status = 403, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn replay_events(State(state): State<AppState>, caller: Caller, RawQuery(query): RawQuery) -> Result<Response, ApiError> {
    let params = QueryParams::parse(query.as_deref());
    let after = params.integer("after", 0, i64::MAX as u64, Some(0))?.unwrap_or(0);
    let limit = params.integer("limit", 1, MAX_LIMIT, Some(1000))?.unwrap_or(1000);
    let follow = params.boolean("follow", false)?;
    let types = event_types(query.as_deref())?;
    let stream_id = params.text("stream_id").map(str::to_owned);
    // Stream ids are UUIDs and integers: visible ASCII, as the log's column stores them
    // (anything else would fail in the database once the answer has begun).
    if stream_id.as_ref().is_some_and(|id| id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_graphic())) {
        return Err(ApiError::invalid("stream_id", "must be 1 to 64 visible ASCII characters"));
    }
    caller.require_scope(SCOPE_EVENTS)?;
    let filter = EventFilter { after, until: None, types, stream_id };
    let follow = follow.then(|| Follow { head: state.executor.head(), shutdown: state.shutdown.clone() });
    let body = Body::from_stream(ndjson(state.pool.clone(), filter, limit, follow));
    Ok(([(header::CONTENT_TYPE, "application/x-ndjson"), (header::CACHE_CONTROL, "no-store")], body).into_response())
}

/// `type=A,B&type=C`: every named type must exist.
fn event_types(query: Option<&str>) -> Result<Vec<String>, ApiError> {
    let known = known_event_types();
    let mut types = Vec::new();
    for (key, value) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        if key != "type" {
            continue;
        }
        for name in value.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            if !known.iter().any(|k| k == name) {
                return Err(ApiError::invalid("type", &format!("unknown event type {name}")));
            }
            types.push(name.to_owned());
        }
    }
    Ok(types)
}

/// `{"<type>": {"<schema version>": <JSON Schema of data>}}` for every event
/// type the server writes or reads.
#[utoipa::path(get, path = "/api/v1/events/schema", tag = "replay",
    responses((status = 200, description = "JSON Schemas of every event's data, by type and schema version")))]
pub async fn event_schemas() -> impl IntoResponse {
    Json(crate::domain::schema::event_schemas())
}
