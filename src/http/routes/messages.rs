//! Message commands: send, edit, delete, and read marks.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use utoipa::ToSchema;

use super::super::command_runner::{run_command, Answer, CommandRequest, RequestHead};
use super::super::json::JsonBody;
use super::super::problem::Problem;
use super::super::{openapi, paths, ApiError, AppState, Caller};
use super::conversations::{conversation_command, into_api_error};
use super::{param, PathParams, PositionAnswer};
use crate::app::MESSAGE_LOOKUP;
use crate::domain::conversation::ConversationCommand;
use crate::domain::values::{MessageBody, MessageType, CONTENT_MAX_CHARS};
use crate::domain::{ConversationId, MessageId};

/// Body of `POST /conversations/{id}/messages`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendMessageBody {
    /// Required, non-blank, for TEXT; at most 10,000 characters.
    #[schema(max_length = 10000)]
    pub content: Option<String>,
    /// `TEXT` (default), `IMAGE` or `FILE`.
    #[schema(schema_with = openapi::message_type_schema, example = "TEXT")]
    pub message_type: Option<MessageType>,
    /// http(s) URL, required for IMAGE and FILE; at most 500 characters.
    #[schema(max_length = 500, pattern = "^https?://")]
    pub media_url: Option<String>,
    /// A JSON object of at most 16 KiB.
    #[schema(value_type = Option<Object>)]
    pub media_metadata: Option<serde_json::Value>,
    /// A message of the same conversation.
    #[schema(format = Uuid)]
    pub reply_to_id: Option<String>,
}

impl SendMessageBody {
    /// The message's body and the message it replies to, validated.
    pub(in crate::http) fn validate(self) -> Result<(MessageBody, Option<MessageId>), ApiError> {
        let SendMessageBody { content, message_type, media_url, media_metadata, reply_to_id } = self;
        let reply_to_id = reply_to_id
            .map(|raw| raw.parse::<MessageId>().map_err(|_| ApiError::invalid("reply_to_id", "must be a message id (UUID)")))
            .transpose()?;
        let message_body = MessageBody::parse(message_type, content, media_url, media_metadata).map_err(ApiError::Validation)?;
        Ok((message_body, reply_to_id))
    }
}

/// Answer of `POST /conversations/{id}/messages`.
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct MessageSentAnswer {
    pub message_id: String,
    pub position: u64,
}

/// Body of `PATCH /messages/{id}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EditMessageBody {
    /// At most 10,000 characters; non-blank for a TEXT message.
    #[schema(max_length = 10000)]
    pub content: String,
}

impl EditMessageBody {
    /// The new content, checked for length (its type's rules are the domain's).
    pub(in crate::http) fn validate(self) -> Result<String, ApiError> {
        if self.content.chars().count() > CONTENT_MAX_CHARS {
            return Err(ApiError::invalid("content", "must be at most 10000 characters"));
        }
        Ok(self.content)
    }
}

/// Body of `POST /conversations/{id}/read`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MarkReadBody {
    /// A message of this conversation: the last one read.
    #[schema(format = Uuid)]
    pub message_id: String,
}

impl MarkReadBody {
    /// The message read up to.
    pub(in crate::http) fn validate(&self) -> Result<MessageId, ApiError> {
        self.message_id.parse().map_err(|_| ApiError::invalid("message_id", "must be a message id (UUID)"))
    }
}

