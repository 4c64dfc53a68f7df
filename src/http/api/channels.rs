//! Channels: list (with how many groups require each), detail with linked groups, add, update,
//! remove. Removing a channel removes every group's requirement of it.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use warp::http::{Method, StatusCode};

use crate::db::{ChannelChange, ChannelRow, NewChannel};
use crate::http::problem::ApiError;
use crate::http::respond::{self, ApiResult, Page};
use crate::http::router::{Access, Ctx, Route};

use super::groups::GroupView;

pub fn routes() -> Vec<Route> {
    vec![
        Route::new(
            Method::GET,
            "/api/v1/channels",
            Access::Admin,
            "Channels with their number of groups",
            |c| Box::pin(list(c)),
        )
        .returns::<Page<ChannelListItem>>(StatusCode::OK),
        Route::new(
            Method::POST,
            "/api/v1/channels",
            Access::Admin,
            "Add a channel",
            |c| Box::pin(add(c)),
        )
        .accepts::<ChannelBody>()
        .returns::<ChannelView>(StatusCode::CREATED),
        Route::new(
            Method::GET,
            "/api/v1/channels/{id}",
            Access::Admin,
            "A channel and the groups that require it",
            |c| Box::pin(detail(c)),
        )
        .returns::<ChannelDetail>(StatusCode::OK),
        Route::new(
            Method::PATCH,
            "/api/v1/channels/{id}",
            Access::Admin,
            "Change a channel's title, username, link or privacy",
            |c| Box::pin(update(c)),
        )
        .accepts::<ChannelBody>()
        .returns::<ChannelView>(StatusCode::OK),
        Route::new(
            Method::DELETE,
            "/api/v1/channels/{id}",
            Access::Admin,
            "Remove a channel and every requirement of it",
            |c| Box::pin(remove(c)),
        )
        .returns::<ChannelDeleted>(StatusCode::OK),
    ]
}

/// A channel members must join.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ChannelView {
    id: i64,
    /// Telegram's chat id (-100…).
    chat_id: i64,
    title: String,
    /// Without `@`.
    username: Option<String>,
    /// `https://t.me/…`: the join button of a private channel.
    invite_link: Option<String>,
    is_private: bool,
    /// Epoch ms.
    created_at: i64,
    /// Epoch ms.
    updated_at: i64,
}

pub fn view(row: &ChannelRow) -> ChannelView {
    ChannelView {
        id: row.id,
        chat_id: row.chat_id,
        title: row.title.clone(),
        username: row.username.clone(),
        invite_link: row.invite_link.clone(),
        is_private: row.is_private,
        created_at: row.created_at,
        updated_at: row.updated_at,
    }
}

/// A channel and how many groups require it.
#[derive(Serialize, JsonSchema)]
struct ChannelListItem {
    #[serde(flatten)]
    channel: ChannelView,
    group_count: i64,
}

/// A channel and the groups that require it.
#[derive(Serialize, JsonSchema)]
struct ChannelDetail {
    #[serde(flatten)]
    channel: ChannelView,
    groups: Vec<GroupView>,
}

/// A channel removed.
#[derive(Serialize, JsonSchema)]
struct ChannelDeleted {
    deleted: i64,
    /// Groups that required it and no longer do.
    groups_unlinked: usize,
}

async fn list(ctx: Ctx) -> ApiResult {
    let rows = ctx.state.store.list_channels().await?;
    let items: Vec<ChannelListItem> = rows
        .iter()
        .map(|row| ChannelListItem {
            channel: view(&row.channel),
            group_count: row.group_count,
        })
        .collect();
    respond::ok(&Page::all(items))
}

async fn detail(ctx: Ctx) -> ApiResult {
    let id = ctx.id(0, "channel")?;
    let channel = ctx.state.store.channel(id).await?;
    let groups = ctx.state.store.groups_of_channel(id).await?;
    respond::ok(&ChannelDetail {
        channel: view(&channel),
        groups: groups.iter().map(super::groups::summary).collect(),
    })
}

/// A channel to add (`chat_id` and `title` required), or the fields to change: absent means
/// "unchanged"; null means "clear" (for the optional fields).
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ChannelBody {
    /// Telegram's chat id (-100…); only when adding.
    chat_id: Option<i64>,
    /// 1 to 255 characters.
    title: Option<String>,
    /// `@name` or `name`: 4 to 32 of A-Z, a-z, 0-9 and `_`.
    #[serde(default, deserialize_with = "crate::http::input::double_option")]
    username: Option<Option<String>>,
    /// `https://t.me/…`; required for a private channel.
    #[serde(default, deserialize_with = "crate::http::input::double_option")]
    invite_link: Option<Option<String>>,
    /// Default: true when there is no username.
    is_private: Option<bool>,
}

