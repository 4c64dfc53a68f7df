//! Join requests Nezuko took up (policy `join_requests`): the pending ones of a group for the
//! dashboard (`GET /api/v1/groups/{id}/join-requests`), an administrator's approve or decline
//! (`POST /api/v1/join-requests/{id}/approve|decline`, audited), and the Mini App check page's check.
//!
//! `POST /api/v1/join-requests/{id}/check`: the Mini App check page (`/join/{id}`, `ui/join.html`)
//! asks Nezuko to check the person who opened it. No session ([`Access::Public`]): the caller
//! proves who they are with the `initData` Telegram gave the Mini App, signed with the request's
//! bot's token (`telegram::init_data`). A refused `initData` is audited: someone is trying
//! to approve a request that is not theirs, or a page was kept open past `initData`'s age.
//!
//! Answers: 200 with what the page shows, 401 for `initData` that is not Telegram's for this bot
//! or is too old, 403 for another user's request, 404 for no such request, 503 when the request's
//! bot does not run on this node.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;
use warp::http::{Method, StatusCode};

use super::audit;
use crate::db::JoinRequestRow;
use crate::domain::AuditTarget;
use crate::enforce::join_requests::{DecideError, PageError, PageState};
use crate::http::problem::ApiError;
use crate::http::respond::{self, ApiResult};
use crate::http::router::{Access, Ctx, Route};

pub fn routes() -> Vec<Route> {
    vec![
        Route::new(
            Method::POST,
            "/api/v1/join-requests/{id}/check",
            Access::Public,
            "The Mini App check page checks its user's subscriptions (authenticated by Telegram's initData)",
            |c| Box::pin(check(c)),
        )
        .accepts::<CheckBody>()
        .returns::<PageState>(StatusCode::OK),
        Route::new(
            Method::GET,
            "/api/v1/groups/{id}/join-requests",
            Access::Admin,
            "The group's pending join requests, oldest first (at most 500)",
            |c| Box::pin(pending(c)),
        )
        .returns::<Pending>(StatusCode::OK),
        Route::new(
            Method::POST,
            "/api/v1/join-requests/{id}/approve",
            Access::Admin,
            "Approve a pending join request (audited)",
            |c| Box::pin(decide(c, true)),
        )
        .returns::<JoinRequestView>(StatusCode::OK),
        Route::new(
            Method::POST,
            "/api/v1/join-requests/{id}/decline",
            Access::Admin,
            "Decline a pending join request (audited)",
            |c| Box::pin(decide(c, false)),
        )
        .returns::<JoinRequestView>(StatusCode::OK),
    ]
}

/// A join request as the dashboard shows it.
#[derive(Serialize, JsonSchema)]
struct JoinRequestView {
    id: i64,
    group_id: i64,
    user_id: i64,
    /// The requester's name as Telegram gave it.
    name: String,
    /// `pending`, `approved`, `declined` or `withdrawn`.
    status: String,
    /// A guard bot's query came with it (Bot API 10.1).
    guard_query: bool,
    /// Nezuko wrote to the requester what to join.
    told: bool,
    /// Unix milliseconds.
    requested_at: i64,
    decided_at: Option<i64>,
    /// `nezuko`, `timeout` or `admin:<user id>`.
    decided_by: Option<String>,
}

impl From<JoinRequestRow> for JoinRequestView {
    fn from(row: JoinRequestRow) -> Self {
        Self {
            id: row.id,
            group_id: row.group_id,
            user_id: row.user_id,
            name: row.name,
            status: row.status,
            guard_query: row.query_id.is_some(),
            told: row.message_id.is_some(),
            requested_at: row.requested_at,
            decided_at: row.decided_at,
            decided_by: row.decided_by,
        }
    }
}

/// A group's pending join requests.
#[derive(Serialize, JsonSchema)]
struct Pending {
    items: Vec<JoinRequestView>,
}

async fn pending(ctx: Ctx) -> ApiResult {
    let id = ctx.id(0, "group")?;
    // A group that does not exist is a 404 (the store says which).
    ctx.state.store.group(id).await?;
    let rows = ctx.state.store.pending_join_requests(id, 500).await?;
    respond::ok(&Pending {
        items: rows.into_iter().map(JoinRequestView::from).collect(),
    })
}

