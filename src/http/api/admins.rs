//! The people allowed into the dashboard besides the owner. Only the owner may change the list;
//! removing an admin ends their sessions at once.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use warp::http::{Method, StatusCode};

use crate::db::AdminRow;
use crate::http::problem::ApiError;
use crate::http::respond::{self, ApiResult};
use crate::http::router::{Access, Ctx, Route};

pub fn routes() -> Vec<Route> {
    vec![
        Route::new(
            Method::GET,
            "/api/v1/admins",
            Access::Admin,
            "The owner and the admins",
            |c| Box::pin(list(c)),
        )
        .returns::<Admins>(StatusCode::OK),
        Route::new(
            Method::POST,
            "/api/v1/admins",
            Access::Owner,
            "Let a Telegram user in (owner only)",
            |c| Box::pin(add(c)),
        )
        .accepts::<NewAdmin>()
        .returns::<AdminRow>(StatusCode::CREATED),
        Route::new(
            Method::DELETE,
            "/api/v1/admins/{user_id}",
            Access::Owner,
            "Remove an admin and end their sessions (owner only)",
            |c| Box::pin(remove(c)),
        )
        .returns_empty(StatusCode::NO_CONTENT),
    ]
}

/// The people allowed in.
#[derive(Serialize, JsonSchema)]
struct Admins {
    /// The owner's Telegram user id (configured, not stored); null when none is set.
    owner: Option<i64>,
    items: Vec<AdminRow>,
}

async fn list(ctx: Ctx) -> ApiResult {
    let items = ctx.state.store.admins().await?;
    respond::ok(&Admins {
        owner: ctx.state.auth.owner,
        items,
    })
}

/// A Telegram user to let in.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct NewAdmin {
    /// Positive.
    telegram_user_id: i64,
    /// 1 to 128 characters.
    display_name: String,
    /// Without or with the leading `@`.
    username: Option<String>,
}

async fn add(ctx: Ctx) -> ApiResult {
    let body: NewAdmin = ctx.json()?;
    if body.telegram_user_id <= 0 {
        return Err(ApiError::invalid(
            "telegram_user_id",
            "a Telegram user id is a positive integer",
        ));
    }
    let name = body.display_name.trim();
    if name.is_empty() || name.chars().count() > 128 {
        return Err(ApiError::invalid(
            "display_name",
            "display_name must be 1 to 128 characters",
        ));
    }
    if ctx.state.auth.owner == Some(body.telegram_user_id) {
        return Err(ApiError::conflict("the owner is always allowed in"));
    }
    let admin = ctx
        .state
        .store
        .add_admin(&AdminRow {
            telegram_user_id: body.telegram_user_id,
            username: body
                .username
                .map(|u| u.trim_start_matches('@').to_string())
                .filter(|u| !u.is_empty()),
            display_name: name.to_string(),
            added_by: ctx.admin.as_ref().map(|a| a.telegram_user_id),
            created_at: 0,
        })
        .await?;
    let after = serde_json::to_value(&admin).ok();
    super::audit::record(
        &ctx,
        "admin.add",
        crate::domain::AuditTarget::Admin,
        Some(admin.telegram_user_id.to_string()),
        None,
        after,
    )
    .await;
    respond::with_status(StatusCode::CREATED, &admin)
}

async fn remove(ctx: Ctx) -> ApiResult {
    let user = ctx.id(0, "Telegram user")?;
    let before = ctx
        .state
        .store
        .admin(user)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("admin {user}")))?;
    ctx.state.store.remove_admin(user).await?;
    super::audit::record(
        &ctx,
        "admin.remove",
        crate::domain::AuditTarget::Admin,
        Some(user.to_string()),
        serde_json::to_value(&before).ok(),
        None,
    )
    .await;
    respond::no_content()
}
