//! The JSON body extractor: API.md's status codes for bodies (415 for another
//! media type, 413 over 64 KiB, 400 for malformed JSON, 422 for a body that
//! parses but is not an object or has a field of the wrong type or name).

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header;
use serde::de::DeserializeOwned;

use super::ApiError;

/// Largest accepted request body.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// A JSON body decoded into `T`, with its raw bytes (for idempotency fingerprints).
pub struct JsonBody<T> {
    pub value: T,
    pub raw: Bytes,
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|mime| {
                let mime = mime.trim().to_ascii_lowercase();
                mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
            })
            .unwrap_or(false);
        if !is_json {
            return Err(ApiError::UnsupportedMediaType);
        }
        let raw = Bytes::from_request(request, state).await.map_err(|rejection| {
            if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge
            } else if timed_out(&rejection) {
                ApiError::RequestTimeout
            } else {
                ApiError::BadRequest("the request body could not be read".into())
            }
        })?;
        let value = decode(&raw)?;
        Ok(Self { value, raw })
    }
}

/// True when reading the body failed because the client was too slow
/// (the server's body deadline, `CHAT_BODY_TIMEOUT_SECS`).
fn timed_out(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(error) = cause {
        if error.is::<tower_http::timeout::TimeoutError>() {
            return true;
        }
        cause = error.source();
    }
    false
}

/// Decodes a body, classifying failures as 400 (syntax) or 422 (shape).
///
/// Syntax is checked first, on its own (a fast scan that builds nothing):
/// serde's own classification of an error as "syntax" or "data" depends on
/// how each type happens to deserialise (an enum given a number reports
/// "expected value"), so only this first pass decides 400, and every error
/// of the typed pass is a field of the wrong shape: 422 naming the field.
pub fn decode<T: DeserializeOwned>(raw: &[u8]) -> Result<T, ApiError> {
    let text = std::str::from_utf8(raw).map_err(|_| ApiError::BadRequest("the body is not valid UTF-8".into()))?;
    serde_json::from_str::<serde::de::IgnoredAny>(text).map_err(|e| ApiError::BadRequest(format!("malformed JSON: {e}")))?;
    if !text.trim_start().starts_with('{') {
        return Err(ApiError::invalid("body", "must be a JSON object"));
    }
    let mut deserializer = serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let field = if path == "." { "body".to_owned() } else { path };
        ApiError::invalid(&field, &error.into_inner().to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        name: String,
        ids: Vec<i64>,
    }

    fn code(result: Result<Body, ApiError>) -> String {
        match result {
            Ok(_) => "ok".into(),
            Err(ApiError::BadRequest(_)) => "400".into(),
            Err(ApiError::Validation(errors)) => format!("422 {}", errors[0].field),
            Err(other) => format!("{other:?}"),
        }
    }

    #[test]
    fn classifies_bodies() {
        assert_eq!(code(decode(br#"{"name":"a","ids":[1]}"#)), "ok");
        assert_eq!(code(decode(br#"{"name":"a","ids":[1]"#)), "400");
        assert_eq!(code(decode(br#"[1,2]"#)), "422 body");
        assert_eq!(code(decode(br#""x""#)), "422 body");
        assert_eq!(code(decode(br#"{"name":"a","ids":["x"]}"#)), "422 ids[0]");
        assert_eq!(code(decode(br#"{"name":"a","ids":[],"extra":1}"#)), "422 extra");
        assert_eq!(code(decode(br#"{"ids":[]}"#)), "422 body");
        assert_eq!(code(decode(b"{\"name\":\"\xff\"}")), "400");
        assert_eq!(code(decode(br#"{"name":"a","ids":[1]} trailing"#)), "400");
        assert_eq!(code(decode(br#"{"name":"a","ids":[1]}{}"#)), "400");
        assert_eq!(code(decode(br#"{"name":1,"ids":[1]}"#)), "422 name");
        assert_eq!(code(decode(br#"{"name":"a","ids":{}}"#)), "422 ids");
    }
}
