//! Groups: a searchable, filterable, sortable, paged list; detail with channels, policy (overrides
//! and the effective result), permission health and stats; policy updates, enable/disable, and
//! linking or unlinking channels. Every change reaches running bots at once in this process
//! (the enforcer's view is invalidated) and within `enforce.policy_refresh_ms` in others.

use std::borrow::Cow;
use std::collections::BTreeMap;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use warp::http::{Method, StatusCode};

use crate::db::{GroupFilter, GroupRow, GroupSort, now_ms};
use crate::domain::Outcome;
use crate::enforce::Checked;
use crate::enforce::policy::{DEFAULTS_KEY, JoinRequests, Policy, PolicyError};
use crate::http::input;
use crate::http::problem::ApiError;
use crate::http::respond::{self, ApiResult, Page};
use crate::http::router::{Access, Ctx, Route};

use super::channels::ChannelView;
use super::settings::PolicyLayer;

const DAY_MS: i64 = 86_400_000;

pub fn routes() -> Vec<Route> {
    vec![
        Route::new(
            Method::GET,
            "/api/v1/groups",
            Access::Admin,
            "Groups, searched, filtered, sorted and paged",
            |c| Box::pin(list(c)),
        )
        .query::<GroupQuery>()
        .returns::<Page<GroupView>>(StatusCode::OK),
        Route::new(
            Method::GET,
            "/api/v1/groups/{id}",
            Access::Admin,
            "A group with channels, policy, health and stats",
            |c| Box::pin(detail(c)),
        )
        .returns::<GroupDetail>(StatusCode::OK),
        Route::new(
            Method::PUT,
            "/api/v1/groups/{id}/policy",
            Access::Admin,
            "Replace the group's policy overrides ({} uses the global defaults)",
            |c| Box::pin(set_policy(c)),
        )
        .accepts::<Policy>()
        .returns::<GroupView>(StatusCode::OK),
        Route::new(
            Method::POST,
            "/api/v1/groups/{id}/enable",
            Access::Admin,
            "Enforce in this group",
            |c| Box::pin(set_enabled(c, true)),
        )
        .returns::<GroupView>(StatusCode::OK),
        Route::new(
            Method::POST,
            "/api/v1/groups/{id}/disable",
            Access::Admin,
            "Stop enforcing in this group",
            |c| Box::pin(set_enabled(c, false)),
        )
        .returns::<GroupView>(StatusCode::OK),
        Route::new(
            Method::POST,
            "/api/v1/groups/{id}/channels",
            Access::Admin,
            "Require a channel in this group",
            |c| Box::pin(link(c)),
        )
        .accepts::<ChannelLinkBody>()
        .returns::<GroupChannels>(StatusCode::OK),
        Route::new(
            Method::DELETE,
            "/api/v1/groups/{id}/channels/{channel_id}",
            Access::Admin,
            "Stop requiring a channel",
            |c| Box::pin(unlink(c)),
        )
        .returns::<GroupChannels>(StatusCode::OK),
    ]
}

/// A group's permission health: `ok`, `degraded` (the bot lacks a right it needs; see
/// `health_detail`) or `unknown` (not checked yet, or its bot does not run).
pub struct HealthWord;

impl JsonSchema for HealthWord {
    fn schema_name() -> Cow<'static, str> {
        "GroupHealth".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "string", "enum": ["ok", "degraded", "unknown"] })
    }
}

/// A group as lists show it.
#[derive(Serialize, JsonSchema)]
pub struct GroupView {
    id: i64,
    bot_instance_id: i64,
    /// Telegram's chat id (negative).
    chat_id: i64,
    title: String,
    username: Option<String>,
    enabled: bool,
    #[schemars(with = "HealthWord")]
    health: String,
    /// What the bot lacks: `problems` (each fix in English), `summary`, `items`.
    #[schemars(with = "Option<Map<String, Value>>")]
    health_detail: Option<Value>,
    /// Epoch ms.
    health_checked_at: Option<i64>,
    member_count: Option<i64>,
    /// Telegram's `Chat.type`: `supergroup`, or `channel` (protected through join requests only).
    chat_type: String,
    /// Epoch ms.
    created_at: i64,
    /// Epoch ms.
    updated_at: i64,
}

