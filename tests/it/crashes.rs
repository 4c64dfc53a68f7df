//! `nezuko serve` killed with SIGKILL at the worst moments: what it owed Telegram is done after it
//! starts again. Real processes, the sandbox as Telegram, SQLite in the operator's directory.

use std::time::Duration;

use nezuko_sandbox::control::SandboxBot;
use nezuko_sandbox::faults::{Fault, FaultKind};
use nezuko_sandbox::model::{AdminRights, ChatKind, Status};
use nezuko_sandbox::{RunningSandbox, Sandbox, SandboxConfig};

use crate::enforce::buttons;
use crate::operator::{DEADLINE, Operator, Serving};

/// A group protected by a bot that `nezuko serve` runs, in a process of its own.
struct Crashable {
    sandbox: Sandbox,
    telegram: RunningSandbox,
    operator: Operator,
    bot: SandboxBot,
    owner: i64,
    group: i64,
    channel: i64,
}

impl Crashable {
    /// The bot added with `nezuko bot add`, served, and the group protected with `/protect @news`.
    async fn new() -> (Self, Serving) {
        let sandbox = Sandbox::new(SandboxConfig::default());
        let telegram = sandbox.spawn_local().await.unwrap();
        let bot = sandbox.create_bot("Guard", "guard_bot");
        let owner = sandbox.create_user("Owner", Some("owner")).id;
        let group = sandbox.create_chat(ChatKind::Supergroup, "Readers", Some("readers"));
        let channel = sandbox.create_chat(ChatKind::Channel, "News", Some("news"));
        for chat in [group, channel] {
            sandbox.set_member(chat, owner, Status::Creator).unwrap();
            sandbox
                .promote(chat, bot.id, AdminRights::force_subscribe())
                .unwrap();
        }
        let world = Self {
            sandbox,
            telegram,
            operator: Operator::new(),
            bot,
            owner,
            group,
            channel,
        };
        let api = world.telegram.url();
        let added = world
            .operator
            .run_with_input(
                &["bot", "add"],
                &[("NEZUKO_TELEGRAM__API_URL", api.as_str())],
                &format!("{}\n", world.bot.token),
            )
            .await;
        assert!(added.status.success(), "{}", added.stderr);
        let serving = world.serve().await;
        let sent = world.sandbox.send(group, owner, "/protect @news").unwrap();
        let bot_id = world.bot.id;
        world
            .sandbox
            .wait_until(DEADLINE, "the group is protected", |s| {
                s.transcript(group)
                    .into_iter()
                    .find(|m| m.from == bot_id && m.message_id > sent)
            })
            .await
            .unwrap();
        (world, serving)
    }

    /// Starts `nezuko serve` and waits until the bot polls.
    async fn serve(&self) -> Serving {
        let api = self.telegram.url();
        let serving = self
            .operator
            .serve(&[("NEZUKO_TELEGRAM__API_URL", api.as_str())])
            .await;
        self.sandbox
            .wait_polling(self.bot.id, DEADLINE)
            .await
            .unwrap();
        serving
    }

    /// A member of the group who is not subscribed to the channel.
    fn newcomer(&self, name: &str) -> i64 {
        let user = self.sandbox.create_user(name, None).id;
        self.sandbox.join(self.group, user).unwrap();
        user
    }

    async fn wait_status(&self, user: i64, what: &str, accept: impl Fn(&Status) -> bool) {
        let group = self.group;
        self.sandbox
            .wait_until(Duration::from_secs(30), what, |s| {
                Some(s.member(group, user)).filter(|status| accept(status))
            })
            .await
            .unwrap();
    }

    /// Text of every message the bot sent in the group.
    fn said(&self) -> String {
        let bot = self.bot.id;
        self.sandbox
            .transcript(self.group)
            .iter()
            .filter(|m| m.from == bot)
            .filter_map(|m| m.text.clone())
            .collect()
    }

    fn finish(self) {
        let violations = self.sandbox.violations();
        assert!(violations.is_empty(), "{violations:#?}");
    }
}

