//! What Nezuko says: names are shown as written (a name like `{group}` is not a placeholder), and
//! every reply is wholly in the group's language, the global default applying where it has none.

use nezuko::enforce::policy::DEFAULTS_KEY;
use nezuko_sandbox::model::{AdminRights, ChatKind, Status};
use serde_json::json;

use super::{Guarded, enforce_tests};

enforce_tests!(
    a_member_named_like_a_placeholder_is_named_as_written,
    with_spanish_as_the_global_default_protect_answers_wholly_in_spanish,
    health_is_degraded_as_soon_as_a_channel_cannot_be_read_and_status_says_so,
    status_and_the_health_notice_name_each_fix_in_the_groups_language,
);

async fn a_member_named_like_a_placeholder_is_named_as_written(world: Guarded) {
    world.set_policy(json!({ "welcome": true })).await;
    let before = world.bot_messages(world.group).len();
    let user = world.sandbox.create_user("{group}", None).id;
    world.sandbox.join(world.channel, user).unwrap();
    world.sandbox.join(world.group, user).unwrap();
    let welcome = world
        .wait_bot_message(world.group, before, "the welcome")
        .await;
    let text = welcome.text.unwrap();
    assert!(text.contains("Welcome to Readers, {group}!"), "{text}");
    world.finish().await;
}

async fn with_spanish_as_the_global_default_protect_answers_wholly_in_spanish(world: Guarded) {
    world
        .db
        .store
        .put_setting(DEFAULTS_KEY, &json!({ "language": "es" }), None)
        .await
        .unwrap();
    world.enforcer().invalidate_all();
    // A group with no record and no override yet, and a channel the bot does not administer.
    let group = world.chat(ChatKind::Supergroup, "Lectores", None);
    let sports = world
        .sandbox
        .create_chat(ChatKind::Channel, "Deportes", Some("deportes"));
    world
        .sandbox
        .set_member(sports, world.owner.id, Status::Creator)
        .unwrap();
    world
        .sandbox
        .set_member(sports, world.bot.id, Status::Member)
        .unwrap();
    world.settle().await;
    let sent = world
        .sandbox
        .send(group, world.owner.id, "/protect @deportes")
        .unwrap();
    let refused = world
        .wait_bot_text(group, sent, "the refusal", |_| true)
        .await
        .text
        .unwrap();
    assert!(refused.contains("Todavía no puedo proteger"), "{refused}");
    assert!(
        refused.contains("haz al bot administrador de @deportes"),
        "{refused}"
    );
    for english in ["make the bot", "administrator of", "I cannot"] {
        assert!(!refused.contains(english), "{english:?} in {refused}");
    }
    world
        .sandbox
        .promote(sports, world.bot.id, AdminRights::force_subscribe())
        .unwrap();
    world.settle().await;
    let sent = world
        .sandbox
        .send(group, world.owner.id, "/protect @deportes")
        .unwrap();
    let done = world
        .wait_bot_text(group, sent, "the answer", |_| true)
        .await
        .text
        .unwrap();
    assert!(done.contains("Protegido"), "{done}");
    let sent = world
        .sandbox
        .send(group, world.owner.id, "/status")
        .unwrap();
    let status = world
        .wait_bot_text(group, sent, "the status", |_| true)
        .await
        .text
        .unwrap();
    for spanish in [
        "Canales",
        "Requisito",
        "todos los canales",
        "restringir",
        "correctos",
    ] {
        assert!(status.contains(spanish), "{spanish:?} missing in {status}");
    }
    world.finish().await;
}

async fn health_is_degraded_as_soon_as_a_channel_cannot_be_read_and_status_says_so(
    mut world: Guarded,
) {
    // Demoted in the channel without the bot hearing of it (no my_chat_member arrives), so only
    // the membership checks can tell.
    world
        .sandbox
        .set_member(world.channel, world.bot.id, Status::Member)
        .unwrap();
    let user = world.member("Ina", false);
    let event = world
        .wait_event("health", |p| p["health"] == "degraded")
        .await;
    let problems = event.payload["problems"].to_string();
    assert!(
        problems.contains("make the bot an administrator of @news"),
        "{problems}"
    );
    world.wait_verification(user, "unknown_allowed").await;
    let sent = world
        .sandbox
        .send(world.group, world.owner.id, "/status")
        .unwrap();
    let status = world
        .wait_bot_text(world.group, sent, "the status", |t| {
            t.contains("Permissions")
        })
        .await
        .text
        .unwrap();
    assert!(status.contains("⚠"), "{status}");
    assert!(status.contains("administrator of @news"), "{status}");
    assert!(!status.contains("Permissions: ok"), "{status}");
    world.finish().await;
}

async fn status_and_the_health_notice_name_each_fix_in_the_groups_language(mut world: Guarded) {
    world.set_policy(json!({ "language": "es" })).await;
    world
        .sandbox
        .set_member(world.channel, world.bot.id, Status::Member)
        .unwrap();
    let before = world.bot_messages(world.group).len();
    world.member("Iker", false);
    world
        .wait_event("health", |p| p["health"] == "degraded")
        .await;
    let notice = world
        .sandbox
        .wait_until(super::DEADLINE, "the health notice", |s| {
            s.transcript(world.group)
                .into_iter()
                .skip(before)
                .find(|m| {
                    m.from == world.bot.id
                        && m.text
                            .as_deref()
                            .is_some_and(|t| t.contains("Administradores"))
                })
        })
        .await
        .unwrap()
        .text
        .unwrap();
    assert!(
        notice.contains("\n• haz al bot administrador de @news"),
        "{notice}"
    );
    let sent = world
        .sandbox
        .send(world.group, world.owner.id, "/status")
        .unwrap();
    let status = world
        .wait_bot_text(world.group, sent, "the status", |t| t.contains("Permisos"))
        .await
        .text
        .unwrap();
    assert!(
        status.contains("Permisos: ⚠\n• haz al bot administrador de @news"),
        "{status}"
    );
    assert!(!status.contains("make the bot"), "{status}");
    world.finish().await;
}
