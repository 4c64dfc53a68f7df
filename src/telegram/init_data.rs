//! The Mini App `initData` check (<https://core.telegram.org/bots/webapps#validating-data-received-via-the-mini-app>):
//! `initData` is a URL-encoded query string; every received field but `hash`, decoded, sorted by
//! key and joined as `key=value` lines, is signed with HMAC-SHA-256 under the key
//! `HMAC-SHA-256(key = "WebAppData", message = bot token)`. Every field takes part, including
//! fields this version does not know (`signature`, added in Bot API 8.0, and whatever comes next),
//! so none can be added or altered. The comparison is constant-time (`Mac::verify_slice`).
//!
//! Unlike the Login Widget (`http::auth::widget`), the key is derived with "WebAppData", not the
//! token's SHA-256: a widget signature never passes here, nor the other way round.

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

/// How old `initData` may be, in seconds. A Mini App page is opened to act at once; an hour covers
/// a user who leaves the page open for a while, and a captured `initData` is worthless after it.
pub const MAX_AGE_S: i64 = 3_600;
/// Clock skew tolerated for an `auth_date` in the future, in seconds.
const FUTURE_SKEW_S: i64 = 60;

/// Who opened the Mini App, as Telegram signed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebAppUser {
    pub id: i64,
    pub name: String,
    /// `auth_date`: when Telegram signed it (Unix seconds).
    pub auth_date: i64,
}

/// Why `initData` was refused; each message says what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InitDataError {
    #[error("initData names the field `{0}` twice")]
    Repeated(String),
    #[error("initData has no `{0}` field")]
    Missing(&'static str),
    #[error("initData's `{0}` field cannot be read")]
    Malformed(&'static str),
    #[error(
        "initData's signature does not match: it was not signed by Telegram for this bot, or it was altered"
    )]
    BadSignature,
    #[error(
        "initData is {0} s old; open the page from Telegram again (at most {MAX_AGE_S} s are accepted)"
    )]
    Stale(i64),
    #[error("initData is dated in the future; check the server's clock")]
    Future,
}

/// Checks `init_data` (the raw string the Mini App read from `Telegram.WebApp.initData`) against
/// the bot's `token`; `now_s` is the current Unix time in seconds.
pub fn verify(init_data: &str, token: &str, now_s: i64) -> Result<WebAppUser, InitDataError> {
    // Form decoding is lenient (a stray `%` stays as it is), so anything reads as fields; what is
    // not Telegram's fails the signature.
    let fields: Vec<(String, String)> = serde_urlencoded::from_str(init_data).unwrap_or_default();
    let mut keys: Vec<&str> = fields.iter().map(|(k, _)| k.as_str()).collect();
    keys.sort_unstable();
    if let Some(pair) = keys.windows(2).find(|pair| pair[0] == pair[1]) {
        return Err(InitDataError::Repeated(pair[0].to_string()));
    }
    let field = |name: &str| fields.iter().find(|(k, _)| k == name).map(|(_, v)| v);
    let hash = field("hash").ok_or(InitDataError::Missing("hash"))?;
    let signature = hex::decode(hash).map_err(|_| InitDataError::BadSignature)?;
    let mut mac = keyed(token);
    mac.update(check_string(&fields).as_bytes());
    mac.verify_slice(&signature)
        .map_err(|_| InitDataError::BadSignature)?;

    let auth_date = field("auth_date")
        .ok_or(InitDataError::Missing("auth_date"))?
        .parse::<i64>()
        .map_err(|_| InitDataError::Malformed("auth_date"))?;
    if auth_date > now_s + FUTURE_SKEW_S {
        return Err(InitDataError::Future);
    }
    if now_s - auth_date > MAX_AGE_S {
        return Err(InitDataError::Stale(now_s - auth_date));
    }
    let user: Value = serde_json::from_str(field("user").ok_or(InitDataError::Missing("user"))?)
        .map_err(|_| InitDataError::Malformed("user"))?;
    let id = user["id"]
        .as_i64()
        .ok_or(InitDataError::Malformed("user"))?;
    let name = [&user["first_name"], &user["last_name"]]
        .into_iter()
        .filter_map(Value::as_str)
        .collect::<Vec<_>>()
        .join(" ");
    Ok(WebAppUser {
        id,
        name,
        auth_date,
    })
}

/// Every field but `hash`, sorted by key, as `key=value` lines.
fn check_string(fields: &[(String, String)]) -> String {
    let mut lines: Vec<String> = fields
        .iter()
        .filter(|(key, _)| key != "hash")
        .map(|(key, value)| format!("{key}={value}"))
        .collect();
    lines.sort();
    lines.join("\n")
}

