//! The membership cache: shared by the bots of a process, fed by `chat_member` updates, counted,
//! and shared between processes through Redis when configured (and harmless when Redis is away).

use std::sync::Arc;
use std::time::Duration;

use nezuko::actors::{Fleet, FleetOptions};
use nezuko::enforce::{EnforceOptions, Enforcer};
use nezuko_sandbox::model::{AdminRights, ChatKind, Status};
use redis::AsyncCommands;

use super::{DEADLINE, Guarded, enforce_db_tests, enforce_tests, insert_bot, quick_options};
use crate::fleet::quick_policy;
use crate::support::TestDb;
use crate::support::wait::{eventually, quiet_period};

enforce_tests!(
    one_bots_knowledge_serves_every_bot_of_the_process,
    what_the_cache_knew_survives_a_restart,
);
enforce_db_tests!(
    answers_are_shared_between_processes_through_redis,
    an_unreachable_redis_changes_nothing_but_speed,
);

fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A second bot guarding its own group "Runners" that also requires @news.
async fn second_bot(world: &Guarded) -> (nezuko_sandbox::control::SandboxBot, i64) {
    let bot = world.sandbox.create_bot("Second", "second_bot");
    let group = world
        .sandbox
        .create_chat(ChatKind::Supergroup, "Runners", None);
    world
        .sandbox
        .set_member(group, world.owner.id, Status::Creator)
        .unwrap();
    for chat in [group, world.channel] {
        world
            .sandbox
            .promote(chat, bot.id, AdminRights::force_subscribe())
            .unwrap();
    }
    (bot, group)
}

async fn protect_with(world: &Guarded, bot: i64, group: i64) {
    world.sandbox.wait_polling(bot, DEADLINE).await.unwrap();
    world
        .sandbox
        .send(group, world.owner.id, "/protect @news")
        .unwrap();
    world
        .sandbox
        .wait_until(DEADLINE, "protected", |s| {
            s.transcript(group).into_iter().find(|m| {
                m.from == bot && m.text.as_deref().unwrap_or_default().contains("Protected")
            })
        })
        .await
        .unwrap();
}

async fn one_bots_knowledge_serves_every_bot_of_the_process(world: Guarded) {
    let (bot2, group2) = second_bot(&world).await;
    insert_bot(&world.db, &world.vault, &bot2).await;
    world.fleet.as_ref().unwrap().reconcile_all();
    protect_with(&world, bot2.id, group2).await;
    let (hits_before, _) = world.enforcer().cache_stats();
    let user = world.user("Uli");
    world.sandbox.join(world.channel, user).unwrap();
    world.settle().await;
    world.sandbox.join(world.group, user).unwrap();
    world.sandbox.join(group2, user).unwrap();
    world.settle().await;
    // Both bots checked the newcomer before the window below begins.
    world
        .eventually("both checks were cache hits", || {
            world.enforcer().cache_stats().0 >= hits_before + 2
        })
        .await;
    quiet_period(
        Duration::from_millis(300),
        "a lookup or an action follows a check at once",
    )
    .await;
    assert_eq!(
        lookups(&world, user),
        0,
        "the chat_member update told both bots"
    );
    assert!(!world.acted_on(user));
    world.finish().await;
}

/// Waits until the process running `bot` writes what it learns to Redis: its Redis tier connects
/// in the background, and an answer learnt before then stays in that process alone. Probes join
/// `chat` one after another (the bot learns each one's standing in @news, from the channel's
/// `chat_member` update or by looking it up) until Redis holds the answer about one of them. No
/// other process may learn of the probes, or the answer would prove nothing.
async fn wait_for_redis_tier(world: &Guarded, namespace: &str, bot: i64, chat: i64, process: &str) {
    let client = redis::Client::open(redis_url()).expect("TEST_REDIS_URL is a Redis URL");
    let mut connection = redis::aio::ConnectionManager::new(client)
        .await
        .expect("Redis is reachable at TEST_REDIS_URL");
    let channel = world.channel;
    let mut probes: Vec<i64> = Vec::new();
    eventually(
        &format!("{process} to write what it learns to Redis"),
        DEADLINE,
        async || {
            let probe = world.user(&format!("Probe {}", probes.len() + 1));
            world.sandbox.join(chat, probe).unwrap();
            probes.push(probe);
            world
                .sandbox
                .wait_until(DEADLINE, "the probe's join is handled", |s| {
                    (s.pending_updates(bot) == 0).then_some(())
                })
                .await
                .unwrap();
            for probe in &probes {
                let key = format!("{namespace}:member:{channel}:{probe}");
                match connection.get::<_, Option<String>>(key).await {
                    Ok(Some(_)) => return Ok(()),
                    Ok(None) => {}
                    Err(error) => return Err(format!("Redis answered {error}")),
                }
            }
            Err(format!("no answer in Redis about the probes {probes:?}"))
        },
    )
    .await;
}

/// Lookups of `user` in the channel so far.
fn lookups(world: &Guarded, user: i64) -> usize {
    world
        .sandbox
        .calls(None, Some("getChatMember"))
        .into_iter()
        .filter(|c| {
            c.params["user_id"].as_i64() == Some(user)
                && c.params["chat_id"].as_i64() == Some(world.channel)
        })
        .count()
}

