//! Groups: a searchable, filterable, sortable, paged list; detail with channels, policy (overrides
//! and the effective result), permission health and stats; policy updates, enable/disable, and
//! linking or unlinking channels. Every change reaches running bots at once in this process
//! (the enforcer's view is invalidated) and within `enforce.policy_refresh_ms` in others.

use serde::Deserialize;
use serde_json::{Value, json};
use warp::http::Method;

use crate::db::{GroupFilter, GroupRow, GroupSort, now_ms};
use crate::enforce::policy::{DEFAULTS_KEY, Policy};
use crate::http::input;
use crate::http::problem::ApiError;
use crate::http::respond::{self, ApiResult};
use crate::http::router::{Access, Ctx, Route};

const DAY_MS: i64 = 86_400_000;

pub fn routes() -> Vec<Route> {
    vec![
        Route::new(Method::GET, "/api/v1/groups", Access::Admin, "Groups, searched, filtered, sorted and paged", |c| {
            Box::pin(list(c))
        })
        .query(&[
            ("search", "substring of the title or username"),
            ("bot", "bot id"),
            ("enabled", "true or false"),
            ("health", "ok, degraded or unknown"),
            ("sort", "title, created_at, member_count or health; prefix - for descending"),
            ("offset", "default 0"),
            ("limit", "1..=200, default 50"),
        ]),
        Route::new(Method::GET, "/api/v1/groups/{id}", Access::Admin, "A group with channels, policy, health and stats", |c| {
            Box::pin(detail(c))
        }),
        Route::new(Method::PUT, "/api/v1/groups/{id}/policy", Access::Admin, "Replace the group's policy overrides", |c| {
            Box::pin(set_policy(c))
        })
        .body(json!({"type": "object", "description": "policy keys to override; {} uses the global defaults"})),
        Route::new(Method::POST, "/api/v1/groups/{id}/enable", Access::Admin, "Enforce in this group", |c| {
            Box::pin(set_enabled(c, true))
        }),
        Route::new(Method::POST, "/api/v1/groups/{id}/disable", Access::Admin, "Stop enforcing in this group", |c| {
            Box::pin(set_enabled(c, false))
        }),
        Route::new(Method::POST, "/api/v1/groups/{id}/channels", Access::Admin, "Require a channel in this group", |c| {
            Box::pin(link(c))
        })
        .body(json!({"type": "object", "required": ["channel_id"], "properties": {"channel_id": {"type": "integer"}}})),
        Route::new(Method::DELETE, "/api/v1/groups/{id}/channels/{channel_id}", Access::Admin, "Stop requiring a channel", |c| {
            Box::pin(unlink(c))
        }),
    ]
}

