//! Security headers on every response: the API answers JSON to programs, so
//! browsers are told not to sniff, frame, cache or refer from it. A handler
//! that sets one of them itself keeps its own value.

use axum::http::{HeaderName, HeaderValue};
use axum::Router;
use tower_http::set_header::SetResponseHeaderLayer;

/// The headers and their values.
pub const SECURITY_HEADERS: [(&str, &str); 5] = [
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "no-referrer"),
    ("content-security-policy", "default-src 'none'; frame-ancestors 'none'"),
    ("cache-control", "no-store"),
];

/// `router` with the security headers added to its responses.
pub fn with_security_headers(router: Router) -> Router {
    SECURITY_HEADERS.iter().fold(router, |router, (name, value)| {
        router.layer(SetResponseHeaderLayer::if_not_present(HeaderName::from_static(name), HeaderValue::from_static(value)))
    })
}
