//! Who is calling: server-side sessions behind an `HttpOnly`, `SameSite=Strict` cookie, a CSRF
//! token per session for every state-changing request, and the list of people allowed in
//! (`auth.owner_telegram_id` plus the admins the owner added).
//!
//! Cookie values and login-link secrets are 256-bit random strings; the database keeps only their
//! SHA-256, so a leaked table opens nothing.

pub mod throttle;
pub mod widget;

use std::time::Duration;

use base64::Engine;
use serde::Serialize;
use sha2::{Digest, Sha256};
use warp::http::{HeaderMap, HeaderValue, Method, header};
use warp::reply::Response;

use super::HttpState;
use super::forwarded::Client;
use super::problem::ApiError;
use super::router::Access;
use crate::db::{SessionRow, now_ms};
use crate::domain::BotToken;

pub const SESSION_COOKIE: &str = "nezuko_session";
pub const CSRF_HEADER: &str = "x-csrf-token";

/// What the HTTP layer knows about authentication, from the settings.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    pub owner: Option<i64>,
    pub login_bot_token: Option<BotToken>,
    pub session_ttl: Duration,
    /// `Secure` cookies (production, or an https public URL).
    pub secure_cookies: bool,
    /// Base of the links `nezuko login-link` prints.
    pub public_url: String,
    /// Lets a scraper read `/metrics` with `Authorization: Bearer <token>`.
    pub metrics_token: Option<crate::domain::Secret<String>>,
    /// Whose `Forwarded`/`X-Forwarded-*` headers are believed (`server.trusted_proxies`).
    pub trusted_proxies: super::forwarded::TrustedProxies,
}

impl AuthConfig {
    /// Whether cookies for `client` are `Secure`: configured so, or the client reached the proxy
    /// over https (a trusted proxy's word).
    pub fn secure_cookies(&self, client: Client) -> bool {
        self.secure_cookies || client.https
    }
}

/// Whether the request carries the configured metrics bearer token.
pub fn metrics_bearer(state: &HttpState, headers: &HeaderMap) -> bool {
    let Some(token) = &state.auth.metrics_token else {
        return false;
    };
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|sent| constant_time_eq(sent.trim().as_bytes(), token.expose().as_bytes()))
}

/// A signed-in person: what sign-in and `GET /api/v1/auth/me` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Admin {
    pub telegram_user_id: i64,
    pub name: String,
    pub is_owner: bool,
    #[serde(skip)]
    pub session_hash: String,
    /// Send it back in `X-CSRF-Token` on every state-changing request.
    pub csrf_token: String,
    /// When the session ends, epoch ms.
    pub expires_at: i64,
}

/// A fresh random secret, URL-safe.
pub fn random_secret() -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

/// What the database stores instead of a secret.
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Resolves the caller of a protected route, or the 401/403 that explains why not.
pub async fn authorize(
    state: &HttpState,
    method: &Method,
    headers: &HeaderMap,
    access: Access,
) -> Result<Admin, ApiError> {
    let secret = cookie(headers, SESSION_COOKIE).ok_or_else(|| {
        ApiError::unauthorized("sign in first: this request carries no session cookie")
    })?;
    let session = state
        .store
        .live_session(&hash_secret(&secret))
        .await?
        .ok_or_else(|| {
            ApiError::unauthorized("the session has expired or was signed out; sign in again")
        })?;
    let Some((name, is_owner)) = allowed(state, session.telegram_user_id).await? else {
        return Err(ApiError::forbidden(
            "not_admin",
            format!(
                "Telegram user {} is not allowed into this dashboard",
                session.telegram_user_id
            ),
        ));
    };
    if access == Access::Owner && !is_owner {
        return Err(ApiError::forbidden(
            "owner_only",
            "only the owner may do this",
        ));
    }
    let safe = matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
    if !safe {
        let sent = headers
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !constant_time_eq(sent.as_bytes(), session.csrf_token.as_bytes()) {
            return Err(ApiError::forbidden(
                "csrf",
                "state-changing requests need the session's CSRF token in the X-CSRF-Token header",
            ));
        }
    }
    Ok(Admin {
        telegram_user_id: session.telegram_user_id,
        name,
        is_owner,
        session_hash: session.id_hash,
        csrf_token: session.csrf_token,
        expires_at: session.expires_at,
    })
}

