//! Commands. Private chat: `/start` and `/help` with an inline menu. Groups (admins only):
//! `/protect`, `/unprotect`, `/status`, `/settings`; every reply, and the command itself, is deleted
//! after the group's `reply_ttl_s`.

use std::sync::Arc;

use serde_json::json;
use teloxide::payloads::{EditMessageTextSetters, SendMessageSetters};
use teloxide::prelude::Requester;
use teloxide::types::{
    CallbackQuery, ChatId, ChatMemberKind, InlineKeyboardButton, InlineKeyboardMarkup, Message,
    MessageOrigin, ParseMode, Recipient, UserId,
};

use super::actions::{self, channel_list};
use super::calls::Target;
use super::directory::GroupView;
use super::policy::{Language, Policy};
use super::texts::{Texts, escape};
use super::{BotRuntime, Shared, callbacks, health, settings_menu};
use crate::db::{NewChannel, NewGroup};

/// A command addressed to this bot: its name (without `/` and `@bot`) and its arguments.
fn parse<'a>(text: &'a str, username: &str) -> Option<(&'a str, Vec<&'a str>)> {
    let mut words = text.split_whitespace();
    let first = words.next()?.strip_prefix('/')?;
    let (name, target) = match first.split_once('@') {
        Some((name, target)) => (name, Some(target)),
        None => (first, None),
    };
    if target.is_some_and(|t| !t.eq_ignore_ascii_case(username)) {
        return None;
    }
    Some((name, words.collect()))
}

/// Private chat: `/start`, `/help`, anything else gets the same menu.
pub async fn private(
    shared: &Arc<Shared>,
    runtime: &BotRuntime,
    message: &Message,
) -> anyhow::Result<()> {
    let Some(text) = message.text() else {
        return Ok(());
    };
    if parse(text, &runtime.me.username).is_none() {
        return Ok(());
    }
    let texts = shared.directory.texts().await?;
    let language = language_of(
        message
            .from
            .as_ref()
            .and_then(|u| u.language_code.as_deref()),
    );
    let request = runtime
        .calls
        .bot()
        .send_message(message.chat.id, texts.render(language, "help", &[]))
        .parse_mode(ParseMode::Html)
        .reply_markup(help_menu(&texts, language, &runtime.me.username));
    runtime
        .calls
        .run("sendMessage", Target::chat(message.chat.id.0), request)
        .await?;
    Ok(())
}

fn language_of(code: Option<&str>) -> Language {
    match code {
        Some(code) if code.starts_with("es") => Language::Es,
        _ => Language::En,
    }
}

fn help_menu(texts: &Texts, language: Language, username: &str) -> InlineKeyboardMarkup {
    let mut rows = vec![vec![
        InlineKeyboardButton::callback(
            texts.render(language, "button_setup", &[]),
            format!("nz:h:setup:{}", language.code()),
        ),
        InlineKeyboardButton::callback(
            texts.render(language, "button_how", &[]),
            format!("nz:h:how:{}", language.code()),
        ),
    ]];
    if let Ok(url) = format!("https://t.me/{username}?startgroup=true").parse() {
        rows.push(vec![InlineKeyboardButton::url(
            texts.render(language, "button_add", &[]),
            url,
        )]);
    }
    InlineKeyboardMarkup::new(rows)
}

/// A help menu button: shows the page in place, with a way back.
pub async fn help_page(
    shared: &Arc<Shared>,
    runtime: &BotRuntime,
    query: &CallbackQuery,
    page: &str,
) -> anyhow::Result<()> {
    let Some(message) = query.regular_message() else {
        return callbacks::answer(runtime, query, None, false).await;
    };
    let language = match query.data.as_deref().and_then(|d| d.rsplit(':').next()) {
        Some("es") => Language::Es,
        _ => Language::En,
    };
    let texts = shared.directory.texts().await?;
    let (template, keyboard) = match page {
        "setup" | "how" => (
            if page == "setup" {
                "help_setup"
            } else {
                "help_how"
            },
            InlineKeyboardMarkup::new(vec![vec![InlineKeyboardButton::callback(
                texts.render(language, "button_back", &[]),
                format!("nz:h:menu:{}", language.code()),
            )]]),
        ),
        _ => ("help", help_menu(&texts, language, &runtime.me.username)),
    };
    let request = runtime
        .calls
        .bot()
        .edit_message_text(
            message.chat.id,
            message.id,
            texts.render(language, template, &[]),
        )
        .parse_mode(ParseMode::Html)
        .reply_markup(keyboard);
    runtime
        .calls
        .run("editMessageText", Target::chat(message.chat.id.0), request)
        .await?;
    callbacks::answer(runtime, query, None, false).await
}

