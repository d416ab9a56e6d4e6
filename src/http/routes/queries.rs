//! Queries, served from the read-model tables. Each accepts `min_position`:
//! the answer waits (bounded) until the read models have applied it.

use std::time::Duration;

use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use super::super::problem::Problem;
use super::super::query_params::QueryParams;
use super::super::{paths, ApiError, AppState, Caller};
use super::{param, PathParams};
use crate::domain::{MessageId, PostingId, UserId};
use crate::queries::messages::Page;
use crate::queries::{conversations, messages, ConversationItem, MessageItem};

/// A page of conversations.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConversationPage {
    pub items: Vec<ConversationItem>,
    /// The offset of the next page; null when there is none.
    pub next_offset: Option<u64>,
}

/// A page of messages, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct MessagePage {
    pub items: Vec<MessageItem>,
    /// The cursor of the next (older) page; null when there is none.
    pub next_before: Option<String>,
}

/// The DIRECT lookup's answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct DirectFound {
    pub id: String,
}

const MAX_POSITION: u64 = i64::MAX as u64;

/// What the OpenAPI document says of `min_position`.
const MIN_POSITION_DOC: &str = "wait (bounded) until the read models have applied this event-log position; \
    past the log's last position: 422";

/// Waits for `min_position` if given; 503 `projection_lagging` past the bound.
/// A position the event log has not reached is no client's own write: it
/// would wait in vain, so it answers 422 at once.
async fn read_your_writes(state: &AppState, params: &QueryParams) -> Result<(), ApiError> {
    if let Some(position) = params.integer("min_position", 0, MAX_POSITION, None)? {
        if state.progress.wait_for(position, Duration::ZERO).await? {
            return Ok(());
        }
        let head = state.executor.reader().head().await?;
        if position > head {
            return Err(ApiError::invalid("min_position", &format!("is past the event log's last position ({head})")));
        }
        if !state.progress.wait_for(position, state.read_wait).await? {
            return Err(ApiError::ProjectionLagging(position));
        }
    }
    Ok(())
}

/// The caller's conversations, most recent activity first (`archived=true`: the archived ones).
#[utoipa::path(get, path = "/api/v1/conversations", tag = "queries",
    params(("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "1-100, default 20"),
        ("offset" = Option<u64>, Query, maximum = 9223372036854775807_i64),
        ("archived" = Option<bool>, Query),
        ("min_position" = Option<u64>, Query, maximum = 9223372036854775807_i64, description = MIN_POSITION_DOC)),
    responses((status = 200, body = ConversationPage), (status = 422, body = Problem), (status = 503, body = Problem)),
    security(("bearer" = [])))]
pub async fn list_conversations(State(state): State<AppState>, caller: Caller, RawQuery(query): RawQuery) -> Result<Response, ApiError> {
    let params = QueryParams::parse(query.as_deref());
    let limit = params.integer("limit", 1, 100, Some(20))?.unwrap_or(20) as u32;
    let offset = params.integer("offset", 0, MAX_POSITION, Some(0))?.unwrap_or(0);
    let archived = params.boolean("archived", false)?;
    read_your_writes(&state, &params).await?;
    let (items, more) = conversations::list(&state.pool, caller.user_id, archived, limit, offset).await?;
    let next_offset = more.then_some(offset + items.len() as u64);
    Ok(Json(ConversationPage { items, next_offset }).into_response())
}

/// One conversation the caller is in.
#[utoipa::path(get, path = "/api/v1/conversations/{id}", tag = "queries",
    params(("id" = String, Path, format = Uuid),
        ("min_position" = Option<u64>, Query, maximum = 9223372036854775807_i64, description = MIN_POSITION_DOC)),
    responses((status = 200, body = ConversationItem), (status = 404, body = Problem), (status = 503, body = Problem)),
    security(("bearer" = [])))]
