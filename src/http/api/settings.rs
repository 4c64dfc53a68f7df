//! Global settings: the policy defaults every group starts from and the message texts per language.
//! Changes are validated like group policies, stored in `settings`, and reach running bots without
//! a restart (this process at once, others within `enforce.policy_refresh_ms`).

use serde_json::{Map, Value, json};
use warp::http::Method;

use crate::enforce::policy::{DEFAULTS_KEY, Language, Policy};
use crate::enforce::texts::{self, OVERRIDES_PREFIX};
use crate::http::problem::ApiError;
use crate::http::respond::{self, ApiResult};
use crate::http::router::{Access, Ctx, Route};

pub fn routes() -> Vec<Route> {
    vec![
        Route::new(Method::GET, "/api/v1/settings", Access::Admin, "Policy defaults and message texts", |c| Box::pin(get(c))),
        Route::new(Method::PUT, "/api/v1/settings/policy", Access::Admin, "Replace the global policy defaults", |c| {
            Box::pin(put_policy(c))
        })
        .body(json!({"type": "object", "description": "policy keys; absent keys use the built-in defaults"})),
        Route::new(Method::PUT, "/api/v1/settings/texts/{language}", Access::Admin, "Replace the text overrides of a language", |c| {
            Box::pin(put_texts(c))
        })
        .body(json!({"type": "object", "additionalProperties": {"type": "string"}})),
    ]
}

async fn get(ctx: Ctx) -> ApiResult {
    let store = &ctx.state.store;
    let defaults = store
        .setting(DEFAULTS_KEY)
        .await?
        .unwrap_or_else(|| json!({}));
    let effective = Policy::resolve(&defaults, &Value::Null).ok();
    let overrides = store.settings_with_prefix(OVERRIDES_PREFIX).await?;
    let builtin = texts::Texts::default();
    let mut languages = Map::new();
    for language in Language::ALL {
        let key = format!("{OVERRIDES_PREFIX}{}", language.code());
        let custom = overrides
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| json!({}));
        let defaults: Map<String, Value> = texts::names()
            .map(|name| (name.to_string(), builtin.render(language, name, &[]).into()))
            .collect();
        languages.insert(
            language.code().into(),
            json!({ "overrides": custom, "defaults": defaults }),
        );
    }
    respond::ok(&json!({
        "policy": { "defaults": defaults, "effective": effective, "built_in": Policy::default() },
        "texts": languages,
        "text_names": texts::names().collect::<Vec<_>>(),
    }))
}

/// Tells this process's bots and everyone watching.
fn changed(ctx: &Ctx, what: &str) {
    ctx.state.enforcer.invalidate_all();
    ctx.state.fleet.publisher().publish(
        crate::domain::EventKind::SettingsChanged,
        None,
        json!({ "scope": "global", "change": what }),
    );
}

async fn put_policy(ctx: Ctx) -> ApiResult {
    let defaults: Value = ctx.json()?;
    if !defaults.is_object() {
        return Err(ApiError::invalid(
            "policy",
            "the defaults are a JSON object of policy keys",
        ));
    }
    Policy::check_layer(&defaults)
        .map_err(|error| ApiError::invalid("policy", error.to_string()))?;
    // Every group's own overrides must still make a valid policy over the new defaults, or the
    // change would silently switch enforcement off there.
    for (id, title, overrides) in ctx.state.store.group_policies().await? {
        if let Err(error) = Policy::resolve(&defaults, &overrides.0) {
            return Err(ApiError::invalid(
                "policy",
                format!(
                    "with these defaults the policy of group {id} ({title}) would be invalid: {error}"
                ),
            ));
        }
    }
    let before = ctx.state.store.setting(DEFAULTS_KEY).await?;
    let user = ctx.admin()?.telegram_user_id;
    ctx.state
        .store
        .put_setting(DEFAULTS_KEY, &defaults, Some(user))
        .await?;
    changed(&ctx, "policy");
    super::audit::record(
        &ctx,
        "settings.policy",
        "settings",
        Some(DEFAULTS_KEY.into()),
        before,
        Some(defaults.clone()),
    )
    .await;
    respond::ok(&json!({ "defaults": defaults }))
}

async fn put_texts(ctx: Ctx) -> ApiResult {
    let code = ctx.params.first().cloned().unwrap_or_default();
    let Some(language) = Language::ALL.into_iter().find(|l| l.code() == code) else {
        let known: Vec<&str> = Language::ALL.iter().map(|l| l.code()).collect();
        return Err(ApiError::not_found(format!(
            "language `{code}` (known: {})",
            known.join(", ")
        )));
    };
    let overrides: Map<String, Value> = ctx.json()?;
    for (name, text) in &overrides {
        if !texts::names().any(|known| known == name) {
            return Err(ApiError::invalid(
                name,
                format!("`{name}` is not a text name; see text_names in GET /api/v1/settings"),
            ));
        }
        match text.as_str() {
            Some(text) if !text.trim().is_empty() && text.chars().count() <= 4096 => {
                texts::check_override(name, text).map_err(|why| ApiError::invalid(name, why))?;
            }
            _ => {
                return Err(ApiError::invalid(
                    name,
                    format!("`{name}` must be a non-empty string of at most 4096 characters"),
                ));
            }
        }
    }
    let key = format!("{OVERRIDES_PREFIX}{}", language.code());
    let before = ctx.state.store.setting(&key).await?;
    let value = Value::Object(overrides);
    ctx.state
        .store
        .put_setting(&key, &value, Some(ctx.admin()?.telegram_user_id))
        .await?;
    changed(&ctx, "texts");
    super::audit::record(
        &ctx,
        "settings.texts",
        "settings",
        Some(key),
        before,
        Some(value.clone()),
    )
    .await;
    respond::ok(&json!({ "language": language.code(), "overrides": value }))
}