/// A group as lists show it.
pub fn summary(row: &GroupRow) -> Value {
    json!({
        "id": row.id,
        "bot_instance_id": row.bot_instance_id,
        "chat_id": row.chat_id,
        "title": row.title,
        "username": row.username,
        "enabled": row.enabled,
        "health": row.health,
        "health_detail": row.health_detail.as_ref().map(|d| &d.0),
        "health_checked_at": row.health_checked_at,
        "member_count": row.member_count,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    search: Option<String>,
    bot: Option<i64>,
    enabled: Option<bool>,
    health: Option<String>,
    sort: Option<String>,
    offset: Option<i64>,
    limit: Option<i64>,
}

async fn list(ctx: Ctx) -> ApiResult {
    let query: ListQuery = ctx.query()?;
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
    let items: Vec<Value> = rows.iter().map(summary).collect();
    respond::page(&items, filter.offset, filter.limit, total)
}

async fn detail(ctx: Ctx) -> ApiResult {
    let id = ctx.id(0, "group")?;
    let store = &ctx.state.store;
    let group = store.group(id).await?;
    let channels = store.channels_of_group(id).await?;
    let defaults = store.setting(DEFAULTS_KEY).await?.unwrap_or(Value::Null);
    let (effective, policy_error) = match Policy::resolve(&defaults, &group.policy.0) {
        Ok(policy) => (serde_json::to_value(policy).ok(), None),
        Err(error) => (None, Some(error.to_string())),
    };
    let now = now_ms();
    let day = store
        .verification_outcomes_in_group(id, now - DAY_MS, now)
        .await?;
    let week = store
        .verification_outcomes_in_group(id, now - 7 * DAY_MS, now)
        .await?;
    let mut shown = summary(&group);
    shown["channels"] = serde_json::to_value(
        channels
            .iter()
            .map(super::channels::view)
            .collect::<Vec<_>>(),
    )
    .unwrap_or_default();
    shown["policy"] =
        json!({ "overrides": group.policy.0, "effective": effective, "error": policy_error });
    shown["stats"] =
        json!({ "verifications_24h": counts(&day), "verifications_7d": counts(&week) });
    respond::ok(&shown)
}

fn counts(rows: &[crate::db::KeyCount]) -> Value {
    let total: i64 = rows.iter().map(|r| r.count).sum();
    let by_outcome: serde_json::Map<String, Value> = rows
        .iter()
        .map(|r| (r.key.clone(), r.count.into()))
        .collect();
    json!({ "total": total, "by_outcome": by_outcome })
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

async fn set_policy(ctx: Ctx) -> ApiResult {
    let id = ctx.id(0, "group")?;
    let overrides: Value = ctx.json()?;
    if !overrides.is_object() {
        return Err(ApiError::invalid(
            "policy",
            "the policy is a JSON object of the keys to override",
        ));
    }
    Policy::check_layer(&overrides)
        .map_err(|error| ApiError::invalid("policy", error.to_string()))?;
    // Valid alone is not enough: over the global defaults it must make a valid policy too
    // (`escalate_after` here with a default `escalate_to: warn`).
    let defaults = ctx
        .state
        .store
        .setting(DEFAULTS_KEY)
        .await?
        .unwrap_or(Value::Null);
    Policy::resolve(&defaults, &overrides).map_err(|error| {
        ApiError::invalid(
            "policy",
            format!("over the global defaults this would be invalid: {error}"),
        )
    })?;
    let before = ctx.state.store.group(id).await?;
    let group = ctx.state.store.set_group_policy(id, &overrides).await?;
    changed(&ctx, &group, "policy");
    super::audit::record(
        &ctx,
        "group.policy",
        "group",
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
    let group = ctx.state.store.set_group_enabled(id, enabled).await?;
    changed(&ctx, &group, if enabled { "enabled" } else { "disabled" });
    let action = if enabled {
        "group.enable"
    } else {
        "group.disable"
    };
    super::audit::record(
        &ctx,
        action,
        "group",
        Some(id.to_string()),
        Some(json!({"enabled": before.enabled})),
        Some(json!({"enabled": enabled})),
    )
    .await;
    respond::ok(&summary(&group))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LinkBody {
    channel_id: i64,
}

async fn link(ctx: Ctx) -> ApiResult {
    let id = ctx.id(0, "group")?;
    let body: LinkBody = ctx.json()?;
    let group = ctx.state.store.group(id).await?;
    let channel = ctx.state.store.channel(body.channel_id).await?;
    ctx.state.store.link_channel(id, channel.id).await?;
    changed(&ctx, &group, "channels");
    super::audit::record(
        &ctx,
        "group.link_channel",
        "group",
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
    let checked = ctx
        .state
        .enforcer
        .check_group_now(id)
        .await
        .map_err(|error| ApiError::internal(format!("checking the bot's rights: {error}")))?;
    respond::ok(&json!({
        "group_id": id,
        "channels": channels.iter().map(super::channels::view).collect::<Vec<_>>(),
        "health": checked.health,
        "problems": checked.problems,
    }))
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
        "group",
        Some(id.to_string()),
        Some(json!({"channel_id": channel_id})),
        None,
    )
    .await;
    channels_and_health(&ctx, id).await
}
