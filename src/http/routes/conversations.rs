//! Conversation commands: create, rename, archive, unarchive.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use utoipa::ToSchema;

use super::super::command_runner::{run_command, Answer, CommandRequest, RequestHead};
use super::super::json::JsonBody;
use super::super::{openapi, paths, ApiError, AppState, Caller};
use super::{param, PathParams, PositionAnswer};
use crate::app::{ExecuteError, DIRECT_LOOKUP};
use crate::domain::conversation::{Conversation, ConversationAggregate, ConversationCommand, CreateConversation};
use crate::domain::values::{ConversationName, ConversationType, MAX_PARTICIPANTS};
use crate::domain::{Aggregate, ConversationId, FieldError, PostingId, UserId};
use crate::event_store::StreamRef;

/// Body of `POST /conversations`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateConversationBody {
    /// `DIRECT` or `GROUP`.
    #[serde(rename = "type")]
    #[schema(schema_with = openapi::conversation_type_schema, example = "GROUP")]
    pub kind: ConversationType,
    /// GROUP only, 1-200 characters.
    #[schema(min_length = 1, max_length = 200)]
    pub name: Option<String>,
    /// The posting the conversation is about (UUID).
    #[schema(format = Uuid)]
    pub posting_id: Option<String>,
    /// The other participants; the creator is added as OWNER.
    #[schema(schema_with = openapi::participant_ids_schema)]
    pub participant_ids: Vec<i64>,
}

/// Answer of `POST /conversations`.
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct ConversationCreated {
    pub conversation_id: String,
    pub position: u64,
}

/// Body of `PATCH /conversations/{id}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RenameBody {
    /// 1-200 characters, not blank.
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
}

/// Creates a conversation. A DIRECT one that already exists for this pair of
/// users and posting answers 200 with its id and the position that created it.
#[utoipa::path(post, path = "/api/v1/conversations", tag = "commands",
    request_body = CreateConversationBody,
    params(("Idempotency-Key" = Option<String>, Header, description = "Retry-safe key, per user")),
    responses(
        (status = 201, body = ConversationCreated), (status = 200, body = ConversationCreated, description = "existing DIRECT"),
        (status = 401, body = super::super::problem::Problem), (status = 422, body = super::super::problem::Problem)
    ),
    security(("bearer" = [])))]
pub async fn create_conversation(
    State(state): State<AppState>,
    caller: Caller,
    head: RequestHead,
    body: JsonBody<CreateConversationBody>,
) -> Result<Response, ApiError> {
    let request = CommandRequest::new(&head, &body.raw)?;
    let create = body.value.validate(caller.user_id)?;
    let command = ConversationCommand::Create(create.clone());
    let id = create.conversation_id.to_string();
    let planned = Answer::new(StatusCode::CREATED).with("conversation_id", id.clone());
    let services = &state;
    run_command(&state, &caller, request, planned, |ctx| async move {
        if let Some(key) = create.direct_key() {
            if let Some(existing) = services.executor.reader().lookup(DIRECT_LOOKUP, &key).await? {
                return existing_direct(services, existing).await;
            }
        }
        match services.executor.execute(&services.conversations, &id, &command, &ctx).await {
            Ok(outcome) => Ok(Answer::new(StatusCode::CREATED).with("conversation_id", id.clone()).at(outcome.position)),
            Err(ExecuteError::LookupTaken { existing_stream_id }) => existing_direct(services, existing_stream_id).await,
            Err(ExecuteError::Command(error)) => Err(error.into()),
        }
    })
    .await
}

/// The answer for a DIRECT conversation that already exists: 200, its id, and
/// the position of the event that created it.
async fn existing_direct(state: &AppState, conversation_id: String) -> Result<Answer, ApiError> {
    let stream = StreamRef { stream_type: ConversationAggregate::STREAM_TYPE, stream_id: conversation_id.clone() };
    let position = state.executor.reader().position_of(&stream, 1).await.map_err(crate::app::CommandError::from)?.unwrap_or(0);
    Ok(Answer::new(StatusCode::OK).with("conversation_id", conversation_id).at(position))
}

impl CreateConversationBody {
    /// The creation `created_by` asks for, its fields validated and the
    /// creation rules checked (they need no state: checked before looking for
    /// an existing DIRECT).
    pub(in crate::http) fn validate(self, created_by: UserId) -> Result<CreateConversation, ApiError> {
        let create = parse_create(self, created_by)?;
        ConversationAggregate::decide(&ConversationCommand::Create(create.clone()), &Conversation::default())?;
        Ok(create)
    }
}

