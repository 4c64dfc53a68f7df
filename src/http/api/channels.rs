//! Channels: list (with how many groups require each), detail with linked groups, add, update,
//! remove. Removing a channel removes every group's requirement of it.

use serde::Deserialize;
use serde_json::{Value, json};
use warp::http::{Method, StatusCode};

use crate::db::{ChannelChange, ChannelRow, NewChannel};
use crate::http::problem::ApiError;
use crate::http::respond::{self, ApiResult};
use crate::http::router::{Access, Ctx, Route};

pub fn routes() -> Vec<Route> {
    let schema = json!({"type": "object", "properties": {
        "chat_id": {"type": "integer", "description": "Telegram id of the channel (-100…)"},
        "title": {"type": "string"}, "username": {"type": ["string", "null"]},
        "invite_link": {"type": ["string", "null"]}, "is_private": {"type": "boolean"}}});
    vec![
        Route::new(
            Method::GET,
            "/api/v1/channels",
            Access::Admin,
            "Channels with their number of groups",
            |c| Box::pin(list(c)),
        ),
        Route::new(
            Method::POST,
            "/api/v1/channels",
            Access::Admin,
            "Add a channel",
            |c| Box::pin(add(c)),
        )
        .body(schema.clone()),
        Route::new(
            Method::GET,
            "/api/v1/channels/{id}",
            Access::Admin,
            "A channel and the groups that require it",
            |c| Box::pin(detail(c)),
        ),
        Route::new(
            Method::PATCH,
            "/api/v1/channels/{id}",
            Access::Admin,
            "Change a channel's title, username, link or privacy",
            |c| Box::pin(update(c)),
        )
        .body(schema),
        Route::new(
            Method::DELETE,
            "/api/v1/channels/{id}",
            Access::Admin,
            "Remove a channel and every requirement of it",
            |c| Box::pin(remove(c)),
        ),
    ]
}

pub fn view(row: &ChannelRow) -> Value {
    json!({
        "id": row.id,
        "chat_id": row.chat_id,
        "title": row.title,
        "username": row.username,
        "invite_link": row.invite_link,
        "is_private": row.is_private,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
    })
}

async fn list(ctx: Ctx) -> ApiResult {
    let rows = ctx.state.store.list_channels().await?;
    let items: Vec<Value> = rows
        .iter()
        .map(|row| {
            let mut shown = view(&row.channel);
            shown["group_count"] = row.group_count.into();
            shown
        })
        .collect();
    respond::page(&items, 0, items.len() as i64, items.len() as i64)
}

async fn detail(ctx: Ctx) -> ApiResult {
    let id = ctx.id(0, "channel")?;
    let channel = ctx.state.store.channel(id).await?;
    let groups = ctx.state.store.groups_of_channel(id).await?;
    let mut shown = view(&channel);
    shown["groups"] = groups.iter().map(super::groups::summary).collect();
    respond::ok(&shown)
}

/// Absent means "unchanged"; null means "clear" (for the optional fields).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChannelBody {
    chat_id: Option<i64>,
    title: Option<String>,
    #[serde(default, deserialize_with = "crate::http::input::double_option")]
    username: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::http::input::double_option")]
    invite_link: Option<Option<String>>,
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
        "channel",
        Some(row.id.to_string()),
        None,
        Some(shown.clone()),
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
        "channel",
        Some(id.to_string()),
        Some(view(&before)),
        Some(view(&row)),
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
        "channel",
        Some(id.to_string()),
        Some(view(&before)),
        None,
    )
    .await;
    respond::ok(&json!({ "deleted": id, "groups_unlinked": groups.len() }))
}