async fn what_the_cache_knew_survives_a_restart(mut world: Guarded) {
    let readers: Vec<i64> = (0..10)
        .map(|n| world.member(&format!("Reader {n}"), true))
        .collect();
    for reader in &readers {
        world.sandbox.send(world.group, *reader, "hi").unwrap();
    }
    // One who leaves the channel while the bot watches: its `chat_member` update says so.
    let leaver = world.member("Leaver", true);
    world.sandbox.send(world.group, leaver, "hi").unwrap();
    world.settle().await;
    world.sandbox.leave(world.channel, leaver).unwrap();
    world.wait_restricted(leaver).await;
    world.settle().await;
    // Readers are known from the channel's updates as they joined it, or from a lookup.
    let before: Vec<usize> = readers.iter().map(|r| lookups(&world, *r)).collect();
    // What the channel's update said is what is kept for the next start (its row was stored
    // before the update was confirmed).
    let kept = world.db.store.channel_members_since(0).await.unwrap();
    let kept_for = |user: i64| {
        kept.iter()
            .find(|m| m.channel_chat_id == world.channel && m.user_id == user)
            .map(|m| m.subscribed)
    };
    assert_eq!(kept_for(leaver), Some(false), "{kept:?}");
    assert!(
        readers.iter().all(|r| kept_for(*r) == Some(true)),
        "{kept:?}"
    );

    world.stop().await;
    world.start().await;
    for reader in &readers {
        world
            .sandbox
            .send(world.group, *reader, "hi again")
            .unwrap();
    }
    world.settle().await;
    let after: Vec<usize> = readers.iter().map(|r| lookups(&world, *r)).collect();
    assert_eq!(
        before, after,
        "nobody was looked up again after the restart"
    );
    assert!(readers.iter().all(|r| !world.acted_on(*r)));
    world.finish().await;
}

async fn answers_are_shared_between_processes_through_redis(db: TestDb) {
    let namespace = format!(
        "nezuko-test-{}",
        std::process::id() as u64 * 1000 + rand_suffix()
    );
    let options = EnforceOptions {
        redis_url: Some(redis_url()),
        redis_namespace: namespace.clone(),
        ..quick_options()
    };
    let world = Guarded::unprotected(db, options.clone()).await;
    world.protect("/protect @news").await;
    // Process A learns that the user is subscribed (and writes it to Redis).
    let user = world.user("Rita");
    wait_for_redis_tier(&world, &namespace, world.bot.id, world.channel, "process A").await;
    world.sandbox.join(world.channel, user).unwrap();
    world.settle().await;
    // Process B: its own database, fleet and in-process cache; only Redis in common.
    let (bot2, group2) = second_bot(&world).await;
    let db_b = TestDb::sqlite().await;
    insert_bot(&db_b, &world.vault, &bot2).await;
    let enforcer_b = Enforcer::start(db_b.store.clone(), options).unwrap();
    let fleet_b = Fleet::start(
        db_b.store.clone(),
        world.vault.clone(),
        FleetOptions {
            api_url: world.running.url(),
            http: nezuko::telegram::http_client(),
            handler: Arc::new(enforcer_b.clone()),
            policy: quick_policy(),
            poll_interval: Duration::from_millis(200),
            full_interval: Duration::from_secs(30),
            event_capacity: 1024,
            runs_bots: true,
            leases: None,
            delivery: nezuko::actors::Delivery::Polling,
            alerts: None,
        },
    )
    .await
    .unwrap();
    protect_with(&world, bot2.id, group2).await;
    // Probes join B's group only: process A never learns of them.
    wait_for_redis_tier(&world, &namespace, bot2.id, group2, "process B").await;
    let (hits_before, _) = enforcer_b.cache_stats();
    world.sandbox.join(group2, user).unwrap();
    world
        .sandbox
        .wait_until(DEADLINE, "bot B handled the join", |s| {
            (s.pending_updates(bot2.id) == 0).then_some(())
        })
        .await
        .unwrap();
    quiet_period(
        Duration::from_millis(500),
        "a lookup or an action of process B follows its check at once",
    )
    .await;
    let asked = world
        .sandbox
        .calls(Some(bot2.id), Some("getChatMember"))
        .into_iter()
        .filter(|c| c.params["user_id"].as_i64() == Some(user))
        .count();
    assert_eq!(asked, 0, "process B read process A's answer from Redis");
    assert!(world.sandbox.member(group2, user).can_send_messages());
    world
        .eventually("process B's check was a hit", || {
            enforcer_b.cache_stats().0 > hits_before
        })
        .await;
    fleet_b.shutdown(Duration::from_secs(9)).await;
    enforcer_b.flush().await;
    db_b.finish().await;
    world.finish().await;
}

async fn an_unreachable_redis_changes_nothing_but_speed(db: TestDb) {
    let options = EnforceOptions {
        redis_url: Some("redis://127.0.0.1:1".into()),
        ..quick_options()
    };
    let world = Guarded::unprotected(db, options).await;
    world.protect("/protect @news").await;
    let user = world.member("Nora", false);
    world.wait_restricted(user).await;
    world.finish().await;
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .subsec_nanos() as u64
}
