//! Validated values: each type can only hold what API.md's rules allow, so a
//! command built from them is well-formed by construction.

use serde::{Deserialize, Serialize};

use super::FieldError;

/// DIRECT (two people, fixed) or GROUP (named, managed by its OWNER and ADMINs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ConversationType {
    Direct,
    Group,
}

/// A participant's role in a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Role {
    Owner,
    Admin,
    Member,
}

impl Role {
    /// OWNER and ADMIN manage a group.
    pub fn manages(self) -> bool {
        matches!(self, Role::Owner | Role::Admin)
    }
}

/// What a message carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MessageType {
    Text,
    Image,
    File,
    System,
}

/// Longest conversation name, in characters.
pub const NAME_MAX_CHARS: usize = 200;
/// Longest message content, in characters.
pub const CONTENT_MAX_CHARS: usize = 10_000;
/// Longest media URL, in characters.
pub const MEDIA_URL_MAX_CHARS: usize = 500;
/// Largest media metadata object, serialised, in bytes.
pub const MEDIA_METADATA_MAX_BYTES: usize = 16 * 1024;
/// Longest emoji, in characters.
pub const EMOJI_MAX_CHARS: usize = 50;
/// Most participants a conversation may have.
pub const MAX_PARTICIPANTS: usize = 1_000;

fn chars(s: &str) -> usize {
    s.chars().count()
}

/// A conversation name: 1-200 characters, not blank.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ConversationName(String);

impl ConversationName {
    pub fn parse(field: &str, raw: &str) -> Result<Self, FieldError> {
        if raw.trim().is_empty() {
            return Err(FieldError::new(field, "must not be blank"));
        }
        if chars(raw) > NAME_MAX_CHARS {
            return Err(FieldError::new(field, format!("must be at most {NAME_MAX_CHARS} characters")));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An emoji reaction: 1-50 characters, no whitespace or control characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(transparent)]
pub struct Emoji(String);

impl Emoji {
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let n = chars(raw);
        if n == 0 || n > EMOJI_MAX_CHARS {
            return Err(FieldError::new("emoji", format!("must be 1 to {EMOJI_MAX_CHARS} characters")));
        }
        if raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(FieldError::new("emoji", "must not contain whitespace or control characters"));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The body of a message as a client may send it: type, content and media,
/// checked together (TEXT needs content, IMAGE and FILE need an http(s) URL).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageBody {
    pub message_type: MessageType,
    pub content: Option<String>,
    pub media_url: Option<String>,
    pub media_metadata: Option<serde_json::Map<String, serde_json::Value>>,
}

impl MessageBody {
    /// Validates a client-sent body; `SYSTEM` is refused (the server writes those).
    pub fn parse(
        message_type: Option<MessageType>,
        content: Option<String>,
        media_url: Option<String>,
        media_metadata: Option<serde_json::Value>,
    ) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let message_type = message_type.unwrap_or(MessageType::Text);
        if message_type == MessageType::System {
            errors.push(FieldError::new("message_type", "SYSTEM messages are written by the server only"));
        }
        if let Some(content) = &content {
            if chars(content) > CONTENT_MAX_CHARS {
                errors.push(FieldError::new("content", format!("must be at most {CONTENT_MAX_CHARS} characters")));
            }
        }
        if message_type == MessageType::Text && content.as_deref().is_none_or(|c| c.trim().is_empty()) {
            errors.push(FieldError::new("content", "a TEXT message needs non-blank content"));
        }
        match &media_url {
            Some(url) => {
                if let Err(message) = check_media_url(url) {
                    errors.push(FieldError::new("media_url", message));
                }
            }
            None if matches!(message_type, MessageType::Image | MessageType::File) => {
                errors.push(FieldError::new("media_url", "IMAGE and FILE messages need a media_url"));
            }
            None => {}
        }
        let media_metadata = match media_metadata {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::Object(map)) => {
                let size = serde_json::to_vec(&map).map(|v| v.len()).unwrap_or(usize::MAX);
                if size > MEDIA_METADATA_MAX_BYTES {
                    errors.push(FieldError::new("media_metadata", "must be at most 16 KiB"));
                }
                Some(map)
            }
            Some(_) => {
                errors.push(FieldError::new("media_metadata", "must be a JSON object"));
                None
            }
        };
        if errors.is_empty() {
            Ok(Self { message_type, content, media_url, media_metadata })
        } else {
            Err(errors)
        }
    }
}

/// Validates new content for an existing message of the given type.
pub fn check_edited_content(message_type: MessageType, content: &str) -> Result<(), FieldError> {
    if chars(content) > CONTENT_MAX_CHARS {
        return Err(FieldError::new("content", format!("must be at most {CONTENT_MAX_CHARS} characters")));
    }
    if message_type == MessageType::Text && content.trim().is_empty() {
        return Err(FieldError::new("content", "a TEXT message needs non-blank content"));
    }
    Ok(())
}

