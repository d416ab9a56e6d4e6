//! Query-string parameters, checked one by one (422 naming the parameter).

use std::collections::HashMap;

use super::ApiError;

/// The decoded query string of a request.
pub struct QueryParams(HashMap<String, String>);

impl QueryParams {
    pub fn parse(raw: Option<&str>) -> Self {
        Self(url::form_urlencoded::parse(raw.unwrap_or("").as_bytes()).into_owned().collect())
    }

    pub fn text(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// An integer in `min..=max`, or `default` when absent.
    pub fn integer(&self, name: &str, min: u64, max: u64, default: Option<u64>) -> Result<Option<u64>, ApiError> {
        match self.text(name) {
            None => Ok(default),
            Some(raw) => match raw.parse::<u64>() {
                Ok(value) if (min..=max).contains(&value) => Ok(Some(value)),
                _ => Err(ApiError::invalid(name, &format!("must be an integer from {min} to {max}"))),
            },
        }
    }

    /// `true` or `false`, or `default` when absent.
    pub fn boolean(&self, name: &str, default: bool) -> Result<bool, ApiError> {
        match self.text(name) {
            None => Ok(default),
            Some("true") => Ok(true),
            Some("false") => Ok(false),
            Some(_) => Err(ApiError::invalid(name, "must be true or false")),
        }
    }
}