pub async fn get_conversation(
    State(state): State<AppState>,
    caller: Caller,
    params: PathParams,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let query = QueryParams::parse(query.as_deref());
    query.integer("min_position", 0, MAX_POSITION, None)?;
    let id = paths::conversation_id(param(&params, "id"))?;
    read_your_writes(&state, &query).await?;
    let item = conversations::get(&state.pool, caller.user_id, id).await?.ok_or_else(|| ApiError::NotFound("conversation".into()))?;
    Ok(Json(item).into_response())
}

/// The caller's DIRECT conversation with a user about a posting (or none).
#[utoipa::path(get, path = "/api/v1/conversations/direct", tag = "queries",
    params(("user_id" = i32, Query, minimum = 1), ("posting_id" = Option<String>, Query, format = Uuid),
        ("min_position" = Option<u64>, Query, maximum = 9223372036854775807_i64, description = MIN_POSITION_DOC)),
    responses((status = 200, body = DirectFound), (status = 404, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn find_direct(State(state): State<AppState>, caller: Caller, RawQuery(query): RawQuery) -> Result<Response, ApiError> {
    let params = QueryParams::parse(query.as_deref());
    let other = params
        .integer("user_id", 1, i32::MAX as u64, None)?
        .and_then(|id| UserId::new(id as i64))
        .ok_or_else(|| ApiError::invalid("user_id", "is required: a user id from 1 to 2147483647"))?;
    let posting = match params.text("posting_id") {
        None => None,
        Some(raw) => Some(raw.parse::<PostingId>().map_err(|_| ApiError::invalid("posting_id", "must be a UUID"))?),
    };
    read_your_writes(&state, &params).await?;
    let id = conversations::find_direct(&state.pool, caller.user_id, other, posting)
        .await?
        .ok_or_else(|| ApiError::NotFound("conversation".into()))?;
    Ok(Json(DirectFound { id }).into_response())
}

/// A conversation's non-deleted messages, newest first (`before` cursor or `offset`).
#[utoipa::path(get, path = "/api/v1/conversations/{id}/messages", tag = "queries",
    params(("id" = String, Path, format = Uuid),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "1-100, default 50"),
        ("before" = Option<String>, Query, format = Uuid, description = "a message id: answer older messages"),
        ("offset" = Option<u64>, Query, maximum = 9223372036854775807_i64),
        ("min_position" = Option<u64>, Query, maximum = 9223372036854775807_i64, description = MIN_POSITION_DOC)),
    responses((status = 200, body = MessagePage), (status = 404, body = Problem), (status = 422, body = Problem),
        (status = 503, body = Problem)),
    security(("bearer" = [])))]
pub async fn list_messages(
    State(state): State<AppState>,
    caller: Caller,
    params: PathParams,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let query = QueryParams::parse(query.as_deref());
    let limit = query.integer("limit", 1, 100, Some(50))?.unwrap_or(50) as u32;
    let offset = query.integer("offset", 0, MAX_POSITION, None)?;
    let before = match query.text("before") {
        None => None,
        Some(raw) => Some(raw.parse::<MessageId>().map_err(|_| ApiError::invalid("before", "must be a message id (UUID)"))?),
    };
    if before.is_some() && offset.is_some() {
        return Err(ApiError::invalid("before", "give either before or offset"));
    }
    query.integer("min_position", 0, MAX_POSITION, None)?;
    let id = paths::conversation_id(param(&params, "id"))?;
    read_your_writes(&state, &query).await?;
    if !messages::is_participant(&state.pool, caller.user_id, id).await? {
        return Err(ApiError::NotFound("conversation".into()));
    }
    let page = match before {
        Some(message) => {
            let seq = messages::seq_of(&state.pool, id, message)
                .await?
                .ok_or_else(|| ApiError::invalid("before", "must be a message of this conversation"))?;
            Page::BeforeSeq(seq)
        }
        None => Page::Offset(offset.unwrap_or(0)),
    };
    let (items, more) = messages::page(&state.pool, id, limit, page).await?;
    let next_before = if more { items.last().map(|m| m.id.clone()) } else { None };
    Ok(Json(MessagePage { items, next_before }).into_response())
}
