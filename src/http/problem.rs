//! The one mapping from every failure to an RFC 9457 problem document.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::app::CommandError;
use crate::domain::{DomainError, FieldError};

/// An error answer of the HTTP API.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("missing, invalid or expired token")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("a request with this Idempotency-Key is still in progress")]
    IdempotencyInProgress,
    #[error("the request body is larger than 64 KiB")]
    PayloadTooLarge,
    #[error("the request body was not sent in time")]
    RequestTimeout,
    #[error("the request body must be application/json")]
    UnsupportedMediaType,
    #[error("the request does not satisfy the API's rules")]
    Validation(Vec<FieldError>),
    #[error("this method is not allowed on this route")]
    MethodNotAllowed,
    #[error("the read models have not yet applied position {0}; retry shortly")]
    ProjectionLagging(u64),
    #[error("{0}")]
    Unavailable(String),
    #[error("too many commands; retry after the time in Retry-After")]
    RateLimited { retry_after: std::time::Duration },
    #[error("this user already holds {0} realtime connections, the most allowed")]
    TooManyConnections(usize),
    #[error("internal error")]
    Internal(String),
    /// A refusal made below the handlers (by axum or a layer) in plain text,
    /// turned into a problem document by `problem_documents_only`.
    #[error("{detail}")]
    Refused { status: StatusCode, detail: String },
}

impl ApiError {
    /// One invalid field.
    pub fn invalid(field: &str, message: &str) -> Self {
        ApiError::Validation(vec![FieldError::new(field, message)])
    }

    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            ApiError::IdempotencyInProgress => (StatusCode::CONFLICT, "idempotency_in_progress"),
            ApiError::PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            ApiError::RequestTimeout => (StatusCode::REQUEST_TIMEOUT, "request_timeout"),
            ApiError::UnsupportedMediaType => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
            ApiError::Validation(_) => (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
            ApiError::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            ApiError::ProjectionLagging(_) => (StatusCode::SERVICE_UNAVAILABLE, "projection_lagging"),
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            ApiError::RateLimited { .. } | ApiError::TooManyConnections(_) => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
            ApiError::Refused { status, .. } => (*status, code_for(*status)),
        }
    }
}

/// The stable code of a status refused outside the handlers.
fn code_for(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::REQUEST_TIMEOUT => "request_timeout",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::UPGRADE_REQUIRED => "upgrade_required",
        StatusCode::TOO_MANY_REQUESTS => "rate_limited",
        StatusCode::SERVICE_UNAVAILABLE => "unavailable",
        status if status.is_server_error() => "internal",
        _ => "bad_request",
    }
}

/// Middleware: every error answer is a problem document. Handlers answer
/// with `ApiError` already; this catches the plain-text refusals of axum's
/// extractors (a WebSocket request without its upgrade headers, say),
/// keeping their status and headers.
pub async fn problem_documents_only(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    // Documents of their own (problems, `/readyz`'s JSON report) pass as they are.
    let is_json = response.headers().get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"application/"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 4096).await.map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
    let detail = if status.is_server_error() || text.is_empty() { status.canonical_reason().unwrap_or("error").to_owned() } else { text };
    let problem = ApiError::Refused { status, detail }.into_response();
    let (problem_parts, problem_body) = problem.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    for (name, value) in &problem_parts.headers {
        parts.headers.insert(name, value.clone());
    }
    Response::from_parts(parts, problem_body)
}

/// The problem document body.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// A URI naming the problem type.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// Stable machine-readable code (`validation_failed`, `not_found`, ...).
    pub code: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<ProblemField>>,
}

/// One field that broke a rule.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ProblemField {
    pub field: String,
    pub message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        match &self {
            ApiError::Internal(detail) => tracing::error!(%detail, "internal error"),
            ApiError::Unavailable(detail) => tracing::warn!(%detail, "dependency unavailable"),
            _ => {}
        }
        let detail = match &self {
            // Never leak internals to the client.
            ApiError::Internal(_) => "the server failed to handle the request".to_owned(),
            ApiError::Unavailable(_) => "a dependency is unavailable; retry shortly".to_owned(),
            lagging @ ApiError::ProjectionLagging(_) => lagging.to_string(),
            other => other.to_string(),
        };
        let retry_after_secs = match &self {
            ApiError::RateLimited { retry_after } => retry_after.as_secs_f64().ceil().max(1.0) as u64,
            ApiError::TooManyConnections(_) => 5,
            _ => 1,
        };
        let errors = match self {
            ApiError::Validation(errors) => Some(errors.into_iter().map(|e| ProblemField { field: e.field, message: e.message }).collect()),
            _ => None,
        };
        let problem = Problem {
            kind: format!("https://chat.example/problems/{}", code.replace('_', "-")),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail,
            code: code.to_owned(),
            errors,
        };
        let body = serde_json::to_vec(&problem).unwrap_or_default();
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if status == StatusCode::SERVICE_UNAVAILABLE || status == StatusCode::TOO_MANY_REQUESTS {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
        }
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<DomainError> for ApiError {
    fn from(error: DomainError) -> Self {
        match error {
            DomainError::NotFound(what) => ApiError::NotFound(what.to_owned()),
            DomainError::Forbidden(why) => ApiError::Forbidden(why.to_owned()),
            DomainError::Conflict(why) => ApiError::Conflict(why.to_owned()),
            DomainError::Invalid(errors) => ApiError::Validation(errors),
        }
    }
}

impl From<CommandError> for ApiError {
    fn from(error: CommandError) -> Self {
        match error {
            CommandError::Domain(e) => e.into(),
            e @ CommandError::Contended(_) => ApiError::Unavailable(e.to_string()),
            CommandError::Unavailable(detail) => ApiError::Unavailable(detail),
            CommandError::Corrupt(detail) => ApiError::Internal(detail),
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> Self {
        ApiError::Unavailable(error.to_string())
    }
}

impl From<crate::event_store::StoreError> for ApiError {
    fn from(error: crate::event_store::StoreError) -> Self {
        CommandError::from(error).into()
    }
}
