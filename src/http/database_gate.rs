//! Turns requests that need the database away at once while it is down (see
//! `crate::database_watch`), with 503 `unavailable` and `Retry-After`.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{ApiError, AppState};

/// Answers 503 without touching the pool while the database does not answer.
pub async fn refuse_while_database_down(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if state.database.is_down() {
        metrics::counter!("chat_http_refused_database_down_total").increment(1);
        return ApiError::Unavailable("the database does not answer".into()).into_response();
    }
    next.run(request).await
}
