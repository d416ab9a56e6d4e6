//! The user directory: who exists, with which name. One stream per user,
//! written by administrators (`PUT /users/{id}`).

use serde::{Deserialize, Serialize};

use super::values::UserProfile;
use super::{Aggregate, DomainError, EventPayload, UserId};

/// Marker type for the user aggregate.
pub struct UserAggregate;

/// Creates or updates a user's profile.
#[derive(Debug, Clone, PartialEq)]
pub struct RegisterUser {
    pub user_id: UserId,
    pub profile: UserProfile,
}

/// What happened to a user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type", content = "data")]
pub enum UserEvent {
    UserRegistered { user_id: UserId, first_name: String, last_name: String, email: Option<String> },
    UserProfileUpdated { user_id: UserId, first_name: String, last_name: String, email: Option<String> },
}

impl EventPayload for UserEvent {
    fn event_type(&self) -> &'static str {
        match self {
            UserEvent::UserRegistered { .. } => "UserRegistered",
            UserEvent::UserProfileUpdated { .. } => "UserProfileUpdated",
        }
    }
}

/// A user's current profile; `None` until registered.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct User {
    pub profile: Option<UserProfile>,
}

impl Aggregate for UserAggregate {
    const STREAM_TYPE: &'static str = "user";
    type Command = RegisterUser;
    type Event = UserEvent;
    type State = User;

    /// First PUT registers, later ones update; an identical profile changes nothing.
    fn decide(command: &RegisterUser, state: &User) -> Result<Vec<UserEvent>, DomainError> {
        let UserProfile { first_name, last_name, email } = command.profile.clone();
        let user_id = command.user_id;
        Ok(match &state.profile {
            None => vec![UserEvent::UserRegistered { user_id, first_name, last_name, email }],
            Some(current) if *current == command.profile => vec![],
            Some(_) => vec![UserEvent::UserProfileUpdated { user_id, first_name, last_name, email }],
        })
    }

    fn evolve(_state: User, event: &UserEvent) -> User {
        let (UserEvent::UserRegistered { first_name, last_name, email, .. }
        | UserEvent::UserProfileUpdated { first_name, last_name, email, .. }) = event;
        User { profile: Some(UserProfile { first_name: first_name.clone(), last_name: last_name.clone(), email: email.clone() }) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn register(first: &str) -> RegisterUser {
        RegisterUser { user_id: UserId::new(7).unwrap(), profile: UserProfile::parse(first.into(), "Lovelace".into(), None).unwrap() }
    }

    #[test]
    fn first_put_registers_then_updates() {
        let events = UserAggregate::decide(&register("Ada"), &User::default()).unwrap();
        assert_eq!(events[0].event_type(), "UserRegistered");
        let state = events.iter().fold(User::default(), UserAggregate::evolve);
        let events = UserAggregate::decide(&register("Augusta"), &state).unwrap();
        assert_eq!(events[0].event_type(), "UserProfileUpdated");
    }

    #[test]
    fn same_profile_changes_nothing() {
        let events = UserAggregate::decide(&register("Ada"), &User::default()).unwrap();
        let state = events.iter().fold(User::default(), UserAggregate::evolve);
        assert_eq!(UserAggregate::decide(&register("Ada"), &state), Ok(vec![]));
    }
}