/// Group commands; returns whether the message was one of ours (and so is not enforced on).
pub async fn group(
    shared: &Arc<Shared>,
    runtime: &BotRuntime,
    message: &Message,
) -> anyhow::Result<bool> {
    let Some((name, args)) = message.text().and_then(|t| parse(t, &runtime.me.username)) else {
        return Ok(false);
    };
    if !matches!(name, "protect" | "unprotect" | "status" | "settings") {
        return Ok(false);
    }
    let chat = message.chat.id.0;
    let existing = shared.directory.group(runtime.id(), chat).await?;
    let (texts, policy) = match &existing {
        Some(view) => (view.texts.clone(), view.policy.clone()),
        None => (shared.directory.texts().await?, Policy::default()),
    };
    let reply_ttl = policy.reply_ttl_s;
    if !is_admin(runtime, message).await {
        let text = texts.render(policy.language, "admins_only", &[]);
        reply(shared, runtime, message, text, None, reply_ttl).await?;
        return Ok(true);
    }
    let text = match name {
        "protect" => protect(shared, runtime, message, &args, &texts, policy.language).await?,
        "unprotect" => {
            unprotect(
                shared,
                runtime,
                chat,
                existing.as_deref(),
                &texts,
                policy.language,
            )
            .await?
        }
        "status" => status(existing.as_deref(), &texts, policy.language),
        _ => match existing.as_deref() {
            Some(view) => {
                let (text, keyboard) = settings_menu::render(view);
                reply(
                    shared,
                    runtime,
                    message,
                    text,
                    Some(keyboard),
                    reply_ttl.max(300),
                )
                .await?;
                return Ok(true);
            }
            None => texts.render(policy.language, "not_protected", &[]),
        },
    };
    reply(shared, runtime, message, text, None, reply_ttl).await?;
    Ok(true)
}

/// An admin wrote it: the creator or an administrator, or an anonymous admin (writing as the group).
pub async fn is_admin(runtime: &BotRuntime, message: &Message) -> bool {
    if message
        .sender_chat
        .as_ref()
        .is_some_and(|c| c.id == message.chat.id)
    {
        return true;
    }
    let Some(user) = &message.from else {
        return false;
    };
    is_admin_user(runtime, message.chat.id.0, user.id.0 as i64).await
}

/// Asks Telegram (not the cache): rights matter more than speed here.
pub async fn is_admin_user(runtime: &BotRuntime, chat: i64, user: i64) -> bool {
    let request = runtime
        .calls
        .bot()
        .get_chat_member(ChatId(chat), UserId(user.max(0) as u64));
    matches!(runtime.calls.run("getChatMember", None, request).await, Ok(m) if m.kind.is_privileged())
}

async fn reply(
    shared: &Shared,
    runtime: &BotRuntime,
    message: &Message,
    text: String,
    keyboard: Option<InlineKeyboardMarkup>,
    ttl_s: u64,
) -> anyhow::Result<()> {
    let chat = message.chat.id.0;
    actions::say(shared, runtime, chat, text, keyboard, ttl_s).await?;
    actions::delete_later(shared, runtime.id(), chat, message.id.0, ttl_s).await;
    Ok(())
}

