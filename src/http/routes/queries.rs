//! Queries, served from the read-model tables. Each accepts `min_position`:
//! the answer waits (bounded) until the read models have applied it.

use std::future::Future;
use std::time::Duration;

use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Serialize;
use utoipa::ToSchema;

use super::super::problem::Problem;
use super::super::query_params::QueryParams;
use super::super::{paths, ApiError, AppState, Caller};
use super::{param, PathParams};
use crate::domain::{MessageId, PostingId, UserId};
use crate::queries::cache::{Answer, CacheKey, Dependency, PageKey};
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

/// What a query read from the database: its answer, and the parts of the
/// read models the answer came from (see `queries::cache`).
type Read = (Answer, Vec<Dependency>);

/// Answers from the read cache when it holds an exact answer for `key` (and,
/// with `min_position`, one known to include that position); otherwise waits
/// for `min_position` as every query does, reads with `read`, and caches it.
async fn cached<F, Fut>(state: &AppState, key: CacheKey, params: &QueryParams, read: F) -> Result<Response, ApiError>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<Read, ApiError>>,
{
    let min_position = params.integer("min_position", 0, MAX_POSITION, None)?;
    if let Some(answer) = state.read_cache.get(&key, min_position) {
        return respond(answer);
    }
    // Before the reads: what they then read reflects at least this.
    let ticket = state.read_cache.ticket();
    read_your_writes(state, params).await?;
    let (answer, depends_on) = read().await?;
    state.read_cache.insert(key, answer.clone(), ticket, depends_on);
    respond(answer)
}

fn respond(answer: Answer) -> Result<Response, ApiError> {
    match answer {
        Answer::Found(body) => Ok(([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response()),
        Answer::NotFound => Err(ApiError::NotFound("conversation".into())),
    }
}

/// The JSON body of a 200 (the bytes `axum::Json` would write).
fn found<T: Serialize>(value: &T) -> Result<Answer, ApiError> {
    serde_json::to_vec(value).map(|body| Answer::Found(Bytes::from(body))).map_err(|e| ApiError::Internal(e.to_string()))
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
    let user = caller.user_id;
    let key = CacheKey::ConversationList { user, archived, limit, offset };
    cached(&state, key, &params, || async {
        // The page's order depends on every conversation of the caller.
        let memberships = conversations::membership_ids(&state.pool, user).await?;
        let (items, more) = conversations::list(&state.pool, user, archived, limit, offset).await?;
        let next_offset = more.then_some(offset + items.len() as u64);
        let depends_on = memberships.into_iter().map(Dependency::Conversation).chain([Dependency::Memberships(user)]).collect();
        Ok((found(&ConversationPage { items, next_offset })?, depends_on))
    })
    .await
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
    let user = caller.user_id;
    cached(&state, CacheKey::Conversation { user, id }, &query, || async {
        let answer = match conversations::get(&state.pool, user, id).await? {
            Some(item) => found(&item)?,
            None => Answer::NotFound,
        };
        Ok((answer, vec![Dependency::Conversation(id)]))
    })
    .await
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
    let user = caller.user_id;
    cached(&state, CacheKey::Direct { user, other, posting }, &params, || async {
        // Which DIRECT the two share changes only with their memberships.
        let depends_on = vec![Dependency::Memberships(user), Dependency::Memberships(other)];
        let answer = match conversations::find_direct(&state.pool, user, other, posting).await? {
            Some(id) => found(&DirectFound { id })?,
            None => Answer::NotFound,
        };
        Ok((answer, depends_on))
    })
    .await
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
    let user = caller.user_id;
    let page_key = match before {
        Some(message) => PageKey::Before(message),
        None => PageKey::Offset(offset.unwrap_or(0)),
    };
    // Who may read is cached apart from the page, which every member shares.
    let membership = CacheKey::Membership { user, conversation: id };
    cached(&state, membership, &query, || async {
        let answer = if messages::is_participant(&state.pool, user, id).await? { Answer::Found(Bytes::new()) } else { Answer::NotFound };
        Ok((answer, vec![Dependency::Members(id)]))
    })
    .await?;
    let key = CacheKey::MessagePage { conversation: id, limit, page: page_key };
    cached(&state, key, &query, || async {
        let page = match page_key {
            PageKey::Before(message) => {
                let seq = messages::seq_of(&state.pool, id, message)
                    .await?
                    .ok_or_else(|| ApiError::invalid("before", "must be a message of this conversation"))?;
                Page::BeforeSeq(seq)
            }
            PageKey::Offset(offset) => Page::Offset(offset),
        };
        let (items, more) = messages::page(&state.pool, id, limit, page).await?;
        let next_before = if more { items.last().map(|m| m.id.clone()) } else { None };
        Ok((found(&MessagePage { items, next_before })?, vec![Dependency::Conversation(id)]))
    })
    .await
}
