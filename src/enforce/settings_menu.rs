//! `/settings`: the group's policy as an inline menu. Each button cycles one setting; the change is
//! stored as the group's override and applies at once (the directory entry is dropped).

use std::sync::Arc;

use serde_json::{Value, json};
use teloxide::payloads::EditMessageTextSetters;
use teloxide::prelude::Requester;
use teloxide::types::{CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, ParseMode};

use super::calls::Target;
use super::directory::GroupView;
use super::policy::{Action, FailMode, Language, Policy, Require};
use super::texts::escape;
use super::{BotRuntime, Shared, callbacks, commands};

/// Settings the menu edits: (callback field, label).
const FIELDS: &[(&str, &str)] = &[
    ("action", "Action"),
    ("require", "Channels required"),
    ("fail", "If the check fails"),
    ("welcome", "Welcome message"),
    ("grace", "Grace after join"),
    ("warn_ttl", "Delete warnings after"),
    ("rejoin", "Restore on rejoin"),
    ("lang", "Language"),
];

pub fn render(view: &GroupView) -> (String, InlineKeyboardMarkup) {
    let text = view.texts.render(
        view.policy.language,
        "settings",
        &[("group", &escape(&view.group.title))],
    );
    let rows = FIELDS
        .iter()
        .map(|(field, label)| {
            vec![InlineKeyboardButton::callback(
                format!("{label}: {}", value_label(&view.policy, field)),
                format!("nz:s:{field}"),
            )]
        })
        .collect::<Vec<_>>();
    (text, InlineKeyboardMarkup::new(rows))
}

fn value_label(policy: &Policy, field: &str) -> String {
    let on_off = |b: bool| if b { "on" } else { "off" }.to_string();
    let seconds = |s: u64| {
        if s == 0 {
            "never".to_string()
        } else {
            format!("{s} s")
        }
    };
    match field {
        "action" => format!("{:?}", policy.action).to_lowercase(),
        "require" => format!("{:?}", policy.require).to_lowercase(),
        "fail" => format!("{:?}", policy.fail_mode).to_lowercase(),
        "welcome" => on_off(policy.welcome),
        "grace" => {
            if policy.grace_s == 0 {
                "none".into()
            } else {
                format!("{} s", policy.grace_s)
            }
        }
        "warn_ttl" => seconds(policy.warning_ttl_s),
        "rejoin" => on_off(policy.restore_on_rejoin),
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
pub async fn pressed(
    shared: &Arc<Shared>,
    runtime: &BotRuntime,
    query: &CallbackQuery,
    field: &str,
) -> anyhow::Result<()> {
    let Some(message) = query.regular_message() else {
        return callbacks::answer(runtime, query, None, false).await;
    };
    let chat = message.chat.id.0;
    let Some(view) = shared.directory.group(runtime.id(), chat).await? else {
        return callbacks::answer(runtime, query, None, false).await;
    };
    if !commands::is_admin_user(runtime, chat, query.from.id.0 as i64).await {
        let text = view.texts.render(view.policy.language, "admins_only", &[]);
        return callbacks::answer(runtime, query, Some(text), true).await;
    }
    let Some((key, value)) = next(&view.policy, field) else {
        return callbacks::answer(runtime, query, None, false).await;
    };
    let mut overrides = match &view.group.policy.0 {
        Value::Object(map) => map.clone(),
        _ => Default::default(),
    };
    overrides.insert(key.to_string(), value.clone());
    let overrides = Value::Object(overrides);
    Policy::check_layer(&overrides)?;
    let row = shared
        .store
        .set_group_policy(view.group.id, &overrides)
        .await?;
    shared.directory.invalidate(runtime.id(), chat);
    shared.publish(
        runtime,
        "settings_changed",
        json!({ "group_id": view.group.id, "chat_id": chat, "key": key, "value": value, "by": query.from.id.0 }),
    );
    let fresh = shared.directory.view(row).await?;
    let (text, keyboard) = render(&fresh);
    let request = runtime
        .calls
        .bot()
        .edit_message_text(message.chat.id, message.id, text)
        .parse_mode(ParseMode::Html)
        .reply_markup(keyboard);
    runtime
        .calls
        .run("editMessageText", Target::chat(chat), request)
        .await?;
    let saved = fresh
        .texts
        .render(fresh.policy.language, "settings_saved", &[]);
    callbacks::answer(runtime, query, Some(saved), false).await
}
