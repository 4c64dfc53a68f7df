//! Reading requests without letting a client mistake become a 500: bodies are size-limited and
//! parsed so the error names the problem; path ids and paging parameters likewise.

use serde::de::DeserializeOwned;

use super::problem::ApiError;

/// Largest request body accepted, in bytes. Nothing the API takes comes close.
pub const BODY_LIMIT: u64 = 64 * 1024;

/// The body as JSON `T`: malformed JSON is a 400, a string holding a character no backend can
/// store (NUL: PostgreSQL's text refuses it) a 422 naming the field, on every backend alike.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    // Inside JSON a NUL can only be written escaped: the scan is cheap and rarely finds anything.
    if contains_escaped_nul(body)
        && let Ok(value) = serde_json::from_slice::<serde_json::Value>(body)
        && let Some(field) = unstorable_at(&value, "")
    {
        return Err(unstorable(&field));
    }
    serde_json::from_slice(body).map_err(|error| {
        let code = if error.is_data() {
            "invalid_body"
        } else {
            "malformed_json"
        };
        ApiError::bad_request(code, format!("the JSON body is not acceptable: {error}"))
    })
}

/// The refusal of a text PostgreSQL cannot store, naming where it was (`name`, `texts.en.verified`,
/// `query.search`).
pub fn unstorable(field: &str) -> ApiError {
    ApiError::invalid(
        field,
        format!("`{field}` contains a NUL character (U+0000), which cannot be stored; remove it"),
    )
}

/// Whether `text` holds a character no backend can store.
pub fn is_unstorable(text: &str) -> bool {
    text.contains('\0')
}

fn contains_escaped_nul(body: &[u8]) -> bool {
    body.windows(6)
        .any(|w| w[0] == b'\\' && w[1] == b'u' && w[2..].iter().all(|b| *b == b'0'))
}

/// The dotted path of the first string (or key) in `value` that cannot be stored.
fn unstorable_at(value: &serde_json::Value, path: &str) -> Option<String> {
    let join = |key: &str| {
        if path.is_empty() {
            key.to_string()
        } else {
            format!("{path}.{key}")
        }
    };
    match value {
        serde_json::Value::String(text) => is_unstorable(text).then(|| path.to_string()),
        serde_json::Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| unstorable_at(item, &join(&i.to_string()))),
        serde_json::Value::Object(fields) => fields.iter().find_map(|(key, item)| {
            if is_unstorable(key) {
                return Some(join(&key.replace('\0', "\\u0000")));
            }
            unstorable_at(item, &join(key))
        }),
        _ => None,
    }
}

/// A numeric id from the path.
pub fn parse_id(what: &str, raw: &str) -> Result<i64, ApiError> {
    // Written as the API writes ids: digits only, no sign, no leading zero (`+1` and `01` would
    // otherwise name bot 1 under a second address).
    let canonical =
        !raw.is_empty() && raw.bytes().all(|b| b.is_ascii_digit()) && !raw.starts_with('0');
    canonical
        .then(|| raw.parse::<i64>().ok())
        .flatten()
        .ok_or_else(|| {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_is_read_only_in_its_canonical_form() {
        assert_eq!(parse_id("bot", "17").unwrap(), 17);
        for other in [
            "+1",
            "01",
            "0",
            "-3",
            "1 ",
            "",
            "1e3",
            "99999999999999999999",
        ] {
            assert!(parse_id("bot", other).is_err(), "{other:?}");
        }
    }

    #[test]
    fn a_nul_anywhere_in_a_body_is_refused_naming_its_field() {
        let body = br#"{"name":"ok","texts":{"en":{"verified":"fine\u0000"}}}"#;
        let error = parse_json::<serde_json::Value>(body).unwrap_err();
        assert_eq!(error.status.as_u16(), 422);
        assert_eq!(error.extra.unwrap()["field"], "texts.en.verified");
        let listed = parse_json::<serde_json::Value>(br#"{"tags":["a","\u0000"]}"#).unwrap_err();
        assert_eq!(listed.extra.unwrap()["field"], "tags.1");
        // An escaped backslash followed by u0000 is text, not a NUL.
        assert!(parse_json::<serde_json::Value>(br#"{"name":"\\u0000"}"#).is_ok());
        assert!(parse_json::<serde_json::Value>(br#"{"name":"\u0001"}"#).is_ok());
    }
}