pub fn summary(row: &GroupRow) -> GroupView {
    GroupView {
        id: row.id,
        bot_instance_id: row.bot_instance_id,
        chat_id: row.chat_id,
        title: row.title.clone(),
        username: row.username.clone(),
        enabled: row.enabled,
        health: row.health.clone(),
        health_detail: row.health_detail.as_ref().map(|d| d.0.clone()),
        health_checked_at: row.health_checked_at,
        member_count: row.member_count,
        chat_type: row.chat_type.clone(),
        created_at: row.created_at,
        updated_at: row.updated_at,
    }
}

/// A group with its channels, policy and verification counts.
#[derive(Serialize, JsonSchema)]
struct GroupDetail {
    #[serde(flatten)]
    group: GroupView,
    channels: Vec<ChannelView>,
    policy: GroupPolicy,
    stats: GroupStats,
}

#[derive(Serialize, JsonSchema)]
struct GroupPolicy {
    /// The group's own layer as stored.
    overrides: PolicyLayer,
    /// Built-in values, then the global defaults, then the overrides; null when invalid.
    effective: Option<Policy>,
    /// Why the layers make no valid policy; null when they do.
    error: Option<String>,
}

#[derive(Serialize, JsonSchema)]
struct GroupStats {
    verifications_24h: OutcomeCounts,
    verifications_7d: OutcomeCounts,
}

#[derive(Serialize, JsonSchema)]
struct OutcomeCounts {
    total: i64,
    /// Outcomes with none are absent.
    by_outcome: BTreeMap<Outcome, i64>,
}

/// A group's channels and its health checked just now.
#[derive(Serialize, JsonSchema)]
struct GroupChannels {
    group_id: i64,
    channels: Vec<ChannelView>,
    #[schemars(with = "HealthWord")]
    health: &'static str,
    /// Each fix, in English.
    problems: Vec<String>,
}

/// Filters, order and page of the group list.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct GroupQuery {
    /// A substring of the title or username.
    search: Option<String>,
    /// Only this bot's groups.
    bot: Option<i64>,
    enabled: Option<bool>,
    #[schemars(with = "Option<HealthWord>")]
    health: Option<String>,
    /// `title` (default), `created_at`, `member_count` or `health`; prefix `-` for descending.
    sort: Option<String>,
    /// Default 0.
    offset: Option<i64>,
    /// 1..=200, default 50.
    limit: Option<i64>,
}

async fn list(ctx: Ctx) -> ApiResult {
    let query: GroupQuery = ctx.query()?;
    let (descending, sort_key) = match query.sort.as_deref() {
        None | Some("") => (false, "title"),
        Some(text) => match text.strip_prefix('-') {
            Some(key) => (true, key),
            None => (false, text),
        },
    };
    let sort = GroupSort::ALL
        .iter()
        .find(|(name, _)| *name == sort_key)
        .map(|(_, sort)| *sort)
        .ok_or_else(|| {
            ApiError::invalid(
                "sort",
                format!(
                    "cannot sort by `{sort_key}`; use title, created_at, member_count or health"
                ),
            )
        })?;
    if let Some(health) = &query.health
        && !["ok", "degraded", "unknown"].contains(&health.as_str())
    {
        return Err(ApiError::invalid(
            "health",
            "health is ok, degraded or unknown",
        ));
    }
    let filter = GroupFilter {
        search: query
            .search
            .filter(|s| !s.trim().is_empty())
            .map(|s| s.trim().to_string()),
        bot_instance_id: query.bot,
        enabled: query.enabled,
        health: query.health,
        sort,
        descending,
        offset: input::offset(query.offset)?,
        limit: input::limit(query.limit, 50, 200)?,
    };
    let (rows, total) = ctx.state.store.list_groups(&filter).await?;
    let items: Vec<GroupView> = rows.iter().map(summary).collect();
    respond::page(items, filter.offset, filter.limit, total)
}

