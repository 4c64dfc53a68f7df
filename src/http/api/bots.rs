//! Bots: list, add (token checked with `getMe`, stored encrypted, never returned), detail, enable,
//! disable, start, stop, restart, rotate token, delete.
//!
//! Lifecycle requests only change `bot_instances` and nudge the Registry; the answer says what will
//! happen (`202 Accepted`) and the final state arrives as a `bot_status` event. `enable` keeps a
//! parked bot parked; `start` is enable plus a new generation, so a failed bot or one with an
//! invalid token is tried again. `stop` and `disable` are the same wish.

use std::collections::HashMap;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;
use teloxide::requests::Requester;
use warp::http::{Method, StatusCode};

use crate::actors::BotStatus;
use crate::db::{BotRow, NewBot, NodeRow, now_ms};
use crate::domain::{BotToken, DesiredState, RunState};
use crate::http::problem::ApiError;
use crate::http::respond::{self, ApiResult, Page};
use crate::http::router::{Access, Ctx, Route};

use super::events::EventView;
use super::groups::GroupView;

/// How long `DELETE` waits for the bot to stop before removing it anyway.
const STOP_BEFORE_DELETE: Duration = Duration::from_secs(10);

pub fn routes() -> Vec<Route> {
    vec![
        Route::new(
            Method::GET,
            "/api/v1/bots",
            Access::Admin,
            "Every bot with its run state",
            |c| Box::pin(list(c)),
        )
        .returns::<Page<BotView>>(StatusCode::OK),
        Route::new(
            Method::POST,
            "/api/v1/bots",
            Access::Admin,
            "Add a bot (token checked with getMe)",
            |c| Box::pin(add(c)),
        )
        .accepts::<TokenBody>()
        .returns::<BotView>(StatusCode::CREATED),
        Route::new(
            Method::GET,
            "/api/v1/bots/{id}",
            Access::Admin,
            "A bot with its groups and recent events",
            |c| Box::pin(detail(c)),
        )
        .returns::<BotDetail>(StatusCode::OK),
        Route::new(
            Method::DELETE,
            "/api/v1/bots/{id}",
            Access::Admin,
            "Stop a bot, then remove it and its groups",
            |c| Box::pin(delete(c)),
        )
        .returns::<Deleted>(StatusCode::OK),
        Route::new(
            Method::POST,
            "/api/v1/bots/{id}/enable",
            Access::Admin,
            "Run the bot (a parked bot stays parked)",
            |c| Box::pin(lifecycle(c, Lifecycle::Enable)),
        )
        .returns::<Accepted>(StatusCode::ACCEPTED)
        // Nothing to carry out (already in that state): the same body, answered 200.
        .returns::<Accepted>(StatusCode::OK),
        Route::new(
            Method::POST,
            "/api/v1/bots/{id}/disable",
            Access::Admin,
            "Do not run the bot",
            |c| Box::pin(lifecycle(c, Lifecycle::Stop)),
        )
        .returns::<Accepted>(StatusCode::ACCEPTED)
        // Nothing to carry out (already in that state): the same body, answered 200.
        .returns::<Accepted>(StatusCode::OK),
        Route::new(
            Method::POST,
            "/api/v1/bots/{id}/start",
            Access::Admin,
            "Start the bot, retrying a parked one",
            |c| Box::pin(lifecycle(c, Lifecycle::Start)),
        )
        .returns::<Accepted>(StatusCode::ACCEPTED)
        // Nothing to carry out (already in that state): the same body, answered 200.
        .returns::<Accepted>(StatusCode::OK),
        Route::new(
            Method::POST,
            "/api/v1/bots/{id}/stop",
            Access::Admin,
            "Stop the bot",
            |c| Box::pin(lifecycle(c, Lifecycle::Stop)),
        )
        .returns::<Accepted>(StatusCode::ACCEPTED)
        // Nothing to carry out (already in that state): the same body, answered 200.
        .returns::<Accepted>(StatusCode::OK),
        Route::new(
            Method::POST,
            "/api/v1/bots/{id}/restart",
            Access::Admin,
            "Stop and start the bot",
            |c| Box::pin(lifecycle(c, Lifecycle::Restart)),
        )
        .returns::<Accepted>(StatusCode::ACCEPTED),
        Route::new(
            Method::POST,
            "/api/v1/bots/{id}/token",
            Access::Admin,
            "Replace the bot's token (same bot)",
            |c| Box::pin(rotate(c)),
        )
        .accepts::<TokenBody>()
        .returns::<BotView>(StatusCode::OK),
    ]
}

