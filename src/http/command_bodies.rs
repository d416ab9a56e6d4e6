//! The decoding of command bodies as the HTTP edge does it (`json::decode`,
//! then each route's field validation), callable without a server: the fuzz
//! targets in `fuzz/` feed it arbitrary bytes, since bodies are the part of a
//! request an attacker shapes freely.

use super::routes::{
    AddParticipantBody, ChangeRoleBody, CreateConversationBody, EditMessageBody, MarkReadBody, PutPostingBody, PutUserBody, RenameBody,
    SendMessageBody, SettingsBody,
};
use super::{json, ApiError};
use crate::domain::UserId;

/// A command route that takes a JSON body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandBody {
    /// `POST /conversations`
    CreateConversation,
    /// `PATCH /conversations/{id}`
    RenameConversation,
    /// `POST /conversations/{id}/participants`
    AddParticipant,
    /// `PATCH /conversations/{id}/participants/{user_id}`
    ChangeRole,
    /// `PATCH /conversations/{id}/participants/me`
    ChangeOwnSettings,
    /// `POST /conversations/{id}/messages`
    SendMessage,
    /// `PATCH /messages/{id}`
    EditMessage,
    /// `POST /conversations/{id}/read`
    MarkRead,
    /// `PUT /users/{id}`
    PutUser,
    /// `PUT /postings/{id}`
    PutPosting,
}

impl CommandBody {
    /// Every route with a body, so a caller can pick one from a byte.
    pub const ALL: [CommandBody; 10] = [
        CommandBody::CreateConversation,
        CommandBody::RenameConversation,
        CommandBody::AddParticipant,
        CommandBody::ChangeRole,
        CommandBody::ChangeOwnSettings,
        CommandBody::SendMessage,
        CommandBody::EditMessage,
        CommandBody::MarkRead,
        CommandBody::PutUser,
        CommandBody::PutPosting,
    ];
}

