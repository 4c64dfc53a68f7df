//! The Telegram Login Widget check (<https://core.telegram.org/widgets/login#checking-authorization>):
//! the widget's fields, sorted and joined as `key=value` lines, signed with HMAC-SHA-256 under the
//! SHA-256 of the login bot's token. Every received field takes part, so none can be added or
//! altered; the comparison is constant-time (`Mac::verify_slice`).

use hmac::{Hmac, Mac};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// How old a widget answer may be. Telegram's own examples use a day.
pub const MAX_AGE_S: i64 = 86_400;
/// Clock skew tolerated for `auth_date` in the future.
const FUTURE_SKEW_S: i64 = 60;

/// Who signed in, as the widget described them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WidgetUser {
    pub id: i64,
    pub name: String,
    pub username: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WidgetError {
    #[error("the login data has no `{0}` field")]
    Missing(&'static str),
    #[error("the login data field `{0}` is not a string or number")]
    NotScalar(String),
    #[error(
        "the login data's signature does not match: it was not made by the login bot or was altered"
    )]
    BadSignature,
    #[error("the login data is {0} s old; sign in again (at most {MAX_AGE_S} s are accepted)")]
    Stale(i64),
    #[error("the login data is dated in the future; check the server's clock")]
    Future,
}

/// Checks the fields against the token; `now_s` is the current Unix time in seconds.
pub fn verify(
    fields: &Map<String, Value>,
    token: &str,
    now_s: i64,
) -> Result<WidgetUser, WidgetError> {
    let hash = fields
        .get("hash")
        .and_then(Value::as_str)
        .ok_or(WidgetError::Missing("hash"))?;
    let signature = hex::decode(hash).map_err(|_| WidgetError::BadSignature)?;
    let mut lines = Vec::with_capacity(fields.len());
    for (key, value) in fields.iter().filter(|(key, _)| key.as_str() != "hash") {
        let text = match value {
            Value::String(text) => text.clone(),
            Value::Number(number) => number.to_string(),
            _ => return Err(WidgetError::NotScalar(key.clone())),
        };
        lines.push(format!("{key}={text}"));
    }
    lines.sort();
    let secret = Sha256::digest(token.as_bytes());
    let mut mac = Hmac::<Sha256>::new_from_slice(&secret).map_err(|_| WidgetError::BadSignature)?;
    mac.update(lines.join("\n").as_bytes());
    mac.verify_slice(&signature)
        .map_err(|_| WidgetError::BadSignature)?;

    let auth_date = integer(fields, "auth_date")?;
    if auth_date > now_s + FUTURE_SKEW_S {
        return Err(WidgetError::Future);
    }
    if now_s - auth_date > MAX_AGE_S {
        return Err(WidgetError::Stale(now_s - auth_date));
    }
    let text = |key: &str| fields.get(key).and_then(Value::as_str).map(str::to_string);
    let name = [text("first_name"), text("last_name")]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
    Ok(WidgetUser {
        id: integer(fields, "id")?,
        name,
        username: text("username"),
    })
}

/// Signs `fields` the way Telegram does (tests and the demo use it to play the widget).
pub fn sign(fields: &Map<String, Value>, token: &str) -> String {
    let mut lines: Vec<String> = fields
        .iter()
        .filter(|(key, _)| key.as_str() != "hash")
        .map(|(key, value)| match value {
            Value::String(text) => format!("{key}={text}"),
            other => format!("{key}={other}"),
        })
        .collect();
    lines.sort();
    let secret = Sha256::digest(token.as_bytes());
    let mut mac = Hmac::<Sha256>::new_from_slice(&secret).expect("HMAC takes keys of any length");
    mac.update(lines.join("\n").as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

fn integer(fields: &Map<String, Value>, key: &'static str) -> Result<i64, WidgetError> {
    let value = fields.get(key).ok_or(WidgetError::Missing(key))?;
    value
        .as_i64()
        .or_else(|| value.as_str().and_then(|text| text.parse().ok()))
        .ok_or(WidgetError::Missing(key))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const TOKEN: &str = "123456:ABC-DEF1234ghIkl-zyx57W2v1u123ew11";

    fn signed(now: i64) -> Map<String, Value> {
        let mut fields =
            json!({"id": 42, "first_name": "Ada", "username": "ada", "auth_date": now})
                .as_object()
                .unwrap()
                .clone();
        let hash = sign(&fields, TOKEN);
        fields.insert("hash".into(), hash.into());
        fields
    }

    #[test]
    fn a_signed_answer_is_accepted() {
        let user = verify(&signed(1_000_000), TOKEN, 1_000_010).unwrap();
        assert_eq!(
            user,
            WidgetUser {
                id: 42,
                name: "Ada".into(),
                username: Some("ada".into())
            }
        );
    }

    #[test]
    fn the_known_telegram_construction_matches() {
        // Computed independently with Python: hmac.new(sha256(token).digest(),
        // b"auth_date=1700000000\nfirst_name=Ada\nid=42", sha256).hexdigest()
        let fields = json!({"id": 42, "first_name": "Ada", "auth_date": 1_700_000_000})
            .as_object()
            .unwrap()
            .clone();
        assert_eq!(sign(&fields, TOKEN), PYTHON_DIGEST);
    }

    const PYTHON_DIGEST: &str = include_str!("widget_vector.txt");

    #[test]
    fn tampering_staleness_and_wrong_tokens_are_refused() {
        let mut fields = signed(1_000_000);
        fields.insert("id".into(), 43.into());
        assert_eq!(
            verify(&fields, TOKEN, 1_000_010),
            Err(WidgetError::BadSignature)
        );
        let mut fields = signed(1_000_000);
        fields.insert("photo_url".into(), "https://x".into());
        assert_eq!(
            verify(&fields, TOKEN, 1_000_010),
            Err(WidgetError::BadSignature)
        );
        assert_eq!(
            verify(&signed(1_000_000), "1:other", 1_000_010),
            Err(WidgetError::BadSignature)
        );
        assert_eq!(
            verify(&signed(1_000_000), TOKEN, 1_000_000 + MAX_AGE_S + 1),
            Err(WidgetError::Stale(MAX_AGE_S + 1))
        );
        assert_eq!(
            verify(&signed(1_000_000), TOKEN, 999_000),
            Err(WidgetError::Future)
        );
        let mut fields = signed(1_000_000);
        fields.remove("hash");
        assert_eq!(
            verify(&fields, TOKEN, 1_000_010),
            Err(WidgetError::Missing("hash"))
        );
    }
}