async fn detail(ctx: Ctx) -> ApiResult {
    let id = ctx.id(0, "group")?;
    let store = &ctx.state.store;
    let group = store.group(id).await?;
    let channels = store.channels_of_group(id).await?;
    let defaults = store.setting(DEFAULTS_KEY).await?.unwrap_or(Value::Null);
    let (effective, error) = match Policy::resolve(&defaults, &group.policy.0) {
        Ok(policy) => (Some(policy.for_chat(group.is_channel())), None),
        Err(error) => (None, Some(error.to_string())),
    };
    let now = now_ms();
    let day = store
        .verification_outcomes_in_group(id, now - DAY_MS, now)
        .await?;
    let week = store
        .verification_outcomes_in_group(id, now - 7 * DAY_MS, now)
        .await?;
    respond::ok(&GroupDetail {
        group: summary(&group),
        channels: channels.iter().map(super::channels::view).collect(),
        policy: GroupPolicy {
            overrides: PolicyLayer(group.policy.0),
            effective,
            error,
        },
        stats: GroupStats {
            verifications_24h: counts(&day),
            verifications_7d: counts(&week),
        },
    })
}

fn counts(rows: &[crate::db::KeyCount]) -> OutcomeCounts {
    OutcomeCounts {
        total: rows.iter().map(|r| r.count).sum(),
        by_outcome: rows
            .iter()
            .filter_map(|r| Some((Outcome::parse(&r.key)?, r.count)))
            .collect(),
    }
}

/// Tells this process's bots at once and everyone watching.
fn changed(ctx: &Ctx, group: &GroupRow, what: &str) {
    ctx.state
        .enforcer
        .invalidate_group(group.bot_instance_id, group.chat_id);
    ctx.state.fleet.publisher().publish(
        crate::domain::EventKind::SettingsChanged,
        Some(group.bot_instance_id),
        json!({ "scope": "group", "group_id": group.id, "change": what }),
    );
}

/// A refused policy layer as a 422 whose `field` is the key at fault (the policy editor shows the
/// message there), or `policy` when no one key is.
pub(super) fn refused(defaults: &Value, layer: &Value, error: &PolicyError) -> ApiError {
    let field = Policy::culprit(defaults, layer, error).unwrap_or_else(|| "policy".into());
    ApiError::invalid(&field, error.to_string())
}

async fn set_policy(ctx: Ctx) -> ApiResult {
    let id = ctx.id(0, "group")?;
    let overrides: Value = ctx.json()?;
    if !overrides.is_object() {
        return Err(ApiError::invalid(
            "policy",
            "the policy is a JSON object of the keys to override",
        ));
    }
    Policy::check_layer(&overrides).map_err(|error| refused(&Value::Null, &overrides, &error))?;
    let before = ctx.state.store.group(id).await?;
    if before.is_channel() && overrides["join_requests"] == json!(JoinRequests::Off) {
        return Err(ApiError::invalid(
            "join_requests",
            "a channel is protected through join requests only: disable it instead of turning them off",
        ));
    }
    // Valid alone is not enough: over the global defaults it must make a valid policy too
    // (`escalate_after` here with a default `escalate_to: warn`).
    let defaults = ctx
        .state
        .store
        .setting(DEFAULTS_KEY)
        .await?
        .unwrap_or(Value::Null);
    let effective = Policy::resolve(&defaults, &overrides).map_err(|error| {
        let mut refusal = refused(&defaults, &overrides, &error);
        refusal.detail = format!("over the global defaults this would be invalid: {error}");
        refusal
    })?;
    let was = Policy::resolve(&defaults, &before.policy.0)
        .map(|p| p.join_requests)
        .ok();
    let mut group = ctx.state.store.set_group_policy(id, &overrides).await?;
    changed(&ctx, &group, "policy");
    // Deciding join requests needs a right the group may not have given (`can_invite_users`):
    // the health says so now, not at the next periodic check.
    if group.enabled && was != Some(effective.join_requests) {
        recheck(&ctx, id).await?;
        group = ctx.state.store.group(id).await?;
    }
    super::audit::record(
        &ctx,
        "group.policy",
        crate::domain::AuditTarget::Group,
        Some(id.to_string()),
        Some(before.policy.0),
        Some(overrides),
    )
    .await;
    respond::ok(&summary(&group))
}

async fn set_enabled(ctx: Ctx, enabled: bool) -> ApiResult {
    let id = ctx.id(0, "group")?;
    let before = ctx.state.store.group(id).await?;
    let group = if enabled {
        ctx.state
            .enforcer
            .enable_group(id)
            .await?
            .map_err(|(_, username)| taken(&username))?
    } else {
        ctx.state.store.set_group_enabled(id, false).await?
    };
    changed(&ctx, &group, if enabled { "enabled" } else { "disabled" });
    let action = if enabled {
        "group.enable"
    } else {
        "group.disable"
    };
    super::audit::record(
        &ctx,
        action,
        crate::domain::AuditTarget::Group,
        Some(id.to_string()),
        Some(json!({"enabled": before.enabled})),
        Some(json!({"enabled": enabled})),
    )
    .await;
    respond::ok(&summary(&group))
}