fn check_title(title: &str) -> Result<String, ApiError> {
    let title = title.trim();
    if title.is_empty() || title.chars().count() > 255 {
        return Err(ApiError::invalid(
            "title",
            "title must be 1 to 255 characters",
        ));
    }
    Ok(title.to_string())
}

/// `@name` or `name`: 4 to 32 of A-Z, a-z, 0-9 and `_`, as Telegram allows.
fn check_username(username: Option<String>) -> Result<Option<String>, ApiError> {
    let Some(name) = username
        .map(|u| u.trim().trim_start_matches('@').to_string())
        .filter(|u| !u.is_empty())
    else {
        return Ok(None);
    };
    let valid = (4..=32).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !valid {
        return Err(ApiError::invalid(
            "username",
            "a username is 4 to 32 letters, digits or underscores",
        ));
    }
    Ok(Some(name))
}

fn check_link(link: Option<String>) -> Result<Option<String>, ApiError> {
    let Some(link) = link.map(|l| l.trim().to_string()).filter(|l| !l.is_empty()) else {
        return Ok(None);
    };
    if !(link.starts_with("https://t.me/") || link.starts_with("https://telegram.me/"))
        || link.len() > 255
    {
        return Err(ApiError::invalid(
            "invite_link",
            "an invite link starts with https://t.me/",
        ));
    }
    Ok(Some(link))
}

async fn add(ctx: Ctx) -> ApiResult {
    let body: ChannelBody = ctx.json()?;
    let chat_id = body
        .chat_id
        .ok_or_else(|| ApiError::invalid("chat_id", "chat_id is required"))?;
    if chat_id >= 0 {
        return Err(ApiError::invalid(
            "chat_id",
            "a channel's chat id is negative (-100…)",
        ));
    }
    let title = check_title(body.title.as_deref().unwrap_or(""))?;
    let username = check_username(body.username.flatten())?;
    let invite_link = check_link(body.invite_link.flatten())?;
    let is_private = body.is_private.unwrap_or(username.is_none());
    if is_private && invite_link.is_none() {
        return Err(ApiError::invalid(
            "invite_link",
            "a private channel needs an invite link for its join button",
        ));
    }
    let row = ctx
        .state
        .store
        .insert_channel(&NewChannel {
            chat_id,
            title,
            username,
            invite_link,
            is_private,
        })
        .await?;
    let shown = view(&row);
    super::audit::record(
        &ctx,
        "channel.add",
        crate::domain::AuditTarget::Channel,
        Some(row.id.to_string()),
        None,
        serde_json::to_value(&shown).ok(),
    )
    .await;
    respond::with_status(StatusCode::CREATED, &shown)
}

async fn update(ctx: Ctx) -> ApiResult {
    let id = ctx.id(0, "channel")?;
    let body: ChannelBody = ctx.json()?;
    if body.chat_id.is_some() {
        return Err(ApiError::invalid(
            "chat_id",
            "a channel's chat id cannot change; add the other channel instead",
        ));
    }
    let before = ctx.state.store.channel(id).await?;
    let change = ChannelChange {
        title: body.title.as_deref().map(check_title).transpose()?,
        username: body.username.map(check_username).transpose()?,
        invite_link: body.invite_link.map(check_link).transpose()?,
        is_private: body.is_private,
    };
    let private = change.is_private.unwrap_or(before.is_private);
    let link = change
        .invite_link
        .clone()
        .unwrap_or_else(|| before.invite_link.clone());
    if private && link.is_none() {
        return Err(ApiError::invalid(
            "invite_link",
            "a private channel needs an invite link for its join button",
        ));
    }
    let row = ctx.state.store.update_channel(id, &change).await?;
    ctx.state.enforcer.invalidate_all();
    super::audit::record(
        &ctx,
        "channel.update",
        crate::domain::AuditTarget::Channel,
        Some(id.to_string()),
        serde_json::to_value(view(&before)).ok(),
        serde_json::to_value(view(&row)).ok(),
    )
    .await;
    respond::ok(&view(&row))
}

async fn remove(ctx: Ctx) -> ApiResult {
    let id = ctx.id(0, "channel")?;
    let before = ctx.state.store.channel(id).await?;
    let groups = ctx.state.store.groups_of_channel(id).await?;
    ctx.state.store.delete_channel(id).await?;
    ctx.state.enforcer.invalidate_all();
    super::audit::record(
        &ctx,
        "channel.delete",
        crate::domain::AuditTarget::Channel,
        Some(id.to_string()),
        serde_json::to_value(view(&before)).ok(),
        None,
    )
    .await;
    respond::ok(&ChannelDeleted {
        deleted: id,
        groups_unlinked: groups.len(),
    })
}
