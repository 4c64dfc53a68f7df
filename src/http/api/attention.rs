//! What needs a person (`GET /api/v1/attention`, the overview's panel) and where Nezuko tells the
//! owner about it in Telegram (`/api/v1/settings/alerts`, the settings page; see
//! `actors::alerter`).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;
use warp::http::{Method, StatusCode};

use crate::actors::alerter::{SETTINGS_KEY, current_config};
use crate::db::attention::{Attention, AttentionKind};
use crate::db::now_ms;
use crate::domain::AlertConfig;
use crate::http::problem::ApiError;
use crate::http::respond::{self, ApiResult};
use crate::http::router::{Access, Ctx, Route};

pub fn routes() -> Vec<Route> {
    vec![
        Route::new(
            Method::GET,
            "/api/v1/attention",
            Access::Admin,
            "What needs a person now: failed, looping or revoked bots, degraded groups, lost nodes",
            |c| Box::pin(attention(c)),
        )
        .returns::<AttentionList>(StatusCode::OK),
        Route::new(
            Method::GET,
            "/api/v1/settings/alerts",
            Access::Admin,
            "Where alerts go and who sends them",
            |c| Box::pin(get(c)),
        )
        .returns::<AlertSettings>(StatusCode::OK),
        Route::new(
            Method::PUT,
            "/api/v1/settings/alerts",
            Access::Admin,
            "Choose the alert chat and sender",
            |c| Box::pin(put(c)),
        )
        .accepts::<AlertConfig>()
        .returns::<AlertSettings>(StatusCode::OK),
        Route::new(
            Method::POST,
            "/api/v1/settings/alerts/test",
            Access::Admin,
            "Send a test message now, with the saved alert settings or those in the body",
            |c| Box::pin(test(c)),
        )
        .accepts::<AlertTest>()
        .returns::<TestSent>(StatusCode::OK),
    ]
}

/// Every condition that needs a person, bots first.
#[derive(Serialize, JsonSchema)]
struct AttentionList {
    items: Vec<Attention>,
}

/// The alert configuration in force and where it comes from.
#[derive(Serialize, JsonSchema)]
struct AlertSettings {
    #[serde(flatten)]
    config: AlertConfig,
    /// `dashboard` once chosen here, else `configuration` (`alerts.*`).
    source: &'static str,
    /// Why the last alert could not be delivered (this process's Alerter); null when it was.
    undelivered: Option<String>,
}

/// What to test, each member over the saved settings (the settings page tests what is typed
/// before it is saved); an empty object or no body tests the saved settings.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct AlertTest {
    chat_id: Option<i64>,
    sender: Option<String>,
}

/// A test message delivered.
#[derive(Serialize, JsonSchema)]
struct TestSent {
    chat_id: i64,
    sender: String,
}

async fn attention(ctx: Ctx) -> ApiResult {
    let mut items = ctx.state.store.attention(now_ms()).await?;
    if let Some((problem, since)) = ctx.state.alerts.undelivered() {
        items.push(Attention {
            key: "alerts_undelivered".into(),
            kind: AttentionKind::AlertsUndelivered,
            subject: "Alerts in Telegram".into(),
            detail: problem.message,
            path: "/settings".into(),
            since,
        });
    }
    respond::ok(&AttentionList { items })
}

async fn current(ctx: &Ctx) -> Result<AlertSettings, ApiError> {
    let stored = ctx.state.store.setting(SETTINGS_KEY).await?.is_some();
    let config = current_config(&ctx.state.store, &ctx.state.alerts.defaults).await?;
    Ok(AlertSettings {
        config,
        source: if stored { "dashboard" } else { "configuration" },
        undelivered: ctx
            .state
            .alerts
            .undelivered()
            .map(|(problem, _)| problem.message),
    })
}

async fn get(ctx: Ctx) -> ApiResult {
    respond::ok(&current(&ctx).await?)
}

/// Refuses a configuration that cannot work, at its field: a sender that is neither the login bot
/// (when one is configured) nor one of the fleet's bots, a chat id Telegram cannot have.
async fn check(ctx: &Ctx, config: &AlertConfig) -> Result<(), ApiError> {
    config
        .validate()
        .map_err(|problem| ApiError::invalid("sender", problem))?;
    if let Some(id) = config.chat_id {
        crate::domain::check_chat_id(id)
            .map_err(|problem| ApiError::invalid("chat_id", problem))?;
    }
    if config.sender != "login" {
        let name = config.sender.trim_start_matches('@');
        let bots = ctx.state.store.bots().await?;
        if !bots.iter().any(|b| b.username.eq_ignore_ascii_case(name)) {
            return Err(ApiError::invalid(
                "sender",
                format!("@{name} is not one of Nezuko's bots; add it first or use `login`"),
            ));
        }
    } else if ctx.state.alerts.login_token.is_none() {
        return Err(ApiError::invalid(
            "sender",
            "no login bot is configured (auth.login_bot_token); choose a fleet bot's @username",
        ));
    }
    Ok(())
}

async fn put(ctx: Ctx) -> ApiResult {
    let config: AlertConfig = ctx.json()?;
    check(&ctx, &config).await?;
    let before = ctx.state.store.setting(SETTINGS_KEY).await?;
    let value = json!(config);
    ctx.state
        .store
        .put_setting(SETTINGS_KEY, &value, Some(ctx.admin()?.telegram_user_id))
        .await?;
    super::audit::record(
        &ctx,
        "settings.alerts",
        crate::domain::AuditTarget::Settings,
        Some(SETTINGS_KEY.into()),
        before,
        Some(value),
    )
    .await;
    respond::ok(&current(&ctx).await?)
}

async fn test(ctx: Ctx) -> ApiResult {
    let saved = current(&ctx).await?.config;
    let asked: AlertTest = if ctx.body.iter().all(u8::is_ascii_whitespace) {
        AlertTest {
            chat_id: None,
            sender: None,
        }
    } else {
        ctx.json()?
    };
    let config = AlertConfig {
        chat_id: asked.chat_id.or(saved.chat_id),
        sender: asked.sender.unwrap_or(saved.sender),
    };
    check(&ctx, &config).await?;
    let Some(chat_id) = config.chat_id else {
        return Err(ApiError::invalid(
            "chat_id",
            "no alert chat is set; choose one first",
        ));
    };
    ctx.state
        .alerts
        .send_as(&config, "🔔 Nezuko: alerts reach this chat.")
        .await
        .map_err(|undelivered| {
            let mut error = ApiError::new(
                StatusCode::BAD_GATEWAY,
                "telegram_refused",
                undelivered.message,
            );
            if let Some(field) = undelivered.field {
                error.extra = Some(json!({ "field": field }));
            }
            error
        })?;
    respond::ok(&TestSent {
        chat_id,
        sender: config.sender,
    })
}
