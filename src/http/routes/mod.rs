//! The route table.

mod conversations;
mod directory;
mod events;
mod live;
mod messages;
mod operations;
mod participants;
mod queries;
mod reactions;
mod websocket;

use axum::extract::{DefaultBodyLimit, FromRequestParts, RawPathParams};
use axum::http::request::Parts;
use axum::routing::{get, patch, post, put};
use axum::Router;
use std::time::Duration;

use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::RequestBodyTimeoutLayer;
use tower_http::trace::TraceLayer;

use super::database_gate::refuse_while_database_down;
use super::problem::problem_documents_only;
use super::rate_limit::limit_commands;
use super::security_headers::with_security_headers;
use super::{ApiError, AppState, MAX_BODY_BYTES};

pub(super) use conversations::*;
pub(super) use directory::*;
pub(super) use events::*;
pub(super) use live::*;
pub(super) use messages::*;
pub(super) use operations::*;
pub(super) use participants::*;
pub(super) use queries::*;
pub(super) use reactions::*;
pub(super) use websocket::*;

/// Every route of the API, with its middleware.
pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/conversations", post(create_conversation).get(list_conversations))
        .route("/conversations/direct", get(find_direct))
        .route("/conversations/{id}", patch(rename_conversation).get(get_conversation))
        .route("/conversations/{id}/archive", post(archive_conversation))
        .route("/conversations/{id}/unarchive", post(unarchive_conversation))
        .route("/conversations/{id}/participants", post(add_participant))
        .route("/conversations/{id}/participants/me", patch(change_own_settings))
        .route("/conversations/{id}/participants/{user_id}", patch(change_role).delete(remove_participant))
        .route("/conversations/{id}/messages", post(send_message).get(list_messages))
        .route("/conversations/{id}/read", post(mark_read))
        .route("/conversations/{id}/typing", post(send_typing))
        .route("/presence", get(get_presence))
        .route("/messages/{id}", patch(edit_message).delete(delete_message))
        .route("/messages/{id}/reactions/{emoji}", put(add_reaction).delete(remove_reaction))
        .route("/users/{id}", put(put_user))
        .route("/postings/{id}", put(put_posting))
        .route("/ws", get(websocket))
        .route("/events", get(replay_events))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), refuse_while_database_down))
        .route("/events/schema", get(event_schemas))
        .route("/openapi.json", get(openapi_document))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), limit_commands));
    let router = Router::new()
        .nest("/api/v1", api)
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .fallback(|| async { ApiError::NotFound("route".into()) })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(axum::middleware::from_fn(problem_documents_only))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(RequestBodyTimeoutLayer::new(Duration::from_secs(state.limits.body_timeout_secs.max(1))))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(TraceLayer::new_for_http())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .with_state(state);
    with_security_headers(router)
}

/// The path's parameters, percent-decoded once. A segment that does not
/// decode to UTF-8 is an id that cannot exist (404) or, for an emoji, a value
/// out of its limits (422): a problem document either way.
pub(super) struct PathParams(RawPathParams);

impl<S: Send + Sync> FromRequestParts<S> for PathParams {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match RawPathParams::from_request_parts(parts, state).await {
            Ok(params) => Ok(Self(params)),
            Err(rejection) if rejection.body_text().contains("`emoji`") => Err(ApiError::invalid("emoji", "must be UTF-8")),
            Err(_) => Err(ApiError::NotFound("resource".into())),
        }
    }
}

/// A path parameter by name (always present: the route declares it).
pub(super) fn param<'a>(params: &'a PathParams, name: &str) -> &'a str {
    params.0.iter().find(|(key, _)| *key == name).map(|(_, value)| value).unwrap_or("")
}

/// The answer of commands that create nothing: the position of their last event.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct PositionAnswer {
    /// Global event-log position of the last event the command appended
    /// (for a command that changed nothing, of the event it refers to).
    pub position: u64,
}