fn parse_create(body: CreateConversationBody, created_by: UserId) -> Result<CreateConversation, ApiError> {
    let mut errors = Vec::new();
    let name = match body.name.as_deref().map(|n| ConversationName::parse("name", n)) {
        Some(Ok(name)) => Some(name),
        Some(Err(e)) => {
            errors.push(e);
            None
        }
        None => None,
    };
    let posting_id = match body.posting_id.as_deref().map(str::parse::<PostingId>) {
        Some(Ok(id)) => Some(id),
        Some(Err(_)) => {
            errors.push(FieldError::new("posting_id", "must be a UUID"));
            None
        }
        None => None,
    };
    if body.participant_ids.len() > MAX_PARTICIPANTS {
        errors.push(FieldError::new("participant_ids", "at most 1,000 participants"));
    }
    let mut participant_ids = Vec::with_capacity(body.participant_ids.len());
    for (i, raw) in body.participant_ids.iter().enumerate() {
        match UserId::new(*raw) {
            Some(id) => participant_ids.push(id),
            None => errors.push(FieldError::new(format!("participant_ids[{i}]"), "must be a user id from 1 to 2147483647")),
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    Ok(CreateConversation { conversation_id: ConversationId::new(), kind: body.kind, name, posting_id, created_by, participant_ids })
}

impl RenameBody {
    /// The new name, validated.
    pub(in crate::http) fn validate(&self) -> Result<ConversationName, ApiError> {
        ConversationName::parse("name", &self.name).map_err(|e| ApiError::Validation(vec![e]))
    }
}

/// Renames a GROUP (OWNER or ADMIN).
#[utoipa::path(patch, path = "/api/v1/conversations/{id}", tag = "commands", request_body = RenameBody,
    params(("id" = String, Path, format = Uuid), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, body = PositionAnswer), (status = 403, body = super::super::problem::Problem),
        (status = 404, body = super::super::problem::Problem), (status = 409, body = super::super::problem::Problem)),
    security(("bearer" = [])))]
pub async fn rename_conversation(
    State(state): State<AppState>,
    caller: Caller,
    head: RequestHead,
    params: PathParams,
    body: JsonBody<RenameBody>,
) -> Result<Response, ApiError> {
    let name = body.value.validate()?;
    let id = paths::conversation_id(param(&params, "id"))?;
    let command = ConversationCommand::Rename { by: caller.user_id, name };
    conversation_command(&state, &caller, CommandRequest::new(&head, &body.raw)?, id, command).await
}

/// Archives a conversation (DIRECT: either participant; GROUP: OWNER or ADMIN).
#[utoipa::path(post, path = "/api/v1/conversations/{id}/archive", tag = "commands",
    params(("id" = String, Path, format = Uuid), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, body = PositionAnswer), (status = 403, body = super::super::problem::Problem),
        (status = 409, body = super::super::problem::Problem)),
    security(("bearer" = [])))]
pub async fn archive_conversation(
    State(state): State<AppState>,
    caller: Caller,
    head: RequestHead,
    params: PathParams,
) -> Result<Response, ApiError> {
    let request = CommandRequest::new(&head, b"")?;
    let id = paths::conversation_id(param(&params, "id"))?;
    conversation_command(&state, &caller, request, id, ConversationCommand::Archive { by: caller.user_id }).await
}

/// Unarchives a conversation (same rule as archiving).
#[utoipa::path(post, path = "/api/v1/conversations/{id}/unarchive", tag = "commands",
    params(("id" = String, Path, format = Uuid), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, body = PositionAnswer), (status = 403, body = super::super::problem::Problem),
        (status = 409, body = super::super::problem::Problem)),
    security(("bearer" = [])))]
pub async fn unarchive_conversation(
    State(state): State<AppState>,
    caller: Caller,
    head: RequestHead,
    params: PathParams,
) -> Result<Response, ApiError> {
    let request = CommandRequest::new(&head, b"")?;
    let id = paths::conversation_id(param(&params, "id"))?;
    conversation_command(&state, &caller, request, id, ConversationCommand::Unarchive { by: caller.user_id }).await
}

/// Runs a conversation command whose answer is `{"position"}` with 200.
pub(super) async fn conversation_command(
    state: &AppState,
    caller: &Caller,
    request: CommandRequest,
    id: ConversationId,
    command: ConversationCommand,
) -> Result<Response, ApiError> {
    answer_with_position(state, caller, request, id, command, StatusCode::OK).await
}

/// Runs a conversation command whose answer is `{"position"}` with `status`.
pub(super) async fn answer_with_position(
    state: &AppState,
    caller: &Caller,
    request: CommandRequest,
    id: ConversationId,
    command: ConversationCommand,
    status: StatusCode,
) -> Result<Response, ApiError> {
    let stream_id = id.to_string();
    run_command(state, caller, request, Answer::new(status), |ctx| async move {
        let services = state;
        let outcome = services.executor.execute(&services.conversations, &stream_id, &command, &ctx).await.map_err(into_api_error)?;
        Ok(Answer::new(status).at(outcome.position))
    })
    .await
}

/// Maps an executor failure where no unique lookup is involved.
pub(super) fn into_api_error(error: ExecuteError) -> ApiError {
    match error {
        ExecuteError::Command(error) => error.into(),
        ExecuteError::LookupTaken { existing_stream_id } => {
            ApiError::Internal(format!("unexpected lookup conflict with {existing_stream_id}"))
        }
    }
}