/// Sends a message to a conversation the caller is in.
#[utoipa::path(post, path = "/api/v1/conversations/{id}/messages", tag = "commands", request_body = SendMessageBody,
    params(("id" = String, Path, format = Uuid), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 201, body = MessageSentAnswer), (status = 404, body = Problem),
        (status = 409, body = Problem, description = "archived"),
        (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn send_message(
    State(state): State<AppState>,
    caller: Caller,
    head: RequestHead,
    params: PathParams,
    body: JsonBody<SendMessageBody>,
) -> Result<Response, ApiError> {
    let request = CommandRequest::new(&head, &body.raw)?;
    let (message_body, reply_to_id) = body.value.validate()?;
    let id = paths::conversation_id(param(&params, "id"))?;
    let message_id = MessageId::new();
    let command = ConversationCommand::SendMessage { by: caller.user_id, message_id, body: message_body, reply_to_id };
    let planned = Answer::new(StatusCode::CREATED).with("message_id", message_id.to_string());
    let stream_id = id.to_string();
    let services = &state;
    run_command(&state, &caller, request, planned, |ctx| async move {
        let outcome = services.executor.execute(&services.conversations, &stream_id, &command, &ctx).await.map_err(into_api_error)?;
        Ok(Answer::new(StatusCode::CREATED).with("message_id", message_id.to_string()).at(outcome.position))
    })
    .await
}

/// Edits a message (its sender only).
#[utoipa::path(patch, path = "/api/v1/messages/{id}", tag = "commands", request_body = EditMessageBody,
    params(("id" = String, Path, format = Uuid), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, body = PositionAnswer), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem, description = "deleted message or archived conversation")),
    security(("bearer" = [])))]
pub async fn edit_message(
    State(state): State<AppState>,
    caller: Caller,
    head: RequestHead,
    params: PathParams,
    body: JsonBody<EditMessageBody>,
) -> Result<Response, ApiError> {
    let request = CommandRequest::new(&head, &body.raw)?;
    let content = body.value.validate()?;
    let message_id = paths::message_id(param(&params, "id"))?;
    let conversation = conversation_of(&state, message_id).await?;
    let command = ConversationCommand::EditMessage { by: caller.user_id, message_id, content };
    conversation_command(&state, &caller, request, conversation, command).await.map_err(as_unknown_message)
}

/// Deletes a message (its sender, or an OWNER or ADMIN of the conversation).
#[utoipa::path(delete, path = "/api/v1/messages/{id}", tag = "commands",
    params(("id" = String, Path, format = Uuid), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, body = PositionAnswer), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem)),
    security(("bearer" = [])))]
pub async fn delete_message(
    State(state): State<AppState>,
    caller: Caller,
    head: RequestHead,
    params: PathParams,
) -> Result<Response, ApiError> {
    let request = CommandRequest::new(&head, b"")?;
    let message_id = paths::message_id(param(&params, "id"))?;
    let conversation = conversation_of(&state, message_id).await?;
    conversation_command(&state, &caller, request, conversation, ConversationCommand::DeleteMessage { by: caller.user_id, message_id })
        .await
        .map_err(as_unknown_message)
}

/// Moves the caller's read mark forward to a message (never back).
#[utoipa::path(post, path = "/api/v1/conversations/{id}/read", tag = "commands", request_body = MarkReadBody,
    params(("id" = String, Path, format = Uuid), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, body = PositionAnswer), (status = 404, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn mark_read(
    State(state): State<AppState>,
    caller: Caller,
    head: RequestHead,
    params: PathParams,
    body: JsonBody<MarkReadBody>,
) -> Result<Response, ApiError> {
    let request = CommandRequest::new(&head, &body.raw)?;
    let message_id = body.value.validate()?;
    let id = paths::conversation_id(param(&params, "id"))?;
    conversation_command(&state, &caller, request, id, ConversationCommand::MarkRead { by: caller.user_id, message_id }).await
}

/// The conversation a message belongs to; 404 if there is no such message.
/// A message command by someone outside the message's conversation must
/// answer exactly as if the message did not exist: the id reveals nothing.
pub(super) fn as_unknown_message(error: ApiError) -> ApiError {
    match error {
        ApiError::NotFound(what) if what == "conversation" => ApiError::NotFound("message".into()),
        other => other,
    }
}

pub(super) async fn conversation_of(state: &AppState, message_id: MessageId) -> Result<ConversationId, ApiError> {
    let stream = state
        .executor
        .reader()
        .lookup(MESSAGE_LOOKUP, &message_id.to_string())
        .await
        .map_err(crate::app::CommandError::from)?
        .ok_or_else(|| ApiError::NotFound("message".into()))?;
    stream.parse().map_err(|_| ApiError::Internal(format!("message {message_id} points at a bad stream id {stream}")))
}