/// A subscribed member presses "I have joined"; the process is killed while Telegram has not yet
/// carried out the unrestrict (the call is held back to widen the window). After the restart the
/// member may write, with nobody pressing anything again: the press was never confirmed to
/// Telegram, which delivers it again, and the lift is recorded only once Telegram did it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lift_cut_short_by_sigkill_is_carried_out_after_the_restart() {
    let (world, serving) = Crashable::new().await;
    let ada = world.newcomer("Ada");
    world
        .wait_status(ada, "Ada is restricted", |s| {
            matches!(s, Status::Restricted { .. })
        })
        .await;
    let bot = world.bot.id;
    let group = world.group;
    let warning = world
        .sandbox
        .wait_until(DEADLINE, "the warning with its buttons", |s| {
            s.transcript(group)
                .into_iter()
                .find(|m| m.from == bot && m.reply_markup.is_some())
        })
        .await
        .unwrap();
    world.sandbox.join(world.channel, ada).unwrap();
    world.sandbox.inject_fault(Fault {
        bot: Some(bot),
        method: Some("restrictChatMember".into()),
        kind: FaultKind::Delay { ms: 60_000 },
        // Every attempt is held (a retry too), until the kill.
        times: None,
    });
    let (data, _) = buttons(&warning);
    let restricts_before = world
        .sandbox
        .calls(Some(bot), Some("restrictChatMember"))
        .len();
    world
        .sandbox
        .press_button(group, warning.message_id, ada, &data)
        .unwrap();
    // The unrestrict is on its way (held by the fault): kill now.
    world
        .sandbox
        .wait_until(DEADLINE, "the unrestrict is sent", |s| {
            (s.faults_taken() > 0).then_some(())
        })
        .await
        .unwrap();
    serving.kill().await;
    world.sandbox.clear_faults();
    assert!(
        matches!(world.sandbox.member(group, ada), Status::Restricted { .. }),
        "the held call was not carried out"
    );
    assert_eq!(
        world
            .sandbox
            .calls(Some(bot), Some("restrictChatMember"))
            .len(),
        restricts_before,
        "nothing reached Telegram before the kill"
    );

    let serving = world.serve().await;
    world
        .wait_status(ada, "Ada may write again", Status::can_send_messages)
        .await;
    let (status, log) = serving.terminate().await;
    assert!(status.success(), "{log:#?}");
    world.finish();
}

/// Newcomers are restricted while their warnings are still queued (each sendMessage is held back,
/// to widen the window) when the process is killed. After the restart every one of them is
/// warned: the restriction records are the durable promise of their warnings.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warnings_queued_when_the_process_was_killed_are_all_sent_after_the_restart() {
    let (world, serving) = Crashable::new().await;
    let bot = world.bot.id;
    world.sandbox.inject_fault(Fault {
        bot: Some(bot),
        method: Some("sendMessage".into()),
        kind: FaultKind::Delay { ms: 60_000 },
        times: None,
    });
    let names = ["Ada", "Bea", "Cid", "Dan", "Eve", "Fay"];
    let users: Vec<i64> = names.iter().map(|name| world.newcomer(name)).collect();
    for user in &users {
        world
            .wait_status(*user, "the newcomer is restricted", |s| {
                matches!(s, Status::Restricted { .. })
            })
            .await;
    }
    serving.kill().await;
    let said = world.said();
    assert!(
        names.iter().all(|name| !said.contains(name)),
        "no warning got out before the kill: {said}"
    );
    world.sandbox.clear_faults();

    let serving = world.serve().await;
    let group = world.group;
    let warned = world
        .sandbox
        .wait_until(Duration::from_secs(30), "every newcomer is warned", |s| {
            let said: String = s
                .transcript(group)
                .iter()
                .filter(|m| m.from == bot)
                .filter_map(|m| m.text.clone())
                .collect();
            names.iter().all(|name| said.contains(name)).then_some(())
        })
        .await;
    let (status, log) = serving.terminate().await;
    assert!(warned.is_ok(), "said: {}\n{log:#?}", world.said());
    assert!(status.success(), "{log:#?}");
    let _ = world.owner;
    world.finish();
}

/// Telegram keeps failing the restriction of a newcomer (502s): the update is retried, and since
/// every poll brings it back it is parked, so Telegram is told to forget it and the bot moves on.
/// The process is then killed. After the restart the parked update is handed out again from the
/// database (Telegram no longer has it) and the newcomer is restricted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_parked_while_telegram_kept_failing_is_carried_out_after_sigkill() {
    let (world, serving) = Crashable::new().await;
    world.sandbox.inject_fault(Fault {
        bot: Some(world.bot.id),
        method: Some("restrictChatMember".into()),
        kind: FaultKind::ServerError { status: 502 },
        times: None,
    });
    let ada = world.newcomer("Ada");
    let bot = world.bot.id;
    world
        .sandbox
        .wait_until(
            DEADLINE,
            "Telegram was told to forget the failing update",
            |s| {
                let tried = s
                    .calls(Some(bot), Some("restrictChatMember"))
                    .iter()
                    .any(|c| c.params["user_id"].as_i64() == Some(ada));
                (tried && s.pending_updates(bot) == 0).then_some(())
            },
        )
        .await
        .unwrap();
    assert!(matches!(
        world.sandbox.member(world.group, ada),
        Status::Member
    ));
    serving.kill().await;
    world.sandbox.clear_faults();
    let serving = world.serve().await;
    world
        .wait_status(ada, "Ada is restricted after the restart", |s| {
            matches!(s, Status::Restricted { .. })
        })
        .await;
    let (_, log) = serving.terminate().await;
    assert!(
        log.iter()
            .any(|line| line.contains("handing out the updates parked before the last stop")),
        "the restriction came from the parked update: {log:#?}"
    );
    world.finish();
}
