//! Per-user rate limit on commands: a token bucket per user (GCRA, from
//! `governor`), so one client flooding commands cannot slow everyone else.
//! Queries and the realtime endpoints are not counted.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::RequestPartsExt;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tokio_util::sync::CancellationToken;

use super::{ApiError, AppState, Caller, SCOPE_ADMIN};
use crate::config::Limits;
use crate::domain::UserId;

/// How often buckets that are full again are forgotten (memory stays bounded
/// by the users active in the last moments, not by every user ever seen).
const FORGET_IDLE_EVERY: Duration = Duration::from_secs(30);

/// The command buckets of every user of this process.
#[derive(Clone)]
pub struct CommandRateLimiter {
    buckets: Arc<DefaultKeyedRateLimiter<UserId>>,
    clock: DefaultClock,
}

impl CommandRateLimiter {
    /// Buckets refilled at `limits.commands_per_second`, holding `limits.command_burst`.
    pub fn new(limits: &Limits) -> Self {
        let rate = limits.commands_per_second.max(1);
        let burst = NonZeroU32::new(limits.command_burst.max(1)).unwrap_or(NonZeroU32::MIN);
        let period = Duration::from_nanos((1_000_000_000 / u64::from(rate)).max(1));
        let quota = Quota::with_period(period).unwrap_or_else(|| Quota::per_second(burst)).allow_burst(burst);
        Self { buckets: Arc::new(RateLimiter::keyed(quota)), clock: DefaultClock::default() }
    }

    /// Takes one token from `user`'s bucket, or says how long until one is there.
    pub fn check(&self, user: UserId) -> Result<(), Duration> {
        self.buckets.check_key(&user).map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }

    /// Forgets full buckets now and then, until `stop`.
    pub async fn forget_idle_users(self, stop: CancellationToken) {
        let mut every = tokio::time::interval(FORGET_IDLE_EVERY);
        loop {
            tokio::select! {
                _ = every.tick() => {
                    self.buckets.retain_recent();
                    self.buckets.shrink_to_fit();
                }
                _ = stop.cancelled() => return,
            }
        }
    }
}

/// Middleware: commands (any method but GET, HEAD and OPTIONS) by an
/// authenticated user spend a token; without one they answer 429
/// `rate_limited` with `Retry-After`. Unauthenticated requests pass through
/// to be refused with 401 by the handler. Tokens with the `chat:admin` scope
/// belong to the trusted backend that feeds the directory (it registers
/// users in bulk) and are not limited.
pub async fn limit_commands(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return next.run(request).await;
    }
    let (mut parts, body) = request.into_parts();
    if let Ok(caller) = parts.extract_with_state::<Caller, AppState>(&state).await {
        if caller.scopes.iter().any(|scope| scope == SCOPE_ADMIN) {
            return next.run(Request::from_parts(parts, body)).await;
        }
        if let Err(wait) = state.rate_limiter.check(caller.user_id) {
            metrics::counter!("chat_rate_limited_total").increment(1);
            tracing::debug!(user = caller.user_id.get(), ?wait, "command rate limited");
            return ApiError::RateLimited { retry_after: wait }.into_response();
        }
    }
    next.run(Request::from_parts(parts, body)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(per_second: u32, burst: u32) -> Limits {
        Limits { commands_per_second: per_second, command_burst: burst, ..Limits::DEFAULT }
    }

    #[test]
    fn a_burst_passes_then_the_next_command_waits_about_one_period() {
        let limiter = CommandRateLimiter::new(&limits(2, 3));
        let user = UserId::new(7).expect("user id");
        for _ in 0..3 {
            assert!(limiter.check(user).is_ok());
        }
        let wait = limiter.check(user).expect_err("the bucket is empty");
        assert!(wait > Duration::from_millis(300) && wait <= Duration::from_millis(500), "{wait:?}");
    }

    #[test]
    fn users_have_their_own_buckets() {
        let limiter = CommandRateLimiter::new(&limits(1, 1));
        let (a, b) = (UserId::new(1).expect("user id"), UserId::new(2).expect("user id"));
        assert!(limiter.check(a).is_ok());
        assert!(limiter.check(a).is_err());
        assert!(limiter.check(b).is_ok());
    }
}
