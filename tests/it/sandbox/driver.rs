//! The load driver measures a real teloxide bot from the sandbox's side.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use teloxide::dispatching::{Dispatcher, UpdateFilterExt};
use teloxide::dptree;
use teloxide::prelude::*;
use teloxide::types::{ChatPermissions, InlineKeyboardButton, InlineKeyboardMarkup};

use nezuko_sandbox::driver::measure::Stopwatch;
use nezuko_sandbox::driver::{self, Mix, Scenario};
use nezuko_sandbox::{Sandbox, SandboxConfig};

use super::DEADLINE;

type Links = Arc<HashMap<i64, Vec<i64>>>;

/// A minimal force-subscribe bot: restrict and warn non-subscribers who speak or join.
async fn enforce(bot: Bot, message: Message, links: Links) -> ResponseResult<()> {
    let Some(channels) = links.get(&message.chat.id.0) else {
        return Ok(());
    };
    let users: Vec<_> = match message.new_chat_members() {
        Some(members) => members.to_vec(),
        None => message.from.clone().into_iter().collect(),
    };
    for user in users {
        for channel in channels {
            if !bot
                .get_chat_member(ChatId(*channel), user.id)
                .await?
                .is_present()
            {
                bot.restrict_chat_member(message.chat.id, user.id, ChatPermissions::empty())
                    .await?;
                let button =
                    InlineKeyboardButton::callback("I have joined", format!("check:{}", user.id));
                let _ = bot
                    .send_message(message.chat.id, "Join the channel first.")
                    .reply_markup(InlineKeyboardMarkup::new([[button]]))
                    .await;
                break;
            }
        }
    }
    Ok(())
}

#[tokio::test]
async fn the_driver_reports_throughput_and_latency_of_a_real_bot() {
    let sandbox = Sandbox::new(SandboxConfig::default());
    let running = sandbox.spawn_local().await.unwrap();
    let scenario = Scenario {
        name: "test".into(),
        bots: 1,
        groups: 4,
        channels: 2,
        members_per_group: 10,
        non_subscriber_share: 0.3,
        rate: 100.0,
        duration_s: 1.5,
        mix: Mix {
            message: 0.8,
            join: 0.2,
            channel_leave: 0.0,
            button: 0.0,
            join_request: 0.0,
        },
        ..Scenario::default()
    };
    let stopwatch = Arc::new(Stopwatch::default());
    sandbox.set_observer(stopwatch.clone());
    let mut plan = driver::build_world(&sandbox, &scenario, &running.url(), &stopwatch).unwrap();
    let links: Links = Arc::new(
        plan.groups
            .iter()
            .map(|g| (g.chat_id, g.channels.clone()))
            .collect(),
    );

    let bot = Bot::new(&plan.bots[0].token).set_api_url(running.url().parse().unwrap());
    let handler = dptree::entry().branch(Update::filter_message().endpoint(enforce));
    let mut dispatcher = Dispatcher::builder(bot, handler)
        .dependencies(dptree::deps![links])
        .build();
    let shutdown = dispatcher.shutdown_token();
    let task = tokio::spawn(async move { dispatcher.dispatch().await });
    let bot_id = plan.bots[0].id;
    sandbox.wait_polling(bot_id, DEADLINE).await.unwrap();

    let report = driver::drive(
        &sandbox,
        &mut plan,
        &scenario,
        stopwatch,
        Duration::from_millis(500),
    )
    .await;
    shutdown.shutdown().unwrap().await;
    task.await.unwrap();

    assert!(report.updates_confirmed > 50, "{report:?}");
    assert!(report.actions_measured > 0, "{report:?}");
    assert!(
        report.p50_ms > 0.0 && report.p99_ms >= report.p50_ms,
        "{report:?}"
    );
    assert_eq!(report.spec_violations, 0, "{report:?}");
    assert!(
        report.calls_by_method["restrictChatMember"]
            .as_u64()
            .unwrap()
            > 0,
        "{report:?}"
    );
    assert!(report.events["message"].as_u64().unwrap() > 0);
}