/// Decodes `raw` as the body of `route` sent by `caller`, and validates its
/// fields into domain values, exactly as the route's handler does before it
/// reads any state. `Err` is the answer the client would get for the body
/// (400 malformed, 422 wrong shape or value).
pub fn decode_command_body(route: CommandBody, raw: &[u8], caller: UserId) -> Result<(), ApiError> {
    match route {
        CommandBody::CreateConversation => json::decode::<CreateConversationBody>(raw)?.validate(caller).map(drop),
        CommandBody::RenameConversation => json::decode::<RenameBody>(raw)?.validate().map(drop),
        CommandBody::AddParticipant => json::decode::<AddParticipantBody>(raw)?.validate().map(drop),
        CommandBody::ChangeRole => json::decode::<ChangeRoleBody>(raw).map(drop),
        CommandBody::ChangeOwnSettings => json::decode::<SettingsBody>(raw)?.validate().map(drop),
        CommandBody::SendMessage => json::decode::<SendMessageBody>(raw)?.validate().map(drop),
        CommandBody::EditMessage => json::decode::<EditMessageBody>(raw)?.validate().map(drop),
        CommandBody::MarkRead => json::decode::<MarkReadBody>(raw)?.validate().map(drop),
        CommandBody::PutUser => json::decode::<PutUserBody>(raw)?.validate().map(drop),
        CommandBody::PutPosting => json::decode::<PutPostingBody>(raw)?.validate().map(drop),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller() -> UserId {
        UserId::new(1).expect("a user id")
    }

    #[test]
    fn valid_bodies_pass_and_bad_ones_answer_as_the_edge_does() {
        let ok: [(CommandBody, &str); 10] = [
            (CommandBody::CreateConversation, r#"{"type":"GROUP","name":"team","participant_ids":[2,3]}"#),
            (CommandBody::RenameConversation, r#"{"name":"new"}"#),
            (CommandBody::AddParticipant, r#"{"user_id":4,"role":"ADMIN"}"#),
            (CommandBody::ChangeRole, r#"{"role":"OWNER"}"#),
            (CommandBody::ChangeOwnSettings, r#"{"is_muted":true}"#),
            (CommandBody::SendMessage, r#"{"content":"hi"}"#),
            (CommandBody::EditMessage, r#"{"content":"hi again"}"#),
            (CommandBody::MarkRead, r#"{"message_id":"0193a0c2-8c1e-7000-8000-000000000001"}"#),
            (CommandBody::PutUser, r#"{"first_name":"Ada","last_name":"Lovelace","email":"ada@x.test"}"#),
            (CommandBody::PutPosting, r#"{"title":"Flat"}"#),
        ];
        for (route, body) in ok {
            assert!(decode_command_body(route, body.as_bytes(), caller()).is_ok(), "{route:?} {body}");
            assert!(matches!(decode_command_body(route, b"{", caller()), Err(ApiError::BadRequest(_))), "{route:?}");
            assert!(matches!(decode_command_body(route, b"[]", caller()), Err(ApiError::Validation(_))), "{route:?}");
        }
        // Field rules beyond the shape: a DIRECT with two others, an OWNER added, no settings.
        let direct = br#"{"type":"DIRECT","participant_ids":[2,3]}"#;
        assert!(matches!(decode_command_body(CommandBody::CreateConversation, direct, caller()), Err(ApiError::Validation(_))));
        let owner = br#"{"user_id":4,"role":"OWNER"}"#;
        assert!(matches!(decode_command_body(CommandBody::AddParticipant, owner, caller()), Err(ApiError::Validation(_))));
        assert!(matches!(decode_command_body(CommandBody::ChangeOwnSettings, b"{}", caller()), Err(ApiError::Validation(_))));
    }

    /// Every body field given a value of the wrong JSON type answers 422
    /// naming that field (never 400: the body is well-formed JSON).
    #[test]
    fn every_field_of_the_wrong_type_is_named() {
        use CommandBody as C;
        let cases: &[(CommandBody, &str, &str)] = &[
            (C::CreateConversation, r#"{"type":1,"participant_ids":[2]}"#, "type"),
            (C::CreateConversation, r#"{"type":"GROUP","name":1,"participant_ids":[2]}"#, "name"),
            (C::CreateConversation, r#"{"type":"GROUP","posting_id":1,"participant_ids":[2]}"#, "posting_id"),
            (C::CreateConversation, r#"{"type":"GROUP","participant_ids":"2"}"#, "participant_ids"),
            (C::CreateConversation, r#"{"type":"GROUP","participant_ids":[true]}"#, "participant_ids[0]"),
            (C::RenameConversation, r#"{"name":["x"]}"#, "name"),
            (C::AddParticipant, r#"{"user_id":"2"}"#, "user_id"),
            (C::AddParticipant, r#"{"user_id":2,"role":1}"#, "role"),
            (C::ChangeRole, r#"{"role":1}"#, "role"),
            (C::ChangeRole, r#"{"role":null}"#, "role"),
            (C::ChangeOwnSettings, r#"{"is_muted":"yes"}"#, "is_muted"),
            (C::ChangeOwnSettings, r#"{"notifications_enabled":1}"#, "notifications_enabled"),
            (C::SendMessage, r#"{"content":1}"#, "content"),
            (C::SendMessage, r#"{"content":"x","message_type":1}"#, "message_type"),
            (C::SendMessage, r#"{"message_type":"IMAGE","media_url":1}"#, "media_url"),
            (C::SendMessage, r#"{"content":"x","media_metadata":"x"}"#, "media_metadata"),
            (C::SendMessage, r#"{"content":"x","reply_to_id":1}"#, "reply_to_id"),
            (C::EditMessage, r#"{"content":false}"#, "content"),
            (C::MarkRead, r#"{"message_id":1}"#, "message_id"),
            (C::PutUser, r#"{"first_name":1,"last_name":"L"}"#, "first_name"),
            (C::PutUser, r#"{"first_name":"F","last_name":{}}"#, "last_name"),
            (C::PutUser, r#"{"first_name":"F","last_name":"L","email":1}"#, "email"),
            (C::PutPosting, r#"{"title":1.5}"#, "title"),
        ];
        for (route, body, field) in cases {
            match decode_command_body(*route, body.as_bytes(), caller()) {
                Err(ApiError::Validation(errors)) => assert_eq!(errors[0].field, *field, "{route:?} {body}"),
                other => panic!("{route:?} {body}: {other:?}"),
            }
        }
    }

    /// Data after the JSON value is malformed JSON, whatever the route.
    #[test]
    fn trailing_data_is_malformed() {
        for route in CommandBody::ALL {
            let body = br#"{"content": "x"} trailing"#;
            assert!(matches!(decode_command_body(route, body, caller()), Err(ApiError::BadRequest(_))), "{route:?}");
        }
    }
}
