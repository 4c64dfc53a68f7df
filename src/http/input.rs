//! Reading requests without letting a client mistake become a 500: bodies are size-limited and
//! parsed so the error names the problem; path ids and paging parameters likewise.

use serde::de::DeserializeOwned;

use super::problem::ApiError;

/// Largest request body accepted, in bytes. Nothing the API takes comes close.
pub const BODY_LIMIT: u64 = 64 * 1024;

pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|error| {
        let code = if error.is_data() {
            "invalid_body"
        } else {
            "malformed_json"
        };
        ApiError::bad_request(code, format!("the JSON body is not acceptable: {error}"))
    })
}

/// A numeric id from the path.
pub fn parse_id(what: &str, raw: &str) -> Result<i64, ApiError> {
    raw.parse::<i64>().ok().filter(|id| *id > 0).ok_or_else(|| {
        ApiError::bad_request(
            "invalid_id",
            format!("`{raw}` is not a {what} id (a positive integer)"),
        )
    })
}

/// A page size within `1..=max`, `default` when absent.
pub fn limit(value: Option<i64>, default: i64, max: i64) -> Result<i64, ApiError> {
    match value {
        None => Ok(default),
        Some(n) if (1..=max).contains(&n) => Ok(n),
        Some(n) => Err(ApiError::invalid(
            "limit",
            format!("limit must be between 1 and {max}, not {n}"),
        )),
    }
}

/// A non-negative offset.
pub fn offset(value: Option<i64>) -> Result<i64, ApiError> {
    match value {
        None => Ok(0),
        Some(n) if n >= 0 => Ok(n),
        Some(n) => Err(ApiError::invalid(
            "offset",
            format!("offset must not be negative, not {n}"),
        )),
    }
}

/// For optional fields that may be set to null: absent → `None`, null → `Some(None)`.
pub fn double_option<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    <Option<T> as serde::Deserialize>::deserialize(deserializer).map(Some)
}