fn check_media_url(url: &str) -> Result<(), String> {
    if chars(url) > MEDIA_URL_MAX_CHARS {
        return Err(format!("must be at most {MEDIA_URL_MAX_CHARS} characters"));
    }
    match url::Url::parse(url) {
        Ok(parsed) if matches!(parsed.scheme(), "http" | "https") && parsed.host().is_some() => Ok(()),
        _ => Err("must be an absolute http(s) URL".to_owned()),
    }
}

/// A user's name and email as the directory keeps them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserProfile {
    pub first_name: String,
    pub last_name: String,
    pub email: Option<String>,
}

impl UserProfile {
    /// First and last name 1-100 characters; email at most 255 and shaped like one.
    pub fn parse(first_name: String, last_name: String, email: Option<String>) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        for (field, value) in [("first_name", &first_name), ("last_name", &last_name)] {
            if value.trim().is_empty() || chars(value) > 100 {
                errors.push(FieldError::new(field, "must be 1 to 100 characters, not blank"));
            }
        }
        if let Some(email) = &email {
            let shaped = email.len() <= 255
                && email
                    .split_once('@')
                    .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.') && !email.chars().any(char::is_whitespace));
            if !shaped {
                errors.push(FieldError::new("email", "must be an email address of at most 255 characters"));
            }
        }
        if errors.is_empty() {
            Ok(Self { first_name, last_name, email })
        } else {
            Err(errors)
        }
    }
}

/// A posting title: 1-200 characters, not blank.
pub fn check_posting_title(title: &str) -> Result<(), FieldError> {
    if title.trim().is_empty() || chars(title) > 200 {
        return Err(FieldError::new("title", "must be 1 to 200 characters, not blank"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_are_one_to_two_hundred_characters() {
        assert!(ConversationName::parse("name", "").is_err());
        assert!(ConversationName::parse("name", "   ").is_err());
        assert!(ConversationName::parse("name", &"é".repeat(200)).is_ok());
        assert!(ConversationName::parse("name", &"a".repeat(201)).is_err());
    }

    #[test]
    fn emoji_rules() {
        assert!(Emoji::parse("👍").is_ok());
        assert!(Emoji::parse("👨‍👩‍👧").is_ok());
        assert!(Emoji::parse("").is_err());
        assert!(Emoji::parse("a b").is_err());
        assert!(Emoji::parse("a\u{0}").is_err());
        assert!(Emoji::parse(&"x".repeat(51)).is_err());
        assert!(Emoji::parse(&"x".repeat(50)).is_ok());
    }

    #[test]
    fn text_needs_non_blank_content() {
        assert!(MessageBody::parse(None, Some("hi".into()), None, None).is_ok());
        let errors = MessageBody::parse(None, Some("  ".into()), None, None).unwrap_err();
        assert_eq!(errors[0].field, "content");
        assert!(MessageBody::parse(Some(MessageType::Text), None, None, None).is_err());
    }

    #[test]
    fn content_is_at_most_ten_thousand_characters() {
        assert!(MessageBody::parse(None, Some("a".repeat(10_000)), None, None).is_ok());
        assert!(MessageBody::parse(None, Some("a".repeat(10_001)), None, None).is_err());
    }

    #[test]
    fn media_needs_an_http_url() {
        let image = Some(MessageType::Image);
        assert!(MessageBody::parse(image, None, Some("https://x.test/a.png".into()), None).is_ok());
        assert!(MessageBody::parse(image, None, None, None).is_err());
        assert!(MessageBody::parse(image, None, Some("ftp://x.test/a".into()), None).is_err());
        assert!(MessageBody::parse(image, None, Some("javascript:alert(1)".into()), None).is_err());
        let long = format!("https://x.test/{}", "a".repeat(500));
        assert!(MessageBody::parse(Some(MessageType::File), None, Some(long), None).is_err());
    }

    #[test]
    fn media_metadata_is_a_small_object() {
        let url = Some("https://x.test/a".to_owned());
        let image = Some(MessageType::Image);
        assert!(MessageBody::parse(image, None, url.clone(), Some(json!({"w": 1}))).is_ok());
        assert!(MessageBody::parse(image, None, url.clone(), Some(json!([1]))).is_err());
        let big = json!({ "k": "a".repeat(17 * 1024) });
        assert!(MessageBody::parse(image, None, url, Some(big)).is_err());
    }

    #[test]
    fn clients_cannot_send_system_messages() {
        let errors = MessageBody::parse(Some(MessageType::System), Some("x".into()), None, None).unwrap_err();
        assert_eq!(errors[0].field, "message_type");
    }

    #[test]
    fn profiles_and_titles() {
        assert!(UserProfile::parse("Ada".into(), "Lovelace".into(), Some("ada@x.test".into())).is_ok());
        assert!(UserProfile::parse("".into(), "L".into(), None).is_err());
        assert!(UserProfile::parse("A".into(), "L".into(), Some("nope".into())).is_err());
        assert!(check_posting_title("Flat in Berlin").is_ok());
        assert!(check_posting_title(" ").is_err());
    }
}
