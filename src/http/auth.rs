//! Bearer JWT authentication (HS256). `sub` is the user id (an integer, or a
//! string of one); `scope` is a space-separated list.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use super::{ApiError, AppState};
use crate::domain::UserId;

/// Scope that allows writing the user and posting directory.
pub const SCOPE_ADMIN: &str = "chat:admin";
/// Scope that allows reading the event log.
pub const SCOPE_EVENTS: &str = "events:read";

/// Signs and checks tokens with the configured secret.
#[derive(Clone)]
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: serde_json::Value,
    exp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    iat: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    scope: Option<String>,
}

impl JwtKeys {
    pub fn new(secret: &str) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 5;
        // `sub` may be a number, which the library would count as missing: it is checked below.
        validation.set_required_spec_claims(&["exp"]);
        validation.validate_nbf = true;
        Self { encoding: EncodingKey::from_secret(secret.as_bytes()), decoding: DecodingKey::from_secret(secret.as_bytes()), validation }
    }

    /// A token for `user` valid for `ttl_seconds`, with the given scopes.
    pub fn issue(&self, user: UserId, scope: Option<&str>, ttl_seconds: i64) -> Result<String, jsonwebtoken::errors::Error> {
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            sub: serde_json::Value::from(user.get()),
            exp: now + ttl_seconds,
            iat: Some(now),
            scope: scope.filter(|s| !s.is_empty()).map(str::to_owned),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
    }

    /// The caller a token names, if it is valid.
    pub fn verify(&self, token: &str) -> Option<Caller> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation).ok()?;
        let user_id = match &data.claims.sub {
            serde_json::Value::Number(n) => n.as_i64().and_then(UserId::new),
            serde_json::Value::String(s) => s.parse().ok(),
            _ => None,
        }?;
        let scopes = data.claims.scope.unwrap_or_default().split_whitespace().map(str::to_owned).collect();
        Some(Caller { user_id, scopes })
    }
}

/// The authenticated user of a request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user_id: UserId,
    pub scopes: Vec<String>,
}

impl Caller {
    /// 403 unless the token carries `scope`.
    pub fn require_scope(&self, scope: &str) -> Result<(), ApiError> {
        if self.scopes.iter().any(|s| s == scope) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!("this needs the scope {scope}")))
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let token = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .ok_or(ApiError::Unauthorized)?;
        state.jwt.verify(token.trim()).ok_or(ApiError::Unauthorized)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_tokens_verify_with_scopes() {
        let keys = JwtKeys::new("s3cret");
        let token = keys.issue(UserId::new(5).unwrap(), Some("chat:admin events:read"), 60).unwrap();
        let caller = keys.verify(&token).unwrap();
        assert_eq!(caller.user_id.get(), 5);
        assert!(caller.require_scope(SCOPE_ADMIN).is_ok());
        assert!(caller.require_scope("other").is_err());
    }

    #[test]
    fn wrong_secret_and_expired_tokens_fail() {
        let keys = JwtKeys::new("s3cret");
        let token = keys.issue(UserId::new(5).unwrap(), None, 60).unwrap();
        assert!(JwtKeys::new("other").verify(&token).is_none());
        let expired = keys.issue(UserId::new(5).unwrap(), None, -120).unwrap();
        assert!(keys.verify(&expired).is_none());
    }

    /// A token signed with `k` under `algorithm` (or unsigned, for `None`).
    fn token_with(algorithm: Option<Algorithm>, claims: serde_json::Value) -> String {
        match algorithm {
            Some(algorithm) => jsonwebtoken::encode(&Header::new(algorithm), &claims, &EncodingKey::from_secret(b"k")).unwrap(),
            None => {
                // `{"alg":"none","typ":"JWT"}`, base64url, then the same claims and no signature.
                let signed = token_with(Some(Algorithm::HS256), claims);
                let payload = signed.split('.').nth(1).unwrap_or_default();
                format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{payload}.")
            }
        }
    }

    #[test]
    fn other_algorithms_unsigned_not_yet_valid_and_exp_less_tokens_fail() {
        let keys = JwtKeys::new("k");
        let now = chrono::Utc::now().timestamp();
        let valid = serde_json::json!({"sub": 7, "exp": now + 60});
        assert!(keys.verify(&token_with(Some(Algorithm::HS256), valid.clone())).is_some(), "the control passes");
        assert!(keys.verify(&token_with(Some(Algorithm::HS384), valid.clone())).is_none(), "HS384");
        assert!(keys.verify(&token_with(Some(Algorithm::HS512), valid.clone())).is_none(), "HS512");
        assert!(keys.verify(&token_with(None, valid)).is_none(), "alg none");
        let not_yet = serde_json::json!({"sub": 7, "exp": now + 600, "nbf": now + 300});
        assert!(keys.verify(&token_with(Some(Algorithm::HS256), not_yet)).is_none(), "nbf in the future");
        let no_exp = serde_json::json!({"sub": 7});
        assert!(keys.verify(&token_with(Some(Algorithm::HS256), no_exp)).is_none(), "no exp");
        let just_expired = serde_json::json!({"sub": 7, "exp": now - 30});
        assert!(keys.verify(&token_with(Some(Algorithm::HS256), just_expired)).is_none(), "leeway is small");
    }

    #[test]
    fn string_subjects_are_accepted() {
        let keys = JwtKeys::new("k");
        let claims = serde_json::json!({"sub": "42", "exp": chrono::Utc::now().timestamp() + 60});
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(b"k")).unwrap();
        assert_eq!(keys.verify(&token).map(|c| c.user_id.get()), Some(42));
        let claims = serde_json::json!({"sub": "0", "exp": chrono::Utc::now().timestamp() + 60});
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(b"k")).unwrap();
        assert!(keys.verify(&token).is_none());
    }
}
