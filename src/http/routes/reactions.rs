//! Reaction commands: one reaction per user, message and emoji.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;

use super::super::command_runner::{run_command, Answer, CommandRequest, RequestHead};
use super::super::problem::Problem;
use super::super::{paths, ApiError, AppState, Caller};
use super::conversations::{conversation_command, into_api_error};
use super::messages::{as_unknown_message, conversation_of};
use super::{param, PathParams, PositionAnswer};
use crate::domain::conversation::ConversationCommand;
use crate::domain::values::Emoji;
use crate::domain::ReactionId;

/// Answer of `PUT /messages/{id}/reactions/{emoji}`.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ReactionAnswer {
    pub reaction_id: String,
    pub position: u64,
}

/// The emoji path segment, percent-decoded and checked (422 when invalid).
fn emoji(params: &PathParams) -> Result<Emoji, ApiError> {
    // The router has percent-decoded the segment already: decoding it again
    // would turn a literal "%41" into "A".
    Emoji::parse(param(params, "emoji")).map_err(|e| ApiError::Validation(vec![e]))
}

/// Adds the caller's reaction; the same reaction again answers 200 with the first one.
#[utoipa::path(put, path = "/api/v1/messages/{id}/reactions/{emoji}", tag = "commands",
    params(("id" = String, Path, format = Uuid),
        ("emoji" = String, Path, min_length = 1, max_length = 50, description = "percent-encoded, 1-50 characters"),
        ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 201, body = ReactionAnswer), (status = 200, body = ReactionAnswer, description = "already there"),
        (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn add_reaction(
    State(state): State<AppState>,
    caller: Caller,
    head: RequestHead,
    params: PathParams,
) -> Result<Response, ApiError> {
    let request = CommandRequest::new(&head, b"")?;
    let emoji = emoji(&params)?;
    let message_id = paths::message_id(param(&params, "id"))?;
    let conversation = conversation_of(&state, message_id).await?;
    let reaction_id = ReactionId::new();
    let command = ConversationCommand::AddReaction { by: caller.user_id, message_id, reaction_id, emoji };
    let planned = Answer::new(StatusCode::CREATED).with("reaction_id", reaction_id.to_string());
    let stream_id = conversation.to_string();
    let services = &state;
    run_command(&state, &caller, request, planned, |ctx| async move {
        let outcome = services.executor.execute(&services.conversations, &stream_id, &command, &ctx).await.map_err(into_api_error)?;
        Ok(match outcome.existing_id {
            Some(existing) => Answer::new(StatusCode::OK).with("reaction_id", existing),
            None => Answer::new(StatusCode::CREATED).with("reaction_id", reaction_id.to_string()),
        }
        .at(outcome.position))
    })
    .await
    .map_err(as_unknown_message)
}

/// Removes the caller's reaction; 404 if there is none.
#[utoipa::path(delete, path = "/api/v1/messages/{id}/reactions/{emoji}", tag = "commands",
    params(("id" = String, Path, format = Uuid), ("emoji" = String, Path, min_length = 1, max_length = 50),
        ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, body = PositionAnswer), (status = 404, body = Problem), (status = 409, body = Problem),
        (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn remove_reaction(
    State(state): State<AppState>,
    caller: Caller,
    head: RequestHead,
    params: PathParams,
) -> Result<Response, ApiError> {
    let request = CommandRequest::new(&head, b"")?;
    let emoji = emoji(&params)?;
    let message_id = paths::message_id(param(&params, "id"))?;
    let conversation = conversation_of(&state, message_id).await?;
    conversation_command(
        &state,
        &caller,
        request,
        conversation,
        ConversationCommand::RemoveReaction { by: caller.user_id, message_id, emoji },
    )
    .await
    .map_err(as_unknown_message)
}
