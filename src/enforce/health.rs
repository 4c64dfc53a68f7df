//! Permission health: the rights a bot needs (restrict and delete in the group, administrator in
//! each channel) are checked at `/protect`, periodically, when Telegram refuses an action, and when
//! a `my_chat_member` update says the bot's own status changed. A change is stored on the group,
//! published as a `health` event, and a loss is announced once in the group. The bot never leaves
//! a chat by itself.

use std::sync::Arc;

use serde_json::json;
use teloxide::prelude::Requester;
use teloxide::types::{ChatId, ChatMemberKind, ChatMemberUpdated, UserId};

use super::actions;
use super::directory::GroupView;
use super::texts::escape;
use super::{BotRuntime, Shared};

/// Re-checks every group of the bot every `health_interval`.
pub async fn periodic(shared: Arc<Shared>, bot: i64) {
    loop {
        tokio::time::sleep(shared.options.health_interval).await;
        let Some(runtime) = shared.runtime(bot) else {
            return;
        };
        if let Err(error) = check_bot(&shared, &runtime).await {
            tracing::warn!(bot_instance_id = bot, %error, "the periodic permission check failed");
        }
    }
}

pub async fn check_bot(shared: &Shared, runtime: &BotRuntime) -> anyhow::Result<()> {
    for group in shared.store.groups_of_bot(runtime.id()).await? {
        if !group.enabled {
            continue;
        }
        let view = shared.directory.view(group).await?;
        check_group(shared, runtime, &view).await?;
    }
    Ok(())
}

/// Telegram refused an action in this group: check why (at most once per half minute per group).
pub async fn action_refused(shared: &Shared, runtime: &BotRuntime, view: &GroupView) {
    let key = (runtime.id(), view.group.chat_id);
    if !shared.health_checked.entry(key).or_insert(()).is_fresh() {
        return;
    }
    if let Err(error) = check_group(shared, runtime, view).await {
        tracing::warn!(chat = view.group.chat_id, %error, "the permission check after a refusal failed");
    }
}

/// What the bot lacks in the group and its channels, each with the exact fix.
async fn problems(runtime: &BotRuntime, view: &GroupView) -> Vec<String> {
    let me = UserId(runtime.me.user_id.max(0) as u64);
    let mut problems = Vec::new();
    match rights(runtime, view.group.chat_id, me).await {
        Some(ChatMemberKind::Administrator(admin)) => {
            if !admin.can_restrict_members {
                problems.push(
                    "give the bot the right to restrict members (Ban users) in the group"
                        .to_string(),
                );
            }
            if !admin.can_delete_messages {
                problems.push("give the bot the right to delete messages in the group".to_string());
            }
        }
        Some(ChatMemberKind::Left | ChatMemberKind::Banned(_)) => {
            problems.push("add the bot to the group again, as an administrator".to_string())
        }
        _ => problems.push("make the bot an administrator of the group".to_string()),
    }
    for channel in &view.channels {
        if !matches!(
            rights(runtime, channel.chat_id, me).await,
            Some(ChatMemberKind::Administrator(_))
        ) {
            let name = channel
                .username
                .as_ref()
                .map(|u| format!("@{u}"))
                .unwrap_or_else(|| channel.title.clone());
            problems.push(format!("make the bot an administrator of {name}"));
        }
    }
    problems
}

/// The bot's own status in a chat, or `None` if Telegram would not say.
pub(super) async fn rights(runtime: &BotRuntime, chat: i64, me: UserId) -> Option<ChatMemberKind> {
    let request = runtime.calls.bot().get_chat_member(ChatId(chat), me);
    runtime
        .calls
        .run("getChatMember", None, request)
        .await
        .ok()
        .map(|m| m.kind)
}

/// Checks one group and records the result; a change is published, a loss announced once.
pub async fn check_group(
    shared: &Shared,
    runtime: &BotRuntime,
    view: &GroupView,
) -> anyhow::Result<()> {
    let found = problems(runtime, view).await;
    store(shared, runtime, view, found, true).await
}

async fn store(
    shared: &Shared,
    runtime: &BotRuntime,
    view: &GroupView,
    found: Vec<String>,
    announce: bool,
) -> anyhow::Result<()> {
    let previous = shared.store.group(view.group.id).await?.health;
    let health = if found.is_empty() { "ok" } else { "degraded" };
    let detail =
        (!found.is_empty()).then(|| json!({ "problems": found, "summary": found.join("; ") }));
    shared
        .store
        .set_group_health(view.group.id, health, detail.as_ref())
        .await?;
    shared
        .directory
        .invalidate(runtime.id(), view.group.chat_id);
    if previous == health {
        return Ok(());
    }
    shared.publish(
        runtime,
        "health",
        json!({ "group_id": view.group.id, "chat_id": view.group.chat_id, "title": view.group.title, "health": health, "problems": found }),
    );
    if health == "degraded" && announce {
        let problems = found
            .iter()
            .map(|p| escape(p))
            .collect::<Vec<_>>()
            .join("; ");
        let text = view.texts.render(
            view.policy.language,
            "health_lost",
            &[("problems", &problems)],
        );
        if let Err(error) = actions::say(shared, runtime, view.group.chat_id, text, None, 0).await {
            tracing::info!(chat = view.group.chat_id, %error, "the permission warning could not be posted");
        }
    }
    Ok(())
}

/// The bot's own membership changed in a group or channel.
pub async fn on_my_member(
    shared: &Arc<Shared>,
    runtime: &BotRuntime,
    change: &ChatMemberUpdated,
) -> anyhow::Result<()> {
    let chat = change.chat.id.0;
    let present = change.new_chat_member.kind.is_present();
    shared.publish(
        runtime,
        "activity",
        json!({
            "action": if present { "bot_membership_changed" } else { "bot_removed" },
            "chat_id": chat,
            "title": change.chat.title(),
            "status": format!("{:?}", change.new_chat_member.kind.status()).to_lowercase(),
        }),
    );
    if change.chat.is_channel() {
        for group in shared.store.groups_requiring_channel(chat).await? {
            if group.bot_instance_id == runtime.id() && group.enabled {
                let view = shared.directory.view(group).await?;
                check_group(shared, runtime, &view).await?;
            }
        }
        return Ok(());
    }
    let Some(view) = shared.directory.group(runtime.id(), chat).await? else {
        return Ok(());
    };
    if !present {
        // Removed: nothing can be asked or said there; record it as the reason.
        let found = vec!["add the bot to the group again, as an administrator".to_string()];
        return store(shared, runtime, &view, found, false).await;
    }
    check_group(shared, runtime, &view).await
}
