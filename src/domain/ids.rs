//! Identifiers. Conversation, message, reaction and posting ids are UUIDs
//! (new ones UUIDv7, time-ordered); user ids are positive 32-bit integers.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A string that is not a hyphenated UUID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidId;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A fresh time-ordered id (UUIDv7).
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.hyphenated().fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = InvalidId;
            /// Accepts only the hyphenated 36-character form.
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                if s.len() != 36 {
                    return Err(InvalidId);
                }
                Uuid::try_parse(s).map(Self).map_err(|_| InvalidId)
            }
        }
    };
}

uuid_id!(
    /// Identifies a conversation, and its event stream.
    ConversationId
);
uuid_id!(
    /// Identifies a message across all conversations.
    MessageId
);
uuid_id!(
    /// Identifies one reaction of one user with one emoji on one message.
    ReactionId
);
uuid_id!(
    /// Identifies a posting a conversation may be about.
    PostingId
);

/// A user id: an integer from 1 to 2^31-1 (INT in the original schema).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "i64")]
pub struct UserId(i32);

impl UserId {
    /// Accepts 1..=2^31-1.
    pub fn new(value: i64) -> Option<Self> {
        (1..=i64::from(i32::MAX)).contains(&value).then_some(Self(value as i32))
    }

    pub fn get(self) -> i32 {
        self.0
    }
}

impl TryFrom<i64> for UserId {
    type Error = String;
    fn try_from(value: i64) -> Result<Self, Self::Error> {
        UserId::new(value).ok_or_else(|| format!("user id must be between 1 and {}", i32::MAX))
    }
}

impl From<UserId> for i64 {
    fn from(value: UserId) -> Self {
        i64::from(value.0)
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for UserId {
    type Err = InvalidId;
    /// Accepts plain decimal digits only (no sign, no spaces).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() || s.len() > 10 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(InvalidId);
        }
        s.parse::<i64>().ok().and_then(UserId::new).ok_or(InvalidId)
    }
}

impl schemars::JsonSchema for UserId {
    fn schema_name() -> String {
        "UserId".into()
    }

    fn json_schema(_: &mut schemars::gen::SchemaGenerator) -> schemars::schema::Schema {
        let mut schema = schemars::schema::SchemaObject {
            instance_type: Some(schemars::schema::InstanceType::Integer.into()),
            format: Some("int32".into()),
            ..Default::default()
        };
        schema.number().minimum = Some(1.0);
        schema.number().maximum = Some(f64::from(i32::MAX));
        schema.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_ids_are_positive_32_bit_integers() {
        assert!(UserId::new(0).is_none());
        assert!(UserId::new(-1).is_none());
        assert!(UserId::new(i64::from(i32::MAX) + 1).is_none());
        assert_eq!(UserId::new(42).map(UserId::get), Some(42));
        assert!("+5".parse::<UserId>().is_err());
        assert!("2147483648".parse::<UserId>().is_err());
        assert_eq!("2147483647".parse::<UserId>().map(UserId::get), Ok(i32::MAX));
    }

    #[test]
    fn uuid_ids_need_the_hyphenated_form() {
        let id = ConversationId::new();
        assert_eq!(id.to_string().parse::<ConversationId>().ok(), Some(id));
        assert!(id.0.simple().to_string().parse::<ConversationId>().is_err());
        assert!("not-a-uuid".parse::<ConversationId>().is_err());
    }

    #[test]
    fn new_ids_are_version_7() {
        assert_eq!(MessageId::new().0.get_version_num(), 7);
    }
}
