//! Typing and presence: ephemeral, never in the event log (see
//! `realtime/live.rs` for how they cross processes).

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::super::json::JsonBody;
use super::super::problem::Problem;
use super::super::{paths, ApiError, AppState, Caller};
use super::{param, PathParams};
use crate::domain::UserId;
use crate::realtime::presence::Status;
use crate::realtime::typing::{TypingSignal, TypingState};
use crate::realtime::LiveSignals;

/// Most users one presence query may ask about.
pub const MAX_PRESENCE_USERS: usize = 100;

/// Body of `POST /conversations/{id}/typing`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TypingBody {
    /// `started` (lasts 6 s unless sent again) or `stopped`.
    pub state: TypingState,
}

/// One user's presence.
#[derive(Debug, Serialize, ToSchema)]
pub struct PresenceItem {
    pub user_id: i32,
    /// `online`, `offline`, or `unknown` for a user who shares no conversation with the caller.
    #[schema(example = "online")]
    pub status: String,
    /// Now for an online user; when they were last online otherwise (null when not known).
    pub last_seen_at: Option<String>,
}

/// Answer of `GET /presence`.
#[derive(Debug, Serialize, ToSchema)]
pub struct PresenceAnswer {
    pub items: Vec<PresenceItem>,
}

fn live(state: &AppState) -> Result<&LiveSignals, ApiError> {
    state.live.as_ref().ok_or_else(|| ApiError::Unavailable("realtime is not running in this process".into()))
}

/// Tells the other participants the caller is typing (or stopped). Not
/// stored: pushed as `typing` to the participants connected now.
#[utoipa::path(post, path = "/api/v1/conversations/{id}/typing", tag = "realtime", request_body = TypingBody,
    params(("id" = String, Path, format = Uuid)),
    responses((status = 204, description = "sent to the other participants"), (status = 404, body = Problem),
        (status = 409, body = Problem, description = "archived"), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn send_typing(
    State(state): State<AppState>,
    caller: Caller,
    params: PathParams,
    body: JsonBody<TypingBody>,
) -> Result<Response, ApiError> {
    let id = paths::conversation_id(param(&params, "id"))?;
    let live = live(&state)?;
    let archived: Option<Option<bool>> = sqlx::query_scalar(
        "SELECT c.is_archived FROM CONVERSATION_PARTICIPANTS cp JOIN CONVERSATIONS c ON c.id = cp.conversation_id \
         WHERE cp.conversation_id = ? AND cp.user_id = ?",
    )
    .bind(id.to_string())
    .bind(caller.user_id.get())
    .fetch_optional(&state.pool)
    .await?;
    match archived {
        None => return Err(ApiError::NotFound("conversation".into())),
        Some(Some(true)) => return Err(ApiError::Conflict("the conversation is archived".into())),
        Some(_) => {}
    }
    let signal = TypingSignal { conversation_id: id.to_string(), user_id: caller.user_id, state: body.value.state };
    live.publish_typing(&signal).await.map_err(|e| ApiError::Unavailable(e.to_string()))?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Whether users are online: only users who share a conversation with the
/// caller (others answer `unknown`); at most 100 `user_id`s.
#[utoipa::path(get, path = "/api/v1/presence", tag = "realtime",
    params(("user_id" = Vec<i64>, Query, description = "repeated, 1 to 100 times")),
    responses((status = 200, body = PresenceAnswer), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn get_presence(State(state): State<AppState>, caller: Caller, RawQuery(query): RawQuery) -> Result<Response, ApiError> {
    let users = requested_users(query.as_deref())?;
    let live = live(&state)?;
    let known = shared_with(&state, caller.user_id, &users).await?;
    let presences = live.presence(&users);
    let items = presences
        .into_iter()
        .map(|p| {
            if known.contains(&p.user_id) {
                let status = if p.status == Status::Online { "online" } else { "offline" };
                PresenceItem { user_id: p.user_id.get(), status: status.into(), last_seen_at: p.last_seen_at.map(crate::time::rfc3339) }
            } else {
                PresenceItem { user_id: p.user_id.get(), status: "unknown".into(), last_seen_at: None }
            }
        })
        .collect();
    Ok(Json(PresenceAnswer { items }).into_response())
}

/// The `user_id` parameters, in order, once each.
fn requested_users(query: Option<&str>) -> Result<Vec<UserId>, ApiError> {
    let mut users = Vec::new();
    for (name, value) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        if name != "user_id" {
            continue;
        }
        let user = value
            .parse::<i64>()
            .ok()
            .and_then(UserId::new)
            .ok_or_else(|| ApiError::invalid("user_id", "must be a user id from 1 to 2147483647"))?;
        if !users.contains(&user) {
            users.push(user);
        }
    }
    if users.is_empty() {
        return Err(ApiError::invalid("user_id", "is required (repeat it for several users)"));
    }
    if users.len() > MAX_PRESENCE_USERS {
        return Err(ApiError::invalid("user_id", &format!("at most {MAX_PRESENCE_USERS} users")));
    }
    Ok(users)
}

/// The users among `users` who share a conversation with `caller` (the caller included).
async fn shared_with(state: &AppState, caller: UserId, users: &[UserId]) -> Result<Vec<UserId>, ApiError> {
    let mut q = sqlx::QueryBuilder::<sqlx::MySql>::new(
        "SELECT DISTINCT b.user_id FROM CONVERSATION_PARTICIPANTS a \
         JOIN CONVERSATION_PARTICIPANTS b ON b.conversation_id = a.conversation_id WHERE a.user_id = ",
    );
    q.push_bind(caller.get()).push(" AND b.user_id IN (");
    let mut list = q.separated(", ");
    for user in users {
        list.push_bind(user.get());
    }
    q.push(")");
    let rows: Vec<i32> = q.build_query_scalar().persistent(false).fetch_all(&state.pool).await?;
    let mut known: Vec<UserId> = rows.into_iter().filter_map(|u| UserId::new(i64::from(u))).collect();
    known.push(caller);
    Ok(known)
}
