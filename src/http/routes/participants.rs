//! Membership commands: add, remove (or leave), change role, own settings.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use utoipa::ToSchema;

use super::super::command_runner::{CommandRequest, RequestHead};
use super::super::json::JsonBody;
use super::super::problem::Problem;
use super::super::{openapi, paths, ApiError, AppState, Caller};
use super::conversations::{answer_with_position, conversation_command};
use super::{param, PathParams, PositionAnswer};
use crate::domain::conversation::ConversationCommand;
use crate::domain::values::Role;
use crate::domain::UserId;

/// Body of `POST /conversations/{id}/participants`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddParticipantBody {
    /// An existing user.
    #[schema(minimum = 1, maximum = 2147483647)]
    pub user_id: i64,
    /// `ADMIN` or `MEMBER` (default).
    #[schema(schema_with = openapi::added_role_schema, example = "MEMBER")]
    pub role: Option<Role>,
}

impl AddParticipantBody {
    /// The user to add and their role (MEMBER unless given; never OWNER).
    pub(in crate::http) fn validate(&self) -> Result<(UserId, Role), ApiError> {
        let user_id = UserId::new(self.user_id).ok_or_else(|| ApiError::invalid("user_id", "must be a user id from 1 to 2147483647"))?;
        let role = self.role.unwrap_or(Role::Member);
        if role == Role::Owner {
            return Err(ApiError::invalid("role", "must be ADMIN or MEMBER"));
        }
        Ok((user_id, role))
    }
}

/// Body of `PATCH /conversations/{id}/participants/{user_id}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeRoleBody {
    /// `OWNER` (transfers ownership), `ADMIN` or `MEMBER`.
    #[schema(schema_with = openapi::role_schema, example = "ADMIN")]
    pub role: Role,
}

/// Body of `PATCH /conversations/{id}/participants/me`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettingsBody {
    pub is_muted: Option<bool>,
    pub notifications_enabled: Option<bool>,
}

impl SettingsBody {
    /// The settings to change: at least one of them.
    pub(in crate::http) fn validate(&self) -> Result<(Option<bool>, Option<bool>), ApiError> {
        if self.is_muted.is_none() && self.notifications_enabled.is_none() {
            return Err(ApiError::invalid("body", "give is_muted, notifications_enabled or both"));
        }
        Ok((self.is_muted, self.notifications_enabled))
    }
}

/// Adds a participant to a GROUP (OWNER or ADMIN).
#[utoipa::path(post, path = "/api/v1/conversations/{id}/participants", tag = "commands", request_body = AddParticipantBody,
    params(("id" = String, Path, format = Uuid), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 201, body = PositionAnswer), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem, description = "already a participant, DIRECT, archived, or full"), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn add_participant(
    State(state): State<AppState>,
    caller: Caller,
    head: RequestHead,
    params: PathParams,
    body: JsonBody<AddParticipantBody>,
) -> Result<Response, ApiError> {
    let (user_id, role) = body.value.validate()?;
    let request = CommandRequest::new(&head, &body.raw)?;
    let id = paths::conversation_id(param(&params, "id"))?;
    let command = ConversationCommand::AddParticipant { by: caller.user_id, user_id, role };
    answer_with_position(&state, &caller, request, id, command, StatusCode::CREATED).await
}

/// Removes a participant from a GROUP (OWNER or ADMIN), or leaves it (oneself).
#[utoipa::path(delete, path = "/api/v1/conversations/{id}/participants/{user_id}", tag = "commands",
    params(("id" = String, Path, format = Uuid), ("user_id" = i32, Path, minimum = 1), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, body = PositionAnswer), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem)),
    security(("bearer" = [])))]
pub async fn remove_participant(
    State(state): State<AppState>,
    caller: Caller,
    head: RequestHead,
    params: PathParams,
) -> Result<Response, ApiError> {
    let request = CommandRequest::new(&head, b"")?;
    let id = paths::conversation_id(param(&params, "id"))?;
    let user_id = paths::user_id(param(&params, "user_id"))?;
    conversation_command(&state, &caller, request, id, ConversationCommand::RemoveParticipant { by: caller.user_id, user_id }).await
}

/// Changes a participant's role (OWNER only); making someone OWNER transfers ownership.
#[utoipa::path(patch, path = "/api/v1/conversations/{id}/participants/{user_id}", tag = "commands", request_body = ChangeRoleBody,
    params(("id" = String, Path, format = Uuid), ("user_id" = i32, Path, minimum = 1), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, body = PositionAnswer), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem)),
    security(("bearer" = [])))]
pub async fn change_role(
    State(state): State<AppState>,
    caller: Caller,
    head: RequestHead,
    params: PathParams,
    body: JsonBody<ChangeRoleBody>,
) -> Result<Response, ApiError> {
    let request = CommandRequest::new(&head, &body.raw)?;
    let id = paths::conversation_id(param(&params, "id"))?;
    let user_id = paths::user_id(param(&params, "user_id"))?;
    let command = ConversationCommand::ChangeRole { by: caller.user_id, user_id, role: body.value.role };
    conversation_command(&state, &caller, request, id, command).await
}

/// Changes the caller's own settings in a conversation.
#[utoipa::path(patch, path = "/api/v1/conversations/{id}/participants/me", tag = "commands", request_body = SettingsBody,
    params(("id" = String, Path, format = Uuid), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, body = PositionAnswer), (status = 404, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn change_own_settings(
    State(state): State<AppState>,
    caller: Caller,
    head: RequestHead,
    params: PathParams,
    body: JsonBody<SettingsBody>,
) -> Result<Response, ApiError> {
    let (is_muted, notifications_enabled) = body.value.validate()?;
    let request = CommandRequest::new(&head, &body.raw)?;
    let id = paths::conversation_id(param(&params, "id"))?;
    let command = ConversationCommand::ChangeSettings { by: caller.user_id, is_muted, notifications_enabled };
    conversation_command(&state, &caller, request, id, command).await
}
