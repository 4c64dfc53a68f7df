//! `POST /api/v1/groups`: protect a supergroup or a channel from the dashboard, as `/protect` does
//! in a group (the same checks, through the same bot). It is the only way to protect a channel,
//! which sends no commands; a protected channel is guarded at the door through join requests.
//!
//! Answers: 201 with the protected chat and its channels; 422 `missing_rights` when the bot lacks
//! a right or cannot use a channel (`problems` lists each fix, nothing changed); 422
//! `invalid_field` for an address that is not one, a private chat or a basic group, or a chat the
//! bot cannot see (`chat`), or no, too many or malformed channels (`channels`); 404 for no such
//! bot; 409 `chat_taken` when another bot enforces there, `bot_not_running` when the bot is not
//! running; 503 `bot_elsewhere` when it runs on another node.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;
use warp::http::{Method, StatusCode};

use super::channels::ChannelView;
use super::groups::{GroupView, summary};
use super::join_requests::failed;
use crate::domain::{AuditTarget, RunState};
use crate::enforce::protect::{ProtectError, Protection};
use crate::http::problem::ApiError;
use crate::http::respond::{self, ApiResult};
use crate::http::router::{Access, Ctx, Route};

pub fn routes() -> Vec<Route> {
    vec![
        Route::new(
            Method::POST,
            "/api/v1/groups",
            Access::Admin,
            "Protect a supergroup or a channel (the bot checks its rights there and in each channel first)",
            |c| Box::pin(create(c)),
        )
        .accepts::<ProtectBody>()
        .returns::<ProtectedChat>(StatusCode::CREATED),
    ]
}

/// The chat to protect and what it requires.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ProtectBody {
    /// Nezuko's id of the bot that protects the chat; it must be running.
    bot_instance_id: i64,
    /// The supergroup or channel: `@username` or Telegram's chat id (`-100…`).
    chat: String,
    /// The channels a member must follow, each `@username` or chat id; the bot must administer
    /// each. They replace what the chat required before.
    channels: Vec<String>,
}

/// A chat just protected.
#[derive(Serialize, JsonSchema)]
struct ProtectedChat {
    group: GroupView,
    channels: Vec<ChannelView>,
}

async fn create(ctx: Ctx) -> ApiResult {
    let body: ProtectBody = ctx.json()?;
    let bot = ctx.state.store.bot(body.bot_instance_id).await?;
    let outcome = ctx
        .state
        .enforcer
        .protect_chat(bot.id, &body.chat, &body.channels)
        .await;
    let (group, channels) = match outcome {
        Ok(Protection::Done { group, channels }) => (group, channels),
        Ok(Protection::Missing(problems)) => {
            let english: Vec<String> = problems.iter().map(|p| p.english()).collect();
            let mut error = ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "missing_rights",
                format!("nothing changed: {}", english.join("; ")),
            );
            error.extra = Some(json!({ "problems": english }));
            return Err(error);
        }
        Ok(Protection::Taken { username, .. }) => return Err(super::groups::taken(&username)),
        Err(ProtectError::NotHere) if bot.run_state != RunState::Running => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "bot_not_running",
                format!(
                    "@{} is not running: start it first, it asks Telegram about the chat",
                    bot.username
                ),
            ));
        }
        Err(ProtectError::NotHere) => {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "bot_elsewhere",
                "the bot runs on another node: send this to the node that runs it",
            ));
        }
        Err(
            error @ (ProtectError::BadAddress(_)
            | ProtectError::Unseen(_)
            | ProtectError::NotProtectable(_)),
        ) => {
            return Err(ApiError::invalid("chat", error.to_string()));
        }
        Err(
            error @ (ProtectError::NoChannels
            | ProtectError::BadChannel(_)
            | ProtectError::TooManyChannels),
        ) => {
            return Err(ApiError::invalid("channels", error.to_string()));
        }
        Err(ProtectError::Failed(error)) => return Err(failed(error)),
    };
    ctx.state.fleet.publisher().publish(
        crate::domain::EventKind::SettingsChanged,
        Some(group.bot_instance_id),
        json!({ "scope": "group", "group_id": group.id, "change": "protected" }),
    );
    super::audit::record(
        &ctx,
        "group.protect",
        AuditTarget::Group,
        Some(group.id.to_string()),
        None,
        Some(json!({
            "chat_id": group.chat_id,
            "chat_type": group.chat_type,
            "channels": channels.iter().map(|c| c.chat_id).collect::<Vec<_>>(),
        })),
    )
    .await;
    respond::with_status(
        StatusCode::CREATED,
        &ProtectedChat {
            group: summary(&group),
            channels: channels.iter().map(super::channels::view).collect(),
        },
    )
}