/// What the API shows of a bot: everything but the token.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct BotView {
    id: i64,
    telegram_bot_id: i64,
    username: String,
    display_name: String,
    desired_state: DesiredState,
    run_state: RunState,
    /// Why it is in its run state, for people.
    run_reason: Option<String>,
    /// Why it is in its run state, for programs (the dashboard's badge and "parked" come from
    /// this; see `reason_codes` in `GET /api/v1/vocabulary`). Text, so a code a newer version
    /// wrote still reads.
    run_reason_code: Option<String>,
    last_error: Option<String>,
    restart_count: i64,
    /// Epoch ms of the next start while in backoff.
    next_attempt_at: Option<i64>,
    /// Epoch ms.
    started_at: Option<i64>,
    /// Epoch ms.
    stopped_at: Option<i64>,
    /// Seconds since it started, while running.
    uptime_s: Option<i64>,
    /// The start attempt its supervisor is on: 0 after a clean start, 1 and up while it fails
    /// (looping from 3, see `GET /api/v1/attention`).
    attempt: Option<u32>,
    group_count: i64,
    /// The node that runs it now (`GET /api/v1/nodes`); null when none does.
    node: Option<NodeRef>,
    /// Epoch ms.
    created_at: i64,
    /// Epoch ms.
    updated_at: i64,
}

/// Which process runs a bot.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct NodeRef {
    id: String,
    host: String,
    pid: i64,
}

/// A bot with its groups and its latest events.
#[derive(Serialize, JsonSchema)]
struct BotDetail {
    #[serde(flatten)]
    bot: BotView,
    groups: Vec<GroupView>,
    /// The 20 newest, newest first.
    recent_events: Vec<EventView>,
    /// Its run-state transitions, newest first (the 50 newest within `log.retention_days`):
    /// every failure with its reason and time, every restart, every stop.
    history: Vec<Transition>,
}

/// One run-state transition of a bot, as recorded in its `bot_status` event.
#[derive(Serialize, JsonSchema)]
struct Transition {
    /// Unix ms.
    at: i64,
    state: RunState,
    /// Why, for programs (`reason_codes` in `GET /api/v1/vocabulary`).
    reason_code: Option<String>,
    /// Why, for people.
    reason: Option<String>,
    /// The start attempt it was on (1 and up while failing).
    attempt: Option<i64>,
    /// In backoff: when the next start is tried, Unix ms.
    next_attempt_at: Option<i64>,
}

/// A lifecycle request taken: what will happen, and where to watch it happen.
#[derive(Serialize, JsonSchema)]
struct Accepted {
    bot: BotView,
    /// What will happen, for people.
    will: &'static str,
    /// The event stream that reports the outcome.
    events: &'static str,
}

/// A bot removed.
#[derive(Serialize, JsonSchema)]
struct Deleted {
    deleted: i64,
    groups_removed: usize,
    /// Whether it was seen to stop before it was removed (false: it did not stop within 10 s,
    /// or the event feed lagged).
    stopped_first: bool,
}

fn view(row: &BotRow, live: Option<&BotStatus>, groups: i64, node: Option<&NodeRow>) -> BotView {
    let now = now_ms();
    let uptime_s = match (row.run_state, row.started_at) {
        (RunState::Running, Some(started)) => Some((now - started).max(0) / 1000),
        _ => None,
    };
    BotView {
        id: row.id,
        telegram_bot_id: row.telegram_bot_id,
        username: row.username.clone(),
        display_name: row.display_name.clone(),
        desired_state: row.desired_state,
        run_state: row.run_state,
        run_reason: row.run_reason.clone(),
        run_reason_code: row.run_reason_code.clone(),
        last_error: row.last_error.clone(),
        restart_count: row.restart_count,
        next_attempt_at: row.next_attempt_at,
        started_at: row.started_at,
        stopped_at: row.stopped_at,
        uptime_s,
        // This process's supervisor knows it first; the row tells for bots other nodes run.
        attempt: live
            .map(|s| s.attempt)
            .or(u32::try_from(row.run_attempt).ok()),
        group_count: groups,
        node: node.map(|n| NodeRef {
            id: n.id.clone(),
            host: n.host.clone(),
            pid: n.pid,
        }),
        created_at: row.created_at,
        updated_at: row.updated_at,
    }
}

