//! Commands. Private chat: `/start` and `/help` with an inline menu. Groups (admins only):
//! `/protect`, `/unprotect`, `/status`, `/settings`; every reply, and the command itself, is deleted
//! after the group's `reply_ttl_s`.

use serde_json::json;
use teloxide::payloads::{EditMessageTextSetters, SendMessageSetters};
use teloxide::prelude::Requester;
use teloxide::types::{
    CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message, MessageOrigin, ParseMode,
    Recipient,
};

use super::actions;
use super::calls::Target;
use super::context::Turn;
use super::directory::GroupView;
use super::health::{self, Problem};
use super::policy::{Action, FailMode, JoinRequests, Language, Require};
use super::protect::{self, Protection};
use super::say::{self, channel_list};
use super::settings_menu;
use super::standing;
use super::texts::{Texts, escape};
use crate::domain::{EndReason, EventKind};

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
pub async fn private(turn: &Turn, message: &Message) -> anyhow::Result<()> {
    let Some(text) = message.text() else {
        return Ok(());
    };
    if parse(text, &turn.runtime.me.username).is_none() {
        return Ok(());
    }
    let (defaults, texts) = turn.shared.directory.defaults().await?;
    let language = language_of(
        message
            .from
            .as_ref()
            .and_then(|u| u.language_code.as_deref()),
        defaults.language,
    );
    let request = turn
        .calls()
        .bot()
        .send_message(message.chat.id, texts.render(language, "help", &[]))
        .parse_mode(ParseMode::Html)
        .reply_markup(help_menu(&texts, language, &turn.runtime.me.username));
    turn.calls()
        .run("sendMessage", Target::chat(message.chat.id.0), request)
        .await?;
    Ok(())
}

/// The user's own language when the catalogue has it, else the platform's default.
fn language_of(code: Option<&str>, default: Language) -> Language {
    code.and_then(|code| {
        Language::ALL
            .into_iter()
            .find(|l| code.split('-').next() == Some(l.code()))
    })
    .unwrap_or(default)
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
pub async fn help_page(turn: &Turn, query: &CallbackQuery, page: &str) -> anyhow::Result<()> {
    let Some(message) = query.regular_message() else {
        return say::answer_callback_query(turn, query, None, false).await;
    };
    let language = match query.data.as_deref().and_then(|d| d.rsplit(':').next()) {
        Some("es") => Language::Es,
        _ => Language::En,
    };
    let texts = turn.shared.directory.texts().await?;
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
        _ => (
            "help",
            help_menu(&texts, language, &turn.runtime.me.username),
        ),
    };
    let request = turn
        .calls()
        .bot()
        .edit_message_text(
            message.chat.id,
            message.id,
            texts.render(language, template, &[]),
        )
        .parse_mode(ParseMode::Html)
        .reply_markup(keyboard);
    turn.calls()
        .run("editMessageText", Target::chat(message.chat.id.0), request)
        .await?;
    say::answer_callback_query(turn, query, None, false).await
}

/// Group commands; returns whether the message was one of ours (and so is not enforced on).
/// Replies go to the topic the command was sent in, in the group's language (the global default
/// language for a group with none of its own yet).
pub async fn group(turn: &Turn, message: &Message) -> anyhow::Result<bool> {
    let Some((name, args)) = message
        .text()
        .and_then(|t| parse(t, &turn.runtime.me.username))
    else {
        return Ok(false);
    };
    if !matches!(name, "protect" | "unprotect" | "status" | "settings") {
        return Ok(false);
    }
    let chat = message.chat.id.0;
    let thread = message.thread_id.map(|t| t.0.0);
    let existing = turn.shared.directory.group(turn.bot(), chat).await?;
    let (policy, texts) = match &existing {
        Some(view) => (view.policy.clone(), view.texts.clone()),
        None => turn.shared.directory.defaults().await?,
    };
    let here = Here {
        turn,
        chat,
        thread,
        language: policy.language,
        texts: &texts,
        ttl: policy.reply_ttl_s,
        command: message.id.0,
    };
    if !is_admin(turn, message).await {
        here.reply(here.text("admins_only"), None, here.ttl).await?;
        return Ok(true);
    }
    let text = match name {
        "protect" if message.chat.is_group() => here.text("protect_basic_group"),
        "protect" => {
            let join_requests = policy.join_requests != JoinRequests::Off;
            protect(&here, message, &args, join_requests).await?
        }
        "unprotect" => unprotect(&here, existing.as_deref()).await?,
        "status" => status(existing.as_deref(), &here),
        _ => match existing.as_deref().filter(|v| v.enforcing()) {
            Some(view) => {
                let (text, keyboard) = settings_menu::render(view);
                here.reply(text, Some(keyboard), here.ttl.max(300)).await?;
                return Ok(true);
            }
            None => here.text("not_protected"),
        },
    };
    here.reply(text, None, here.ttl).await?;
    Ok(true)
}

/// Where a command was given and how to answer it.
struct Here<'a> {
    turn: &'a Turn,
    chat: i64,
    thread: Option<i32>,
    language: Language,
    texts: &'a Texts,
    ttl: u64,
    command: i32,
}

