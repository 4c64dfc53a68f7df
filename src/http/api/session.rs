//! Signing in and out: the Telegram Login Widget, one-time login links, the current session.

use serde::Deserialize;
use serde_json::{Map, Value, json};
use warp::http::{Method, StatusCode};

use crate::db::now_ms;
use crate::http::auth::{self, widget};
use crate::http::problem::ApiError;
use crate::http::respond::{self, ApiResult};
use crate::http::router::{Access, Ctx, Route};

pub fn routes() -> Vec<Route> {
    vec![
        Route::new(Method::POST, "/api/v1/auth/telegram", Access::Public, "Sign in with Telegram Login Widget data", |c| {
            Box::pin(telegram(c))
        })
        .body(json!({"type": "object", "description": "the widget's fields as received (id, first_name, …, auth_date, hash)"})),
        Route::new(Method::POST, "/api/v1/auth/link", Access::Public, "Sign in with a one-time login link", |c| {
            Box::pin(link(c))
        })
        .body(json!({"type": "object", "required": ["token"], "properties": {"token": {"type": "string"}}})),
        Route::new(Method::GET, "/api/v1/auth/config", Access::Public, "Which sign-in methods are available", |c| {
            Box::pin(config(c))
        }),
        Route::new(Method::GET, "/api/v1/auth/me", Access::Admin, "The signed-in account and its CSRF token", |c| {
            Box::pin(me(c))
        }),
        Route::new(Method::POST, "/api/v1/auth/logout", Access::Admin, "End this session", |c| Box::pin(logout(c))),
    ]
}

/// Runs a sign-in unless the caller's address failed too often lately; a refusal of the
/// credentials (401/403) counts as a failure, anything else does not.
async fn throttled<F>(ctx: Ctx, sign_in: fn(Ctx) -> F) -> ApiResult
where
    F: std::future::Future<Output = ApiResult>,
{
    let address = ctx.client_ip().unwrap_or_else(|| "unknown".into());
    let throttle = ctx.state.throttle.clone();
    throttle.check(&address).map_err(|wait| {
        ApiError::too_many(
            wait,
            format!("too many failed sign-ins from this address; try again in {wait} s"),
        )
    })?;
    let result = sign_in(ctx).await;
    if let Err(error) = &result
        && matches!(
            error.status,
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
        )
    {
        throttle.failed(&address);
    }
    result
}

async fn telegram(ctx: Ctx) -> ApiResult {
    throttled(ctx, telegram_widget).await
}

async fn telegram_widget(ctx: Ctx) -> ApiResult {
    let Some(token) = ctx.state.auth.login_bot_token.clone() else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "widget_disabled",
            "no login bot is configured (auth.login_bot_token); use a one-time login link",
        ));
    };
    let fields: Map<String, Value> = ctx.json()?;
    let user = widget::verify(&fields, token.expose(), now_ms() / 1000)
        .map_err(|error| ApiError::unauthorized(error.to_string()))?;
    let response = auth::start_session(
        &ctx.state,
        user.id,
        ctx.header("user-agent"),
        ctx.client_ip(),
    )
    .await?;
    signed_in(&ctx, user.id, "telegram_widget").await;
    Ok(response)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LinkBody {
    token: String,
}

async fn link(ctx: Ctx) -> ApiResult {
    throttled(ctx, login_link).await
}

async fn login_link(ctx: Ctx) -> ApiResult {
    let body: LinkBody = ctx.json()?;
    let user = ctx
        .state
        .store
        .consume_login_link(&auth::hash_secret(body.token.trim()))
        .await?
        .ok_or_else(|| ApiError::unauthorized("this login link is unknown, expired or already used; print a new one with `nezuko login-link`"))?;
    let response =
        auth::start_session(&ctx.state, user, ctx.header("user-agent"), ctx.client_ip()).await?;
    signed_in(&ctx, user, "login_link").await;
    Ok(response)
}

async fn signed_in(ctx: &Ctx, user: i64, method: &str) {
    let entry = crate::db::NewAuditEntry {
        actor_id: Some(user),
        actor_name: auth::allowed(&ctx.state, user)
            .await
            .ok()
            .flatten()
            .map(|(name, _)| name)
            .unwrap_or_default(),
        action: "session.login".into(),
        target_type: "session".into(),
        target_id: None,
        before: None,
        after: Some(json!({ "method": method })),
        ip: ctx.client_ip(),
    };
    if let Err(error) = ctx.state.store.append_audit(&entry).await {
        tracing::error!(%error, "could not record a sign-in");
    }
}

async fn config(ctx: Ctx) -> ApiResult {
    respond::ok(&json!({
        "login_link": true,
        "widget": ctx.state.auth.login_bot_token.as_ref().map(|token| json!({ "bot_id": token.bot_id() })),
    }))
}

async fn me(ctx: Ctx) -> ApiResult {
    respond::ok(ctx.admin()?)
}

async fn logout(ctx: Ctx) -> ApiResult {
    let admin = ctx.admin()?;
    ctx.state.store.delete_session(&admin.session_hash).await?;
    super::audit::record(&ctx, "session.logout", "session", None, None, None).await;
    let mut response = respond::no_content()?;
    auth::set_cookie(
        &mut response,
        &auth::session_cookie("", 0, ctx.state.auth.secure_cookies),
    );
    Ok(response)
}
