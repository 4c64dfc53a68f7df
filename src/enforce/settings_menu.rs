//! `/settings`: the group's policy as an inline menu. Each button cycles one setting; the change is
//! stored as the group's override and applies at once (the directory entry is dropped).

use serde_json::{Value, json};
use teloxide::payloads::EditMessageTextSetters;
use teloxide::prelude::Requester;
use teloxide::types::{CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, ParseMode};

use super::calls::Target;
use super::context::Turn;
use super::directory::GroupView;
use super::policy::{Action, FailMode, JoinRequests, Language, Policy, Require};
use super::say;
use super::standing;
use super::texts::escape;
use crate::domain::EventKind;

/// The settings the menu edits, by callback field; each button's label is the template
/// `menu_<field>` in the group's language.
const FIELDS: &[&str] = &[
    "action", "require", "fail", "welcome", "grace", "warn_ttl", "rejoin", "join", "join_ttl",
    "lang",
];

pub fn render(view: &GroupView) -> (String, InlineKeyboardMarkup) {
    let language = view.policy.language;
    let text = view.texts.render(
        language,
        "settings",
        &[("group", &escape(&view.group.title))],
    );
    let rows = FIELDS
        .iter()
        .map(|field| {
            let label = view.texts.render(
                language,
                &format!("menu_{field}"),
                &[("value", &value_label(view, field))],
            );
            vec![InlineKeyboardButton::callback(
                label,
                format!("nz:s:{field}"),
            )]
        })
        .collect::<Vec<_>>();
    (text, InlineKeyboardMarkup::new(rows))
}

/// A setting's current value, in the group's language.
fn value_label(view: &GroupView, field: &str) -> String {
    let policy = &view.policy;
    let word = |name: &str| view.texts.render(policy.language, name, &[]);
    let on_off = |b: bool| word(if b { "value_on" } else { "value_off" });
    let seconds = |s: u64, none: &str| {
        if s == 0 {
            word(none)
        } else {
            view.texts.render(
                policy.language,
                "value_seconds",
                &[("seconds", &s.to_string())],
            )
        }
    };
    match field {
        "action" => word(match policy.action {
            Action::Warn => "action_warn",
            Action::Restrict => "action_restrict",
            Action::Kick => "action_kick",
            Action::Ban => "action_ban",
        }),
        "require" => word(match policy.require {
            Require::All => "require_all",
            Require::Any => "require_any",
        }),
        "fail" => word(match policy.fail_mode {
            FailMode::Open => "fail_open",
            FailMode::Closed => "fail_closed",
        }),
        "welcome" => on_off(policy.welcome),
        "grace" => seconds(policy.grace_s, "value_none"),
        "warn_ttl" => seconds(policy.warning_ttl_s, "value_never"),
        "rejoin" => on_off(policy.restore_on_rejoin),
        "join" => word(match policy.join_requests {
            JoinRequests::Off => "value_join_off",
            JoinRequests::ApproveSubscribers => "value_join_approve",
        }),
        "join_ttl" => seconds(policy.join_request_timeout_s, "value_never"),
        _ => policy.language.code().to_string(),
    }
}

/// The override after one press of `field`'s button.
fn next(policy: &Policy, field: &str) -> Option<(&'static str, Value)> {
    let cycle = |values: &[u64], current: u64| {
        let at = values
            .iter()
            .position(|v| *v == current)
            .map(|i| i + 1)
            .unwrap_or(0);
        values[at % values.len()]
    };
    Some(match field {
        "action" => (
            "action",
            json!(match policy.action {
                Action::Warn => Action::Restrict,
                Action::Restrict => Action::Kick,
                Action::Kick => Action::Ban,
                Action::Ban => Action::Warn,
            }),
        ),
        "require" => (
            "require",
            json!(if policy.require == Require::All {
                Require::Any
            } else {
                Require::All
            }),
        ),
        "fail" => (
            "fail_mode",
            json!(if policy.fail_mode == FailMode::Open {
                FailMode::Closed
            } else {
                FailMode::Open
            }),
        ),
        "welcome" => ("welcome", json!(!policy.welcome)),
        "grace" => ("grace_s", json!(cycle(&[0, 60, 300, 3600], policy.grace_s))),
        "warn_ttl" => (
            "warning_ttl_s",
            json!(cycle(&[0, 60, 300, 3600], policy.warning_ttl_s)),
        ),
        "rejoin" => ("restore_on_rejoin", json!(!policy.restore_on_rejoin)),
        "join" => (
            "join_requests",
            json!(if policy.join_requests == JoinRequests::Off {
                JoinRequests::ApproveSubscribers
            } else {
                JoinRequests::Off
            }),
        ),
        "join_ttl" => (
            "join_request_timeout_s",
            json!(cycle(
                &[0, 300, 600, 3600, 86_400],
                policy.join_request_timeout_s
            )),
        ),
        "lang" => (
            "language",
            json!(if policy.language == Language::En {
                Language::Es
            } else {
                Language::En
            }),
        ),
        _ => return None,
    })
}

/// A settings button: admins only; stores the override, redraws the menu.
pub async fn pressed(turn: &Turn, query: &CallbackQuery, field: &str) -> anyhow::Result<()> {
    let Some(message) = query.regular_message() else {
        return say::answer_callback_query(turn, query, None, false).await;
    };
    let chat = message.chat.id.0;
    let Some(view) = turn.shared.directory.group(turn.bot(), chat).await? else {
        return say::answer_callback_query(turn, query, None, false).await;
    };
    if !standing::is_admin(turn, chat, query.from.id.0 as i64).await {
        let text = view.texts.render(view.policy.language, "admins_only", &[]);
        return say::answer_callback_query(turn, query, Some(text), true).await;
    }
    let Some((key, value)) = next(&view.policy, field) else {
        return say::answer_callback_query(turn, query, None, false).await;
    };
    let mut overrides = match &view.group.policy.0 {
        Value::Object(map) => map.clone(),
        _ => Default::default(),
    };
    overrides.insert(key.to_string(), value.clone());
    let overrides = Value::Object(overrides);
    Policy::check_layer(&overrides)?;
    let row = turn
        .shared
        .store
        .set_group_policy(view.group.id, &overrides)
        .await?;
    turn.shared.directory.invalidate(turn.bot(), chat);
    turn.publish(
        EventKind::SettingsChanged,
        json!({ "group_id": view.group.id, "chat_id": chat, "key": key, "value": value, "by": query.from.id.0 }),
    );
    let fresh = turn.shared.directory.view(row).await?;
    let (text, keyboard) = render(&fresh);
    let request = turn
        .calls()
        .bot()
        .edit_message_text(message.chat.id, message.id, text)
        .parse_mode(ParseMode::Html)
        .reply_markup(keyboard);
    turn.calls()
        .run("editMessageText", Target::chat(chat), request)
        .await?;
    let saved = fresh
        .texts
        .render(fresh.policy.language, "settings_saved", &[]);
    say::answer_callback_query(turn, query, Some(saved), false).await
}
