//! Signing in and out: the Telegram Login Widget, one-time login links, the current session.

use std::borrow::Cow;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use warp::http::{Method, StatusCode};

use crate::db::now_ms;
use crate::http::auth::{self, Admin, widget};
use crate::http::problem::ApiError;
use crate::http::respond::{self, ApiResult};
use crate::http::router::{Access, Ctx, Route};

pub fn routes() -> Vec<Route> {
    vec![
        Route::new(
            Method::POST,
            "/api/v1/auth/telegram",
            Access::Public,
            "Sign in with Telegram Login Widget data",
            |c| Box::pin(telegram(c)),
        )
        .accepts::<WidgetFields>()
        .returns::<Admin>(StatusCode::OK),
        Route::new(
            Method::POST,
            "/api/v1/auth/link",
            Access::Public,
            "Sign in with a one-time login link",
            |c| Box::pin(link(c)),
        )
        .accepts::<LoginLinkBody>()
        .returns::<Admin>(StatusCode::OK),
        Route::new(
            Method::GET,
            "/api/v1/auth/config",
            Access::Public,
            "Which sign-in methods are available",
            |c| Box::pin(config(c)),
        )
        .returns::<SignInMethods>(StatusCode::OK),
        Route::new(
            Method::GET,
            "/api/v1/auth/me",
            Access::Admin,
            "The signed-in account and its CSRF token",
            |c| Box::pin(me(c)),
        )
        .returns::<Admin>(StatusCode::OK),
        Route::new(
            Method::POST,
            "/api/v1/auth/logout",
            Access::Admin,
            "End this session",
            |c| Box::pin(logout(c)),
        )
        .returns_empty(StatusCode::NO_CONTENT),
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
    let WidgetFields(fields) = ctx.json()?;
    let user = widget::verify(&fields, token.expose(), now_ms() / 1000)
        .map_err(|error| ApiError::unauthorized(error.to_string()))?;
    let response =
        auth::start_session(&ctx.state, user.id, ctx.header("user-agent"), ctx.client).await?;
    signed_in(&ctx, user.id, "telegram_widget").await;
    Ok(response)
}

/// The Telegram Login Widget's fields exactly as the widget gave them: every field is part of the
/// signed check string, so fields this server does not know are kept, not refused
/// (<https://core.telegram.org/widgets/login#checking-authorization>).
#[derive(Deserialize)]
#[serde(transparent)]
struct WidgetFields(Map<String, Value>);

impl JsonSchema for WidgetFields {
    fn schema_name() -> Cow<'static, str> {
        "WidgetFields".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "object",
            "description": "the widget's fields as received; all of them are checked",
            "required": ["id", "auth_date", "hash"],
            "properties": {
                "id": {"type": "integer"},
                "first_name": {"type": "string"},
                "last_name": {"type": "string"},
                "username": {"type": "string"},
                "photo_url": {"type": "string"},
                "auth_date": {"type": "integer", "description": "epoch s"},
                "hash": {"type": "string", "description": "hex HMAC-SHA-256 of the other fields"},
            },
        })
    }
}

/// A one-time login link's secret (what follows `#token=` in the link).
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct LoginLinkBody {
    token: String,
}

async fn link(ctx: Ctx) -> ApiResult {
    throttled(ctx, login_link).await
}

async fn login_link(ctx: Ctx) -> ApiResult {
    let body: LoginLinkBody = ctx.json()?;
    let user = ctx
        .state
        .store
        .consume_login_link(&auth::hash_secret(body.token.trim()))
        .await?
        .ok_or_else(|| ApiError::unauthorized("this login link is unknown, expired or already used; print a new one with `nezuko login-link`"))?;
    let response =
        auth::start_session(&ctx.state, user, ctx.header("user-agent"), ctx.client).await?;
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
        target_type: crate::domain::AuditTarget::Session.as_str().into(),
        target_id: None,
        before: None,
        after: Some(json!({ "method": method })),
        ip: ctx.client_ip(),
    };
    if let Err(error) = ctx.state.store.append_audit(&entry).await {
        tracing::error!(%error, "could not record a sign-in");
    }
}

/// Which sign-in methods the sign-in page offers.
#[derive(Serialize, JsonSchema)]
struct SignInMethods {
    /// One-time links from `nezuko login-link` (always available).
    login_link: bool,
    /// The Telegram Login Widget; null when no login bot is configured.
    widget: Option<Widget>,
}

/// What the page needs to show the Telegram Login Widget.
#[derive(Serialize, JsonSchema)]
struct Widget {
    /// The login bot's Telegram id.
    bot_id: i64,
}

async fn config(ctx: Ctx) -> ApiResult {
    respond::ok(&SignInMethods {
        login_link: true,
        widget: ctx.state.auth.login_bot_token.as_ref().map(|token| Widget {
            bot_id: token.bot_id(),
        }),
    })
}

async fn me(ctx: Ctx) -> ApiResult {
    respond::ok(ctx.admin()?)
}

async fn logout(ctx: Ctx) -> ApiResult {
    let admin = ctx.admin()?;
    ctx.state.store.delete_session(&admin.session_hash).await?;
    super::audit::record(
        &ctx,
        "session.logout",
        crate::domain::AuditTarget::Session,
        None,
        None,
        None,
    )
    .await;
    let mut response = respond::no_content()?;
    auth::set_cookie(
        &mut response,
        &auth::session_cookie("", 0, ctx.state.auth.secure_cookies(ctx.client)),
    );
    Ok(response)
}