/// `/protect @a [@b …]`, ids, or a reply to a forwarded channel post. Checks every right first and
/// names exactly what is missing; on success the group requires exactly these channels.
async fn protect(
    shared: &Arc<Shared>,
    runtime: &BotRuntime,
    message: &Message,
    args: &[&str],
    texts: &Texts,
    language: Language,
) -> anyhow::Result<String> {
    let chat = message.chat.id.0;
    let mut targets: Vec<Recipient> = args
        .iter()
        .filter_map(|arg| match arg.parse::<i64>() {
            Ok(id) => Some(Recipient::Id(ChatId(id))),
            Err(_) if arg.starts_with('@') && arg.len() > 1 => {
                Some(Recipient::ChannelUsername(arg.to_string()))
            }
            Err(_) => None,
        })
        .collect();
    if targets.is_empty()
        && let Some(MessageOrigin::Channel { chat: origin, .. }) =
            message.reply_to_message().and_then(|r| r.forward_origin())
    {
        targets.push(Recipient::Id(origin.id));
    }
    if targets.is_empty() {
        return Ok(texts.render(language, "protect_usage", &[]));
    }
    let bot_id = UserId(runtime.me.user_id.max(0) as u64);
    let mut problems = Vec::new();
    let group_rights = health::rights(runtime, chat, bot_id).await;
    match &group_rights {
        Some(ChatMemberKind::Administrator(admin)) => {
            if !admin.can_restrict_members {
                problems.push(
                    "• give me the right to restrict members (Ban users) in this group".to_string(),
                );
            }
            if !admin.can_delete_messages {
                problems.push("• give me the right to delete messages in this group".to_string());
            }
        }
        _ => problems.push(
            "• make me an administrator of this group (with Ban users and Delete messages)"
                .to_string(),
        ),
    }
    let mut channels = Vec::new();
    for target in targets {
        let label = match &target {
            Recipient::Id(id) => id.0.to_string(),
            Recipient::ChannelUsername(name) => name.clone(),
        };
        let info = runtime
            .calls
            .run("getChat", None, runtime.calls.bot().get_chat(target))
            .await;
        let Ok(info) = info else {
            problems.push(format!(
                "• I cannot see the channel {}: add me to it as an administrator",
                escape(&label)
            ));
            continue;
        };
        if !info.is_channel() {
            problems.push(format!("• {} is not a channel", escape(&label)));
            continue;
        }
        let name = info
            .username()
            .map(|u| format!("@{u}"))
            .unwrap_or_else(|| info.title().unwrap_or_default().to_string());
        match health::rights(runtime, info.id.0, bot_id).await {
            Some(ChatMemberKind::Administrator(_)) => channels.push(info),
            _ => problems.push(format!(
                "• make me an administrator of {} (so I can see who joins and leaves)",
                escape(&name)
            )),
        }
    }
    if !problems.is_empty() {
        return Ok(texts.render(
            language,
            "protect_missing",
            &[("problems", &problems.join("\n"))],
        ));
    }
    let group = shared
        .store
        .upsert_group(&NewGroup {
            bot_instance_id: runtime.id(),
            chat_id: chat,
            title: message.chat.title().unwrap_or_default().to_string(),
            username: message.chat.username().map(str::to_string),
        })
        .await?;
    let mut links = Vec::new();
    let mut rows = Vec::new();
    for info in &channels {
        let mut invite_link = info.invite_link().map(str::to_string);
        if info.username().is_none() && invite_link.is_none() {
            let request = runtime.calls.bot().create_chat_invite_link(info.id);
            invite_link = runtime
                .calls
                .run("createChatInviteLink", None, request)
                .await
                .ok()
                .map(|l| l.invite_link);
        }
        let row = shared
            .store
            .upsert_channel(&NewChannel {
                chat_id: info.id.0,
                title: info.title().unwrap_or_default().to_string(),
                username: info.username().map(str::to_string),
                invite_link,
                is_private: info.username().is_none(),
            })
            .await?;
        links.push((row.id, json!({ "administrator": true })));
        rows.push(row);
    }
    shared.store.replace_channel_links(group.id, &links).await?;
    shared.store.set_group_enabled(group.id, true).await?;
    shared.store.set_group_health(group.id, "ok", None).await?;
    shared.directory.invalidate(runtime.id(), chat);
    shared.publish(
        runtime,
        "activity",
        json!({ "action": "group_protected", "group_id": group.id, "chat_id": chat, "channels": rows.iter().map(|c| c.chat_id).collect::<Vec<_>>() }),
    );
    Ok(texts.render(
        language,
        "protect_done",
        &[("channels", &channel_list(&rows))],
    ))
}

/// `/unprotect`: enforcement stops and what Nezuko restricted here is released.
async fn unprotect(
    shared: &Arc<Shared>,
    runtime: &BotRuntime,
    chat: i64,
    existing: Option<&GroupView>,
    texts: &Texts,
    language: Language,
) -> anyhow::Result<String> {
    let Some(view) = existing.filter(|v| v.group.enabled) else {
        return Ok(texts.render(language, "not_protected", &[]));
    };
    shared.store.set_group_enabled(view.group.id, false).await?;
    shared.directory.invalidate(runtime.id(), chat);
    for record in shared
        .store
        .active_restrictions_in_chat(runtime.id(), chat)
        .await?
    {
        if let Err(error) = actions::lift(shared, runtime, chat, record.user_id, None).await {
            tracing::warn!(chat, user = record.user_id, %error, "could not release a member on /unprotect");
        }
    }
    shared.publish(
        runtime,
        "activity",
        json!({ "action": "group_unprotected", "group_id": view.group.id, "chat_id": chat }),
    );
    Ok(texts.render(language, "unprotect_done", &[]))
}

fn status(existing: Option<&GroupView>, texts: &Texts, language: Language) -> String {
    let Some(view) = existing.filter(|v| v.enforcing()) else {
        return texts.render(language, "not_protected", &[]);
    };
    let policy = &view.policy;
    let health = match view.group.health.as_str() {
        "degraded" => format!(
            "⚠ {}",
            escape(
                &view
                    .group
                    .health_detail
                    .as_ref()
                    .map(|d| d.0["summary"].as_str().unwrap_or_default().to_string())
                    .unwrap_or_default()
            )
        ),
        other => other.to_string(),
    };
    texts.render(
        language,
        "status",
        &[
            ("group", &escape(&view.group.title)),
            ("channels", &channel_list(&view.channels)),
            ("require", &format!("{:?}", policy.require).to_lowercase()),
            ("action", &format!("{:?}", policy.action).to_lowercase()),
            ("health", &health),
            (
                "fail_mode",
                &format!("{:?}", policy.fail_mode).to_lowercase(),
            ),
            ("language", policy.language.code()),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn commands_for_other_bots_are_not_ours() {
        assert_eq!(
            parse("/protect @a @b", "guard_bot"),
            Some(("protect", vec!["@a", "@b"]))
        );
        assert_eq!(
            parse("/status@Guard_Bot", "guard_bot"),
            Some(("status", vec![]))
        );
        assert_eq!(parse("/status@other_bot", "guard_bot"), None);
        assert_eq!(parse("hello", "guard_bot"), None);
    }
}