/// The MAC keyed with `HMAC-SHA-256("WebAppData", token)`.
fn keyed(token: &str) -> Hmac<Sha256> {
    let mut derive =
        Hmac::<Sha256>::new_from_slice(b"WebAppData").expect("HMAC takes keys of any length");
    derive.update(token.as_bytes());
    let secret = derive.finalize().into_bytes();
    Hmac::<Sha256>::new_from_slice(&secret).expect("HMAC takes keys of any length")
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "123456:ABC-DEF1234ghIkl-zyx57W2v1u123ew11";
    const NOW: i64 = 1_780_000_000;

    /// Signs `fields` as Telegram does and returns the query string a Mini App reads.
    fn signed(fields: &[(&str, &str)], token: &str) -> String {
        let owned: Vec<(String, String)> = fields
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut mac = keyed(token);
        mac.update(check_string(&owned).as_bytes());
        let hash = hex::encode(mac.finalize().into_bytes());
        let mut all = owned;
        all.push(("hash".into(), hash));
        serde_urlencoded::to_string(&all).unwrap()
    }

    fn fields(auth_date: &str) -> Vec<(&'static str, String)> {
        vec![
            ("query_id", "AAHdF6IQAAAAAN0XohDhrOrc".into()),
            (
                "user",
                r#"{"id":279058397,"first_name":"Vladislav","last_name":"K","language_code":"en"}"#
                    .into(),
            ),
            ("auth_date", auth_date.into()),
        ]
    }

    fn as_refs<'a>(fields: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
        fields.iter().map(|(k, v)| (*k, v.as_str())).collect()
    }

    #[test]
    fn valid_init_data_names_the_user() {
        let data = signed(&as_refs(&fields(&NOW.to_string())), TOKEN);
        let user = verify(&data, TOKEN, NOW + 5).unwrap();
        assert_eq!(user.id, 279_058_397);
        assert_eq!(user.name, "Vladislav K");
        assert_eq!(user.auth_date, NOW);
    }

    #[test]
    fn a_tampered_field_is_refused() {
        let data = signed(&as_refs(&fields(&NOW.to_string())), TOKEN);
        let tampered = data.replace("279058397", "279058398");
        assert_ne!(tampered, data);
        assert_eq!(
            verify(&tampered, TOKEN, NOW),
            Err(InitDataError::BadSignature)
        );
        let unsigned: String = data.split("&hash=").next().unwrap().into();
        assert_eq!(
            verify(&unsigned, TOKEN, NOW),
            Err(InitDataError::Missing("hash"))
        );
    }

    #[test]
    fn another_bots_init_data_is_refused() {
        let data = signed(&as_refs(&fields(&NOW.to_string())), "654321:another-bot");
        assert_eq!(verify(&data, TOKEN, NOW), Err(InitDataError::BadSignature));
    }

    #[test]
    fn stale_and_future_init_data_are_refused() {
        let old = NOW - MAX_AGE_S - 1;
        let data = signed(&as_refs(&fields(&old.to_string())), TOKEN);
        assert_eq!(
            verify(&data, TOKEN, NOW),
            Err(InitDataError::Stale(MAX_AGE_S + 1))
        );
        let ahead = signed(&as_refs(&fields(&(NOW + 3_600).to_string())), TOKEN);
        assert_eq!(verify(&ahead, TOKEN, NOW), Err(InitDataError::Future));
    }

    #[test]
    fn an_unknown_field_takes_part_in_the_check() {
        let mut with_extra = fields(&NOW.to_string());
        with_extra.push(("signature", "a-field-this-version-never-heard-of".into()));
        let data = signed(&as_refs(&with_extra), TOKEN);
        assert!(verify(&data, TOKEN, NOW).is_ok());
        // Dropped, or changed, the signature no longer matches: it was part of what was signed.
        let dropped = data.replace("&signature=a-field-this-version-never-heard-of", "");
        assert_ne!(dropped, data);
        assert_eq!(
            verify(&dropped, TOKEN, NOW),
            Err(InitDataError::BadSignature)
        );
        let changed = data.replace("never-heard", "always-heard");
        assert_eq!(
            verify(&changed, TOKEN, NOW),
            Err(InitDataError::BadSignature)
        );
    }

    #[test]
    fn a_login_widget_signature_and_repeated_fields_are_refused() {
        let mut widget = serde_json::Map::new();
        for (k, v) in fields(&NOW.to_string()) {
            widget.insert(k.into(), Value::String(v));
        }
        let hash = crate::http::auth::widget::sign(&widget, TOKEN);
        let mut pairs: Vec<(String, String)> = fields(&NOW.to_string())
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        pairs.push(("hash".into(), hash));
        let data = serde_urlencoded::to_string(&pairs).unwrap();
        assert_eq!(verify(&data, TOKEN, NOW), Err(InitDataError::BadSignature));
        let good = signed(&as_refs(&fields(&NOW.to_string())), TOKEN);
        let twice = format!("{good}&auth_date={NOW}");
        assert_eq!(
            verify(&twice, TOKEN, NOW),
            Err(InitDataError::Repeated("auth_date".into()))
        );
        assert_eq!(
            verify("not init data", TOKEN, NOW),
            Err(InitDataError::Missing("hash"))
        );
    }
}