/// 409 `chat_taken`: bot `username` enforces in this chat already; one chat has one enforcing bot
/// (two would both warn and restrict every member).
pub(super) fn taken(username: &str) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "chat_taken",
        format!(
            "@{username} already protects this chat: disable it there first (two bots would both act on every member)"
        ),
    )
}

/// The channel to require.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ChannelLinkBody {
    /// Nezuko's id of the channel (`GET /api/v1/channels`), not Telegram's.
    channel_id: i64,
}

async fn link(ctx: Ctx) -> ApiResult {
    let id = ctx.id(0, "group")?;
    let body: ChannelLinkBody = ctx.json()?;
    let group = ctx.state.store.group(id).await?;
    let channel = ctx.state.store.channel(body.channel_id).await?;
    if channel.chat_id == group.chat_id {
        return Err(ApiError::invalid(
            "channel_id",
            format!(
                "{} is the chat being protected: it cannot require itself",
                group.title
            ),
        ));
    }
    ctx.state.store.link_channel(id, channel.id).await?;
    changed(&ctx, &group, "channels");
    super::audit::record(
        &ctx,
        "group.link_channel",
        crate::domain::AuditTarget::Group,
        Some(id.to_string()),
        None,
        Some(json!({"channel_id": channel.id})),
    )
    .await;
    channels_and_health(&ctx, id).await
}

/// The group's channels and its health checked now: the same preflight as /protect, so the health
/// says at once what the bot lacks (or `unknown` when its bot does not run in this process) after
/// any change of channels, never an optimistic `ok` nor a stale problem.
async fn channels_and_health(ctx: &Ctx, id: i64) -> ApiResult {
    let channels = ctx.state.store.channels_of_group(id).await?;
    let checked = match recheck(ctx, id).await? {
        Some(checked) => checked,
        None => {
            let group = ctx.state.store.group(id).await?;
            // As stored: each fix in English under `problems` (see `enforce::health`).
            let problems = group
                .health_detail
                .as_ref()
                .and_then(|d| d.0["problems"].as_array().cloned())
                .unwrap_or_default();
            Checked {
                health: match group.health.as_str() {
                    "ok" => "ok",
                    "degraded" => "degraded",
                    _ => "unknown",
                },
                problems: problems
                    .iter()
                    .filter_map(|p| p.as_str().map(str::to_string))
                    .collect(),
            }
        }
    };
    respond::ok(&GroupChannels {
        group_id: id,
        channels: channels.iter().map(super::channels::view).collect(),
        health: checked.health,
        problems: checked.problems,
    })
}

/// The permission check after a change already stored. Telegram not answering (weather, a refused
/// token) fails neither the change nor the request: the stored health stays as it was (`None`),
/// and the next periodic check reads the rights again.
async fn recheck(ctx: &Ctx, id: i64) -> Result<Option<Checked>, ApiError> {
    match ctx.state.enforcer.check_group_now(id).await {
        Ok(checked) => Ok(Some(checked)),
        Err(error) if error.chain().any(crate::telegram::is_weather_cause) => {
            tracing::warn!(group_id = id, %error, "Telegram did not answer the permission check after a change; the group's health stays as it was");
            Ok(None)
        }
        Err(error) => Err(ApiError::internal(format!(
            "checking the bot's rights: {error}"
        ))),
    }
}

async fn unlink(ctx: Ctx) -> ApiResult {
    let id = ctx.id(0, "group")?;
    let channel_id = ctx.id(1, "channel")?;
    let group = ctx.state.store.group(id).await?;
    if !ctx.state.store.unlink_channel(id, channel_id).await? {
        return Err(ApiError::not_found(format!(
            "a link between group {id} and channel {channel_id}"
        )));
    }
    changed(&ctx, &group, "channels");
    super::audit::record(
        &ctx,
        "group.unlink_channel",
        crate::domain::AuditTarget::Group,
        Some(id.to_string()),
        Some(json!({"channel_id": channel_id})),
        None,
    )
    .await;
    channels_and_health(&ctx, id).await
}