/// `(display name, is owner)` when `user` may sign in.
pub async fn allowed(state: &HttpState, user: i64) -> Result<Option<(String, bool)>, ApiError> {
    if state.auth.owner == Some(user) {
        return Ok(Some(("owner".to_string(), true)));
    }
    Ok(state
        .store
        .admin(user)
        .await?
        .map(|admin| (admin.display_name, false)))
}

/// Opens a session for `user` (already checked) and answers with its cookie and CSRF token.
pub async fn start_session(
    state: &HttpState,
    user: i64,
    user_agent: Option<&str>,
    client: Client,
) -> Result<Response, ApiError> {
    let ip = client.ip.map(|ip| ip.to_string());
    let Some((name, is_owner)) = allowed(state, user).await? else {
        return Err(ApiError::forbidden(
            "not_admin",
            format!(
                "Telegram user {user} is not allowed into this dashboard; the owner can add them"
            ),
        ));
    };
    let secret = random_secret();
    let now = now_ms();
    let row = SessionRow {
        id_hash: hash_secret(&secret),
        telegram_user_id: user,
        csrf_token: random_secret(),
        user_agent: user_agent.map(|agent| agent.chars().take(256).collect()),
        ip,
        created_at: now,
        last_seen_at: now,
        expires_at: now + state.auth.session_ttl.as_millis() as i64,
    };
    state.store.create_session(&row).await?;
    let body = Admin {
        telegram_user_id: user,
        name,
        is_owner,
        session_hash: row.id_hash.clone(),
        csrf_token: row.csrf_token.clone(),
        expires_at: row.expires_at,
    };
    let mut response = warp::Reply::into_response(warp::reply::json(&body));
    set_cookie(
        &mut response,
        &session_cookie(
            &secret,
            state.auth.session_ttl.as_secs(),
            state.auth.secure_cookies(client),
        ),
    );
    Ok(response)
}

/// The `Set-Cookie` value for a session (`max_age` 0 clears it).
pub fn session_cookie(secret: &str, max_age: u64, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!(
        "{SESSION_COOKIE}={secret}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
    )
}

pub fn set_cookie(response: &mut Response, cookie: &str) {
    if let Ok(value) = HeaderValue::from_str(cookie) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
}

/// One cookie's value from the `Cookie` headers.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|line| line.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.to_string())
        .filter(|value| !value.is_empty())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Creates a one-time login link for `user` (a Telegram user id), valid `minutes`; returns the URL
/// to open (`<public_url>/login#token=…`: a fragment, so the secret never reaches a server log).
/// Used by the CLI (`nezuko login-link`) and the demo. Errors: the store's.
pub async fn create_login_link(
    store: &crate::db::Store,
    public_url: &str,
    user: i64,
    minutes: u64,
) -> Result<String, crate::db::StoreError> {
    let secret = random_secret();
    let expires_at = now_ms() + (minutes as i64) * 60_000;
    store
        .create_login_link(&hash_secret(&secret), user, expires_at)
        .await?;
    Ok(format!(
        "{}/login#token={secret}",
        public_url.trim_end_matches('/')
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; nezuko_session=abc; b=2"),
        );
        assert_eq!(cookie(&headers, SESSION_COOKIE).as_deref(), Some("abc"));
        assert_eq!(cookie(&headers, "c"), None);
    }

    #[test]
    fn session_cookies_are_http_only_and_strict() {
        let text = session_cookie("s", 60, true);
        assert_eq!(
            text,
            "nezuko_session=s; Path=/; HttpOnly; SameSite=Strict; Max-Age=60; Secure"
        );
        assert!(!session_cookie("s", 60, false).contains("Secure"));
    }

    #[test]
    fn secrets_are_random_and_hashes_hide_them() {
        let (a, b) = (random_secret(), random_secret());
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert_eq!(hash_secret(&a).len(), 64);
        assert_ne!(hash_secret(&a), a);
        assert!(constant_time_eq(b"abc", b"abc") && !constant_time_eq(b"abc", b"abd"));
    }
}