async fn decide(ctx: Ctx, approve: bool) -> ApiResult {
    let id = ctx.id(0, "join request")?;
    let admin = ctx
        .admin
        .as_ref()
        .map(|a| a.telegram_user_id)
        .unwrap_or_default();
    match ctx
        .state
        .enforcer
        .decide_join_request(id, approve, admin)
        .await
    {
        Ok(row) => {
            let verb = if approve { "approve" } else { "decline" };
            audit::record(
                &ctx,
                &format!("join_request.{verb}"),
                AuditTarget::JoinRequest,
                Some(id.to_string()),
                Some(json!({ "status": "pending", "group_id": row.group_id, "user_id": row.user_id })),
                Some(json!({ "status": row.status })),
            )
            .await;
            respond::ok(&JoinRequestView::from(row))
        }
        Err(DecideError::NoSuchRequest) => Err(ApiError::not_found(format!("join request {id}"))),
        Err(DecideError::NotHere) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "bot_elsewhere",
            DecideError::NotHere.to_string(),
        )),
        Err(error @ DecideError::Decided(_)) => Err(ApiError::conflict(error.to_string())),
        Err(DecideError::Failed(error)) => Err(failed(error)),
    }
}

/// A failure behind a request: the database's or Telegram's outage as a 503 saying so.
pub(super) fn failed(error: anyhow::Error) -> ApiError {
    match error.downcast::<crate::db::StoreError>() {
        Ok(store) => store.into(),
        Err(other) if other.chain().any(crate::telegram::is_token_refused_cause) => ApiError::new(
            StatusCode::CONFLICT,
            "invalid_token",
            "Telegram refused the bot's token (revoked or replaced in BotFather): the bot stops; \
             give it its new token (POST /api/v1/bots/{id}/token) and start it",
        ),
        Err(other) if other.chain().any(crate::telegram::is_halt_cause) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "bot_not_running",
            "the bot's runner stopped while asking Telegram; try again once the bot runs",
        ),
        Err(other) if other.chain().any(crate::telegram::is_weather_cause) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "telegram_unavailable",
            format!("Telegram did not answer ({other}); try again shortly"),
        ),
        Err(other) => ApiError::internal(other),
    }
}

/// What the check page sends.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct CheckBody {
    /// `Telegram.WebApp.initData` (the `tgWebAppData` Telegram put in the page's address), as is.
    init_data: String,
}

async fn check(ctx: Ctx) -> ApiResult {
    let id = ctx.id(0, "join request")?;
    let body: CheckBody = ctx.json()?;
    // Refusals are audited, so an address that keeps failing is held back as sign-ins are, and
    // cannot fill the audit log.
    let address = format!("join-check:{}", ctx.client_ip().unwrap_or_default());
    if let Err(wait_s) = ctx.state.throttle.check(&address) {
        return Err(ApiError::too_many(
            wait_s,
            format!("too many refused checks from this address; try again in {wait_s} s"),
        ));
    }
    match ctx
        .state
        .enforcer
        .check_join_page(id, &body.init_data)
        .await
    {
        Ok(state) => respond::ok(&state),
        Err(PageError::NoSuchRequest) => Err(ApiError::not_found(format!("join request {id}"))),
        Err(PageError::NotHere) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "bot_elsewhere",
            PageError::NotHere.to_string(),
        )),
        Err(error @ (PageError::InitData(_) | PageError::NotYours)) => {
            ctx.state.throttle.failed(&address);
            audit::record(
                &ctx,
                "join_request.check_refused",
                AuditTarget::JoinRequest,
                Some(id.to_string()),
                None,
                Some(json!({ "reason": error.to_string() })),
            )
            .await;
            Err(match error {
                PageError::NotYours => ApiError::forbidden("not_your_request", error.to_string()),
                _ => ApiError::unauthorized(error.to_string()),
            })
        }
        Err(PageError::Failed(error)) => Err(failed(error)),
    }
}
