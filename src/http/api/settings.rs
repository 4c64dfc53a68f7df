//! Global settings: the policy defaults every group starts from and the message texts per language.
//! Changes are validated like group policies, stored in `settings`, and reach running bots without
//! a restart (this process at once, others within `enforce.policy_refresh_ms`).

use std::borrow::Cow;
use std::collections::BTreeMap;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use warp::http::{Method, StatusCode};

use crate::enforce::policy::{DEFAULTS_KEY, Language, Policy};
use crate::enforce::texts::{self, OVERRIDES_PREFIX};
use crate::http::problem::ApiError;
use crate::http::respond::{self, ApiResult};
use crate::http::router::{Access, Ctx, Route};

pub fn routes() -> Vec<Route> {
    vec![
        Route::new(
            Method::GET,
            "/api/v1/settings",
            Access::Admin,
            "Policy defaults and message texts",
            |c| Box::pin(get(c)),
        )
        .returns::<Settings>(StatusCode::OK),
        Route::new(
            Method::PUT,
            "/api/v1/settings/policy",
            Access::Admin,
            "Replace the global policy defaults",
            |c| Box::pin(put_policy(c)),
        )
        .accepts::<Policy>()
        .returns::<PolicyDefaults>(StatusCode::OK),
        Route::new(
            Method::PUT,
            "/api/v1/settings/texts/{language}",
            Access::Admin,
            "Replace the text overrides of a language",
            |c| Box::pin(put_texts(c)),
        )
        .param::<Language>("language")
        .accepts::<TextOverrides>()
        .returns::<LanguageOverrides>(StatusCode::OK),
    ]
}

/// A policy layer as stored: the keys it changes (an older layer may hold a value this version
/// refuses; the group's `policy.error` says so).
#[derive(Serialize, JsonSchema)]
#[serde(transparent)]
pub struct PolicyLayer(#[schemars(with = "Map<String, Value>")] pub Value);

/// A language's text overrides: text name → text. Only the names of the catalogue are taken
/// (`text_names` in `GET /api/v1/settings`); each is 1 to 4096 characters.
#[derive(Serialize, Deserialize)]
#[serde(transparent)]
pub struct TextOverrides(pub Map<String, Value>);

impl JsonSchema for TextOverrides {
    fn schema_name() -> Cow<'static, str> {
        "TextOverrides".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        let text = json!({ "type": "string", "minLength": 1, "maxLength": 4096 });
        let properties: Map<String, Value> = texts::names()
            .map(|name| (name.to_string(), text.clone()))
            .collect();
        json_schema!({
            "type": "object",
            "properties": properties,
            "additionalProperties": false,
        })
    }
}

/// Everything the settings page shows.
#[derive(Serialize, JsonSchema)]
struct Settings {
    policy: PolicySettings,
    /// Per language code.
    texts: BTreeMap<Language, LanguageTexts>,
    /// Every text name, in the catalogue's order.
    text_names: Vec<&'static str>,
}

#[derive(Serialize, JsonSchema)]
struct PolicySettings {
    /// The global defaults as stored.
    defaults: PolicyLayer,
    /// Built-in values overlaid by the defaults; null when the stored defaults are invalid.
    effective: Option<Policy>,
    built_in: Policy,
}

#[derive(Serialize, JsonSchema)]
struct LanguageTexts {
    /// As stored (names this version no longer has included).
    overrides: Map<String, Value>,
    /// The built-in texts, by name.
    defaults: BTreeMap<&'static str, String>,
}

/// The global policy defaults just stored.
#[derive(Serialize, JsonSchema)]
struct PolicyDefaults {
    defaults: PolicyLayer,
}

/// A language's text overrides just stored.
#[derive(Serialize, JsonSchema)]
struct LanguageOverrides {
    language: Language,
    overrides: TextOverrides,
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
    let mut languages = BTreeMap::new();
    for language in Language::ALL {
        let key = format!("{OVERRIDES_PREFIX}{}", language.code());
        let custom = overrides
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| json!({}));
        let defaults = texts::names()
            .map(|name| (name, builtin.render(language, name, &[])))
            .collect();
        languages.insert(
            language,
            LanguageTexts {
                overrides: custom.as_object().cloned().unwrap_or_default(),
                defaults,
            },
        );
    }
    respond::ok(&Settings {
        policy: PolicySettings {
            defaults: PolicyLayer(defaults),
            effective,
            built_in: Policy::default(),
        },
        texts: languages,
        text_names: texts::names().collect(),
    })
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
        .map_err(|error| super::groups::refused(&Value::Null, &defaults, &error))?;
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
        crate::domain::AuditTarget::Settings,
        Some(DEFAULTS_KEY.into()),
        before,
        Some(defaults.clone()),
    )
    .await;
    respond::ok(&PolicyDefaults {
        defaults: PolicyLayer(defaults),
    })
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
    let TextOverrides(overrides) = ctx.json()?;
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
        crate::domain::AuditTarget::Settings,
        Some(key),
        before,
        Some(value.clone()),
    )
    .await;
    respond::ok(&LanguageOverrides {
        language,
        overrides: TextOverrides(value.as_object().cloned().unwrap_or_default()),
    })
}
