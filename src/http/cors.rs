//! Cross-origin access, closed by default: with no origins configured no
//! CORS header is ever sent, so a page on another origin cannot read the
//! API's answers. `CHAT_CORS_ORIGINS` lists the web apps that may call it.

use axum::http::{header, HeaderName, HeaderValue, Method};
use axum::Router;
use tower_http::cors::{AllowOrigin, CorsLayer};

/// Why the configured origins cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("CHAT_CORS_ORIGINS: {0:?} is not an origin like https://app.example (no path, no wildcard)")]
pub struct InvalidOrigin(pub String);

/// `router` answering CORS requests from `origins` only (exact matches);
/// unchanged when `origins` is empty.
pub fn with_cors(router: Router, origins: &[String]) -> Result<Router, InvalidOrigin> {
    if origins.is_empty() {
        return Ok(router);
    }
    let allowed = origins.iter().map(|origin| parse_origin(origin)).collect::<Result<Vec<_>, _>>()?;
    let layer = CorsLayer::new()
        .allow_origin(AllowOrigin::list(allowed))
        .allow_methods([Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE, HeaderName::from_static("idempotency-key")])
        .expose_headers([header::RETRY_AFTER, HeaderName::from_static("idempotent-replayed"), HeaderName::from_static("x-request-id")])
        .max_age(std::time::Duration::from_secs(600));
    Ok(router.layer(layer))
}

fn parse_origin(origin: &str) -> Result<HeaderValue, InvalidOrigin> {
    let invalid = || InvalidOrigin(origin.to_owned());
    let url = url::Url::parse(origin).map_err(|_| invalid())?;
    let is_bare_origin = matches!(url.scheme(), "http" | "https") && url.path() == "/" && url.query().is_none() && !origin.ends_with('/');
    if !is_bare_origin || origin.contains('*') {
        return Err(invalid());
    }
    HeaderValue::from_str(origin).map_err(|_| invalid())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_bare_origins_are_accepted() {
        assert!(parse_origin("https://app.example").is_ok());
        assert!(parse_origin("http://localhost:3000").is_ok());
        for bad in ["*", "https://*.example", "https://app.example/", "https://app.example/path", "app.example", "ftp://app.example"] {
            assert!(parse_origin(bad).is_err(), "{bad}");
        }
    }
}