/// What this process's supervisor last saw of each bot it manages: read from its view, never by a
/// call into its mailbox, so a page never waits on a busy supervisor.
fn live_status(ctx: &Ctx) -> HashMap<i64, BotStatus> {
    ctx.state
        .fleet
        .view()
        .bots()
        .into_iter()
        .map(|s| (s.bot_instance_id, s))
        .collect()
}

/// Which node runs each bot, as the nodes' rows (`bot id → node`).
async fn runners(ctx: &Ctx) -> Result<HashMap<i64, NodeRow>, ApiError> {
    let nodes: HashMap<String, NodeRow> = ctx
        .state
        .store
        .nodes()
        .await?
        .into_iter()
        .map(|n| (n.id.clone(), n))
        .collect();
    Ok(ctx
        .state
        .store
        .bot_runners()
        .await?
        .into_iter()
        .filter_map(|(bot, node)| nodes.get(&node).map(|n| (bot, n.clone())))
        .collect())
}

async fn list(ctx: Ctx) -> ApiResult {
    let bots = ctx.state.store.bots().await?;
    let counts = ctx.state.store.group_counts_by_bot().await?;
    let live = live_status(&ctx);
    let runners = runners(&ctx).await?;
    let items: Vec<BotView> = bots
        .iter()
        .map(|bot| {
            view(
                bot,
                live.get(&bot.id),
                counts.get(&bot.id).copied().unwrap_or(0),
                runners.get(&bot.id),
            )
        })
        .collect();
    respond::ok(&Page::all(items))
}

/// A bot's token, to add the bot or to replace its token.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct TokenBody {
    /// From @BotFather; stored encrypted, never returned.
    token: String,
    /// Whether to run it once added (default true); not taken by a token rotation.
    enabled: Option<bool>,
}

/// Parses the token and asks Telegram (the configured Bot API URL) who it belongs to.
async fn check_token(ctx: &Ctx, raw: &str) -> Result<(BotToken, teloxide::types::Me), ApiError> {
    let token =
        BotToken::parse(raw).map_err(|error| ApiError::invalid("token", error.to_string()))?;
    let url = ctx
        .state
        .telegram_api_url
        .parse()
        .map_err(|_| ApiError::internal("telegram.api_url is not a URL"))?;
    let bot =
        teloxide::Bot::with_client(token.expose(), ctx.state.http_client.clone()).set_api_url(url);
    match tokio::time::timeout(Duration::from_secs(10), bot.get_me()).await {
        Ok(Ok(me)) => Ok((token, me)),
        Ok(Err(error)) => match crate::telegram::classify(&error) {
            crate::telegram::Failure::InvalidToken => Err(ApiError::invalid(
                "token",
                "Telegram refused this token: it is revoked or mistyped",
            )),
            failure => Err(ApiError::new(
                StatusCode::BAD_GATEWAY,
                "telegram_unavailable",
                format!("could not check the token with Telegram: {failure}"),
            )),
        },
        Err(_) => Err(ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "telegram_timeout",
            "Telegram did not answer getMe within 10 s; nothing was stored",
        )),
    }
}

async fn add(ctx: Ctx) -> ApiResult {
    let body: TokenBody = ctx.json()?;
    let (token, me) = check_token(&ctx, &body.token).await?;
    let row = ctx
        .state
        .store
        .insert_bot(&NewBot {
            telegram_bot_id: token.bot_id(),
            username: me.username().to_string(),
            display_name: me.first_name.clone(),
            token_ciphertext: ctx.state.vault.encrypt_token(&token),
            owner_telegram_id: ctx.admin.as_ref().map(|a| a.telegram_user_id),
            desired_state: if body.enabled.unwrap_or(true) {
                DesiredState::Enabled
            } else {
                DesiredState::Disabled
            },
        })
        .await?;
    ctx.state.fleet.nudge(row.id);
    let shown = view(&row, None, 0, None);
    super::audit::record(
        &ctx,
        "bot.add",
        crate::domain::AuditTarget::Bot,
        Some(row.id.to_string()),
        None,
        serde_json::to_value(&shown).ok(),
    )
    .await;
    respond::with_status(StatusCode::CREATED, &shown)
}

