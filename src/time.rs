//! Time as the API shows it: UTC, millisecond precision, RFC 3339 with `Z`.

use chrono::{DateTime, SecondsFormat, SubsecRound, Utc};

/// Now, truncated to milliseconds (the precision of every stored timestamp).
pub fn now_millis() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(3)
}

/// `2026-11-24T13:45:10.123Z`.
pub fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}
