//! Directory commands (scope `chat:admin`): users and postings.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use utoipa::ToSchema;

use super::super::command_runner::{run_command, Answer, CommandRequest, RequestHead};
use super::super::json::JsonBody;
use super::super::problem::Problem;
use super::super::{paths, ApiError, AppState, Caller, SCOPE_ADMIN};
use super::conversations::into_api_error;
use super::{param, PathParams, PositionAnswer};
use crate::domain::posting::PublishPosting;
use crate::domain::user::RegisterUser;
use crate::domain::values::{check_posting_title, UserProfile};

/// Body of `PUT /users/{id}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutUserBody {
    /// 1-100 characters, not blank.
    #[schema(min_length = 1, max_length = 100)]
    pub first_name: String,
    /// 1-100 characters, not blank.
    #[schema(min_length = 1, max_length = 100)]
    pub last_name: String,
    /// An email address, at most 255 characters.
    #[schema(format = Email, max_length = 255)]
    pub email: Option<String>,
}

impl PutUserBody {
    /// The profile, validated.
    pub(in crate::http) fn validate(self) -> Result<UserProfile, ApiError> {
        let PutUserBody { first_name, last_name, email } = self;
        UserProfile::parse(first_name, last_name, email).map_err(ApiError::Validation)
    }
}

/// Body of `PUT /postings/{id}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutPostingBody {
    /// 1-200 characters, not blank.
    #[schema(min_length = 1, max_length = 200)]
    pub title: String,
}

impl PutPostingBody {
    /// The title, validated.
    pub(in crate::http) fn validate(self) -> Result<String, ApiError> {
        check_posting_title(&self.title).map_err(|e| ApiError::Validation(vec![e]))?;
        Ok(self.title)
    }
}

/// Creates or updates a user of the directory.
#[utoipa::path(put, path = "/api/v1/users/{id}", tag = "directory", request_body = PutUserBody,
    params(("id" = i32, Path, minimum = 1), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, body = PositionAnswer), (status = 403, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn put_user(
    State(state): State<AppState>,
    caller: Caller,
    head: RequestHead,
    params: PathParams,
    body: JsonBody<PutUserBody>,
) -> Result<Response, ApiError> {
    let request = CommandRequest::new(&head, &body.raw)?;
    let profile = body.value.validate()?;
    let user_id = paths::user_id(param(&params, "id"))?;
    caller.require_scope(SCOPE_ADMIN)?;
    let command = RegisterUser { user_id, profile };
    let services = &state;
    run_command(&state, &caller, request, Answer::new(StatusCode::OK), |ctx| async move {
        let outcome = services.executor.execute(&services.users, &user_id.to_string(), &command, &ctx).await.map_err(into_api_error)?;
        Ok(Answer::new(StatusCode::OK).at(outcome.position))
    })
    .await
}

/// Creates or retitles a posting.
#[utoipa::path(put, path = "/api/v1/postings/{id}", tag = "directory", request_body = PutPostingBody,
    params(("id" = String, Path, format = Uuid), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, body = PositionAnswer), (status = 403, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn put_posting(
    State(state): State<AppState>,
    caller: Caller,
    head: RequestHead,
    params: PathParams,
    body: JsonBody<PutPostingBody>,
) -> Result<Response, ApiError> {
    let request = CommandRequest::new(&head, &body.raw)?;
    let title = body.value.validate()?;
    let posting_id = paths::posting_id(param(&params, "id"))?;
    caller.require_scope(SCOPE_ADMIN)?;
    let command = PublishPosting { posting_id, title };
    let services = &state;
    run_command(&state, &caller, request, Answer::new(StatusCode::OK), |ctx| async move {
        let outcome =
            services.executor.execute(&services.postings, &posting_id.to_string(), &command, &ctx).await.map_err(into_api_error)?;
        Ok(Answer::new(StatusCode::OK).at(outcome.position))
    })
    .await
}