impl Here<'_> {
    fn text(&self, name: &str) -> String {
        self.texts.render(self.language, name, &[])
    }

    /// Answers in the command's topic; the answer and the command go after `ttl_s`.
    async fn reply(
        &self,
        text: String,
        keyboard: Option<InlineKeyboardMarkup>,
        ttl_s: u64,
    ) -> anyhow::Result<()> {
        say::say_in(self.turn, self.chat, self.thread, text, keyboard, ttl_s).await?;
        say::delete_later(self.turn, self.chat, self.command, ttl_s).await;
        Ok(())
    }
}

/// An admin wrote it: the creator or an administrator, or an anonymous admin (writing as the group).
pub async fn is_admin(turn: &Turn, message: &Message) -> bool {
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
    standing::is_admin(turn, message.chat.id.0, user.id.0 as i64).await
}

/// `/protect @a [@b …]`, ids, or a reply to a forwarded channel post. Checks every right first and
/// names exactly what is missing; on success the group requires exactly these channels.
async fn protect(
    here: &Here<'_>,
    message: &Message,
    args: &[&str],
    join_requests: bool,
) -> anyhow::Result<String> {
    let mut targets: Vec<Recipient> = args.iter().filter_map(|a| protect::recipient(a)).collect();
    if targets.is_empty()
        && let Some(MessageOrigin::Channel { chat: origin, .. }) =
            message.reply_to_message().and_then(|r| r.forward_origin())
    {
        targets.push(Recipient::Id(origin.id));
    }
    if targets.is_empty() {
        return Ok(here.text("protect_usage"));
    }
    let chat = protect::Chat {
        id: here.chat,
        title: message.chat.title().unwrap_or_default().to_string(),
        username: message.chat.username().map(str::to_string),
        channel: false,
    };
    match protect::protect(here.turn, &chat, join_requests, targets).await? {
        Protection::Missing(problems) => {
            let lines = Problem::bullets(&problems, here.texts, here.language);
            Ok(here
                .texts
                .render(here.language, "protect_missing", &[("problems", &lines)]))
        }
        Protection::Taken { username, .. } => Ok(here.texts.render(
            here.language,
            "protect_taken",
            &[("bot", &escape(&username))],
        )),
        Protection::Done { channels, .. } => Ok(here.texts.render(
            here.language,
            "protect_done",
            &[("channels", &channel_list(&channels))],
        )),
    }
}

/// `/unprotect`: enforcement stops and what Nezuko restricted here is released.
async fn unprotect(here: &Here<'_>, existing: Option<&GroupView>) -> anyhow::Result<String> {
    let turn = here.turn;
    let Some(view) = existing.filter(|v| v.group.enabled) else {
        return Ok(here.text("not_protected"));
    };
    turn.shared
        .store
        .set_group_enabled(view.group.id, false)
        .await?;
    turn.shared.directory.invalidate(turn.bot(), here.chat);
    for record in turn
        .shared
        .store
        .active_restrictions_in_chat(turn.bot(), here.chat)
        .await?
    {
        if let Err(error) =
            actions::lift(turn, here.chat, record.user_id, EndReason::Unprotected).await
        {
            tracing::warn!(chat = here.chat, user = record.user_id, %error, "could not release a member on /unprotect");
        }
    }
    turn.publish(
        EventKind::Activity,
        json!({ "action": "group_unprotected", "group_id": view.group.id, "chat_id": here.chat }),
    );
    Ok(here.text("unprotect_done"))
}

/// `/status`: what the group requires and how healthy the bot's rights are, in the group's
/// language; the health is the stored one, which every refusal and unreadable check updates.
fn status(existing: Option<&GroupView>, here: &Here<'_>) -> String {
    let Some(view) = existing.filter(|v| v.enforcing()) else {
        return here.text("not_protected");
    };
    let policy = &view.policy;
    let word = |name: &str| here.texts.render(here.language, name, &[]);
    // Stored as codes, so each fix reads in the group's language, one per line.
    let problems = health::stored(view.group.health_detail.as_ref().map(|d| &d.0));
    let health = match view.group.health.as_str() {
        "ok" => word("status_ok"),
        _ if problems.is_empty() => format!("⚠ {}", word("status_unchecked")),
        _ => format!(
            "⚠\n{}",
            Problem::bullets(&problems, here.texts, here.language)
        ),
    };
    let require = match policy.require {
        Require::All => word("require_all"),
        Require::Any => word("require_any"),
    };
    let action = word(match policy.action {
        Action::Warn => "action_warn",
        Action::Restrict => "action_restrict",
        Action::Kick => "action_kick",
        Action::Ban => "action_ban",
    });
    let fail_mode = word(match policy.fail_mode {
        FailMode::Open => "fail_open",
        FailMode::Closed => "fail_closed",
    });
    here.texts.render(
        here.language,
        "status",
        &[
            ("group", &escape(&view.group.title)),
            ("channels", &channel_list(&view.channels)),
            ("require", &require),
            ("action", &action),
            ("health", &health),
            ("fail_mode", &fail_mode),
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
