//! Why the domain refuses a command. Each variant maps to one HTTP status at
//! the edge (404, 403, 409, 422), in the precedence API.md lays down.

use serde::Serialize;

/// One field that broke a rule of the request's form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { field: field.into(), message: message.into() }
    }
}

/// A command refused by an aggregate's rules.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// The target does not exist, or the caller may not know it exists.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The caller's role does not allow the action.
    #[error("{0}")]
    Forbidden(&'static str),
    /// The current state does not allow the action.
    #[error("{0}")]
    Conflict(&'static str),
    /// The request's fields break a rule (form or references).
    #[error("validation failed")]
    Invalid(Vec<FieldError>),
}

impl DomainError {
    /// A single-field validation failure.
    pub fn invalid(field: &str, message: &str) -> Self {
        DomainError::Invalid(vec![FieldError::new(field, message)])
    }
}