async fn detail(ctx: Ctx) -> ApiResult {
    let id = ctx.id(0, "bot")?;
    let row = ctx.state.store.bot(id).await?;
    let groups = ctx.state.store.groups_of_bot(id).await?;
    let events = ctx.state.store.events_page(None, &[], Some(id), 20).await?;
    let status_kind = [crate::domain::EventKind::BotStatus.as_str().to_string()];
    let history = ctx
        .state
        .store
        .events_page(None, &status_kind, Some(id), 50)
        .await?;
    let live = live_status(&ctx);
    respond::ok(&BotDetail {
        bot: view(
            &row,
            live.get(&id),
            groups.len() as i64,
            runners(&ctx).await?.get(&id),
        ),
        groups: groups.iter().map(super::groups::summary).collect(),
        recent_events: events.iter().map(super::events::view).collect(),
        history: history.iter().filter_map(transition).collect(),
    })
}

/// A `bot_status` event as a transition; `None` for a payload without a known state.
fn transition(event: &crate::db::EventRow) -> Option<Transition> {
    let payload = &event.payload.0;
    let state: RunState = payload["state"].as_str()?.parse().ok()?;
    let text = |key: &str| payload[key].as_str().map(str::to_string);
    Some(Transition {
        at: event.created_at,
        state,
        reason_code: text("reason_code"),
        reason: text("reason"),
        attempt: payload["attempt"].as_i64(),
        next_attempt_at: payload["next_attempt_at"].as_i64(),
    })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Lifecycle {
    Enable,
    Start,
    Stop,
    Restart,
}

async fn lifecycle(ctx: Ctx, what: Lifecycle) -> ApiResult {
    let id = ctx.id(0, "bot")?;
    let store = &ctx.state.store;
    let before = store.bot(id).await?;
    let (row, action, will) = match what {
        Lifecycle::Enable => (
            store.set_desired_state(id, DesiredState::Enabled).await?,
            "bot.enable",
            if before.is_up() {
                "the bot is already running; nothing changes"
            } else if before.desired_state == DesiredState::Enabled {
                "the bot is already enabled; nothing changes (a bot parked as failed or with an invalid token stays parked until started)"
            } else {
                "the bot will run (a bot parked as failed or with an invalid token stays parked until started)"
            },
        ),
        Lifecycle::Start => (
            store.request_bot_start(id).await?,
            "bot.start",
            if before.is_up() {
                "the bot is already running; nothing changes (restart it to start it afresh)"
            } else {
                "the bot will be started"
            },
        ),
        Lifecycle::Stop => (
            store.set_desired_state(id, DesiredState::Disabled).await?,
            "bot.stop",
            if before.is_down() {
                "the bot is already stopped; nothing changes"
            } else {
                "the bot will be stopped after its in-flight updates finish"
            },
        ),
        Lifecycle::Restart => {
            if before.desired_state == DesiredState::Disabled {
                return Err(ApiError::conflict(
                    "the bot is stopped; start it instead of restarting it",
                ));
            }
            (
                store.request_bot_restart(id).await?,
                "bot.restart",
                "the bot will be stopped gracefully and started again",
            )
        }
    };
    // Nothing to carry out (a start of a running bot, a stop of a stopped one, an enable of an
    // enabled one): 200, not 202, and nothing changed to audit.
    let noop = match what {
        Lifecycle::Start => before.is_up(),
        Lifecycle::Stop => before.is_down(),
        Lifecycle::Enable => before.desired_state == DesiredState::Enabled,
        Lifecycle::Restart => false,
    };
    if !noop {
        ctx.state.fleet.nudge(id);
        if what == Lifecycle::Stop {
            delete_webhook(&ctx, id).await;
        }
        let states = |r: &BotRow| json!({ "desired_state": r.desired_state.as_str(), "run_state": r.run_state.as_str() });
        super::audit::record(
            &ctx,
            action,
            crate::domain::AuditTarget::Bot,
            Some(id.to_string()),
            Some(states(&before)),
            Some(states(&row)),
        )
        .await;
    }
    respond::with_status(
        if noop {
            StatusCode::OK
        } else {
            StatusCode::ACCEPTED
        },
        &Accepted {
            bot: view(&row, None, group_count(&ctx, id).await?, None),
            will,
            events: "/api/v1/events/stream?type=bot_status",
        },
    )
}

async fn rotate(ctx: Ctx) -> ApiResult {
    let id = ctx.id(0, "bot")?;
    let before = ctx.state.store.bot(id).await?;
    let body: TokenBody = ctx.json()?;
    if body.enabled.is_some() {
        return Err(ApiError::invalid(
            "enabled",
            "a token rotation does not change whether the bot runs",
        ));
    }
    let (token, _) = check_token(&ctx, &body.token).await?;
    if token.bot_id() != before.telegram_bot_id {
        return Err(ApiError::invalid(
            "token",
            format!(
                "this token belongs to bot {}, not to @{} ({})",
                token.bot_id(),
                before.username,
                before.telegram_bot_id
            ),
        ));
    }
    let row = ctx
        .state
        .store
        .replace_bot_token(id, &ctx.state.vault.encrypt_token(&token))
        .await?;
    ctx.state.fleet.nudge(id);
    super::audit::record(
        &ctx,
        "bot.rotate_token",
        crate::domain::AuditTarget::Bot,
        Some(id.to_string()),
        None,
        Some(json!({ "config_version": row.config_version })),
    )
    .await;
    respond::ok(&view(&row, None, group_count(&ctx, id).await?, None))
}

/// How many groups bot `id` protects (a reply about one bot shows the same count as the list).
async fn group_count(ctx: &Ctx, id: i64) -> Result<i64, crate::db::StoreError> {
    let counts = ctx.state.store.group_counts_by_bot().await?;
    Ok(counts.get(&id).copied().unwrap_or(0))
}

/// Stops Telegram posting to a bot being stopped or deleted (see [`crate::webhooks::delete_webhook_of`]).
async fn delete_webhook(ctx: &Ctx, id: i64) {
    let state = &ctx.state;
    crate::webhooks::delete_webhook_of(
        &state.store,
        &state.vault,
        &state.http_client,
        &state.telegram_api_url,
        id,
    )
    .await;
}

/// A bot in this state has no actor running anywhere.
fn is_at_rest(state: RunState) -> bool {
    matches!(state, RunState::Stopped | RunState::Failed)
}

/// Waits for the event saying bot `id` stopped (whichever process ran it: other processes' events
/// arrive through the relay). `false` if the feed lagged or ended first: the caller then does not
/// know.
async fn stopped_event(
    events: &mut tokio::sync::broadcast::Receiver<std::sync::Arc<crate::events::Event>>,
    id: i64,
) -> bool {
    loop {
        match events.recv().await {
            Ok(event)
                if event.bot_instance_id == Some(id)
                    && event.kind == crate::domain::EventKind::BotStatus.as_str()
                    && event.payload["state"]
                        .as_str()
                        .and_then(|state| state.parse::<RunState>().ok())
                        .is_some_and(is_at_rest) =>
            {
                return true;
            }
            Ok(_) => {}
            Err(_) => return false,
        }
    }
}

async fn delete(ctx: Ctx) -> ApiResult {
    let id = ctx.id(0, "bot")?;
    let store = &ctx.state.store;
    let before = store.bot(id).await?;
    let groups = store.groups_of_bot(id).await?.len();
    // Subscribed before the change, so the stop cannot happen between the two.
    let mut events = ctx.state.fleet.subscribe();
    let row = store.set_desired_state(id, DesiredState::Disabled).await?;
    ctx.state.fleet.nudge(id);
    let stopped = is_at_rest(row.run_state)
        || tokio::time::timeout(STOP_BEFORE_DELETE, stopped_event(&mut events, id))
            .await
            .is_ok_and(|stopped| stopped);
    // The token goes with the row: the last chance to stop Telegram posting to this bot.
    delete_webhook(&ctx, id).await;
    store.delete_bot(id).await?;
    ctx.state.fleet.nudge(id);
    super::audit::record(
        &ctx,
        "bot.delete",
        crate::domain::AuditTarget::Bot,
        Some(id.to_string()),
        serde_json::to_value(view(&before, None, groups as i64, None)).ok(),
        None,
    )
    .await;
    respond::ok(&Deleted {
        deleted: id,
        groups_removed: groups,
        stopped_first: stopped,
    })
}
