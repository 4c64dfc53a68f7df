//! `POST /telegram/{bot id}`: where Telegram delivers a bot's updates in webhook mode, on any node
//! (see [`crate::webhooks`]). No session ([`Access::SecretToken`]): the caller proves itself with
//! the bot's secret in `X-Telegram-Bot-Api-Secret-Token`, as Telegram sends it.
//!
//! Answers: 200 once the update is stored (or was stored before: a retry), 401 for a wrong or
//! missing secret (nothing is read or stored), 400 for a body that is not an update, 503 while
//! the database cannot store it (Telegram delivers it again later).

use schemars::JsonSchema;
use serde::Serialize;
use warp::http::{Method, StatusCode};

use crate::http::problem::ApiError;
use crate::http::respond::{self, ApiResult};
use crate::http::router::{Access, Ctx, Route};
use crate::webhooks::{DeliveryError, MAX_BODY_BYTES};

/// The header Telegram puts the webhook's `secret_token` in
/// (<https://core.telegram.org/bots/api#setwebhook>).
pub const SECRET_HEADER: &str = "x-telegram-bot-api-secret-token";

pub fn routes() -> Vec<Route> {
    vec![
        Route::new(
            Method::POST,
            "/telegram/{id}",
            Access::SecretToken,
            "Telegram delivers a bot's update (webhook mode; checked by the bot's secret token)",
            |c| Box::pin(deliver(c)),
        )
        // Refusing an update Telegram insists on would hold up its chat while Telegram retries.
        .body_limit(MAX_BODY_BYTES)
        .returns::<Delivered>(StatusCode::OK),
    ]
}

/// An update taken.
#[derive(Serialize, JsonSchema)]
struct Delivered {
    /// Always true: Telegram only looks at the status.
    ok: bool,
    /// It had been stored before (Telegram delivered it again).
    duplicate: bool,
}

async fn deliver(ctx: Ctx) -> ApiResult {
    let id = ctx.id(0, "bot")?;
    let secret = ctx.header(SECRET_HEADER);
    match ctx.state.webhooks.receive(id, secret, &ctx.body).await {
        Ok(stored) => respond::ok(&Delivered {
            ok: true,
            duplicate: !stored,
        }),
        Err(DeliveryError::Unauthorized) => {
            tracing::warn!(
                bot_instance_id = id,
                remote = ctx.client_ip().unwrap_or_default(),
                "a webhook delivery with a wrong or missing secret token was refused"
            );
            Err(ApiError::unauthorized(
                DeliveryError::Unauthorized.to_string(),
            ))
        }
        Err(error @ DeliveryError::NotAnUpdate(_)) => {
            Err(ApiError::bad_request("not_an_update", error.to_string()))
        }
        Err(DeliveryError::Store(error)) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_stored",
            format!("the update could not be stored ({error}); deliver it again later"),
        )),
    }
}
