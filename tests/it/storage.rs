//! The storage suite: every store operation, run unchanged on SQLite and PostgreSQL.

use nezuko::db::{
    ApiCall, AuditFilter, BotRow, KeyCount, LogFilter, NewAuditEntry, NewBot, NewChannel, NewEvent,
    NewGroup, NewLog, RunStateUpdate, SessionRow, StoreError, UpdateProgress, Verification, now_ms,
};
use nezuko::domain::{DesiredState, ReasonCode, RunState};
use serde_json::json;
use sqlx::types::Json;

use crate::support::{TestDb, on_both_backends};

on_both_backends!(
    migrations_can_run_again_without_effect,
    a_new_bot_is_stored_enabled_and_stopped,
    a_second_bot_with_the_same_telegram_id_is_a_conflict,
    desired_state_changes_are_stored,
    run_state_transitions_stamp_times_and_count_restarts,
    a_new_token_bumps_the_config_version,
    unknown_ids_are_reported_as_not_found,
    deleting_a_bot_removes_its_groups_and_links,
    groups_and_channels_link_and_unlink,
    an_upgrade_seen_in_both_chats_at_once_moves_the_group_once,
    re_adding_a_group_keeps_its_policy,
    token_ciphertexts_are_replaced_together_with_the_canary,
    verifications_are_counted_by_outcome_within_a_time_range,
    api_calls_are_counted_by_method,
    event_ids_only_grow_and_replay_after_a_cursor,
    a_burst_of_events_is_stored_in_the_order_published,
    events_are_told_apart_by_the_process_that_stored_them,
    logs_filter_by_level_target_text_and_page,
    log_search_treats_wildcards_literally,
    sessions_expire_and_end_at_logout,
    settings_are_upserted_and_listed_by_prefix,
    audit_entries_filter_by_action_and_page,
    update_progress_is_kept_per_bot_and_skips_deleted_bots,
);

fn new_bot(telegram_bot_id: i64) -> NewBot {
    NewBot {
        telegram_bot_id,
        username: format!("bot{telegram_bot_id}_bot"),
        display_name: format!("Bot {telegram_bot_id}"),
        token_ciphertext: format!("ciphertext-{telegram_bot_id}"),
        owner_telegram_id: Some(1000),
        desired_state: DesiredState::Enabled,
    }
}

fn new_group(bot_instance_id: i64, chat_id: i64, title: &str) -> NewGroup {
    NewGroup {
        bot_instance_id,
        chat_id,
        title: title.into(),
        username: None,
    }
}

fn new_channel(chat_id: i64, title: &str) -> NewChannel {
    NewChannel {
        chat_id,
        title: title.into(),
        username: Some(format!("chan{}", -chat_id)),
        invite_link: None,
        is_private: false,
    }
}

async fn migrations_can_run_again_without_effect(db: &TestDb) {
    db.store.migrate().await.unwrap();
    db.store.ping().await.unwrap();
    assert!(db.store.bots().await.unwrap().is_empty());
}

async fn a_new_bot_is_stored_enabled_and_stopped(db: &TestDb) {
    let before = now_ms();
    let bot = db.store.insert_bot(&new_bot(7001)).await.unwrap();
    assert_eq!(bot.telegram_bot_id, 7001);
    assert_eq!(bot.username, "bot7001_bot");
    assert_eq!(bot.token_ciphertext, "ciphertext-7001");
    assert_eq!(bot.owner_telegram_id, Some(1000));
    assert_eq!(bot.desired_state, DesiredState::Enabled);
    assert_eq!(bot.run_state, RunState::Stopped);
    assert_eq!((bot.restart_count, bot.config_version), (0, 1));
    assert!(bot.created_at >= before && bot.updated_at == bot.created_at);
    assert_eq!(db.store.bot(bot.id).await.unwrap(), bot);
    assert_eq!(db.store.bots().await.unwrap(), vec![bot]);
}

async fn a_second_bot_with_the_same_telegram_id_is_a_conflict(db: &TestDb) {
    db.store.insert_bot(&new_bot(7002)).await.unwrap();
    let err = db.store.insert_bot(&new_bot(7002)).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert!(err.to_string().contains("7002"));
    assert_eq!(db.store.bots().await.unwrap().len(), 1);
}

async fn desired_state_changes_are_stored(db: &TestDb) {
    let bot = db.store.insert_bot(&new_bot(7003)).await.unwrap();
    let disabled = db
        .store
        .set_desired_state(bot.id, DesiredState::Disabled)
        .await
        .unwrap();
    assert_eq!(disabled.desired_state, DesiredState::Disabled);
    assert_eq!(
        db.store.bot(bot.id).await.unwrap().desired_state,
        DesiredState::Disabled
    );
    let enabled = db
        .store
        .set_desired_state(bot.id, DesiredState::Enabled)
        .await
        .unwrap();
    assert_eq!(enabled.desired_state, DesiredState::Enabled);
}

/// A transition as the Broadcaster records it: with its `bot_status` event, in one write.
async fn record_run_state(db: &TestDb, id: i64, update: &RunStateUpdate) -> BotRow {
    let event = NewEvent {
        kind: "bot_status".into(),
        bot_instance_id: Some(id),
        payload: json!({ "state": update.state.as_str() }),
        transition: Some(update.clone()),
    };
    db.store.append_events(&[event]).await.unwrap();
    db.store.bot(id).await.unwrap()
}

async fn run_state_transitions_stamp_times_and_count_restarts(db: &TestDb) {
    let bot = db.store.insert_bot(&new_bot(7004)).await.unwrap();
    let update = |state, reason: Option<&str>, restarted| RunStateUpdate {
        state,
        reason: reason.map(str::to_string),
        code: reason.map(|_| ReasonCode::Transient),
        last_error: reason.map(|r| format!("error: {r}")),
        next_attempt_at: None,
        restarted,
        attempt: u32::from(restarted),
    };
    let running = record_run_state(db, bot.id, &update(RunState::Running, None, false)).await;
    assert_eq!(running.run_state, RunState::Running);
    assert!(running.started_at.is_some());
    assert_eq!(running.stopped_at, None);

    let mut backoff = update(RunState::Backoff, Some("network"), true);
    backoff.next_attempt_at = Some(now_ms() + 500);
    let backing_off = record_run_state(db, bot.id, &backoff).await;
    assert_eq!(backing_off.run_state, RunState::Backoff);
    assert_eq!(backing_off.run_reason_code.as_deref(), Some("transient"));
    assert_eq!(backing_off.restart_count, 1);
    assert_eq!(backing_off.next_attempt_at, backoff.next_attempt_at);
    assert_eq!(backing_off.last_error.as_deref(), Some("error: network"));
    assert_eq!(backing_off.started_at, running.started_at);

    let failed = record_run_state(
        db,
        bot.id,
        &update(RunState::Failed, Some("invalid token"), false),
    )
    .await;
    assert_eq!(failed.run_state, RunState::Failed);
    assert_eq!(failed.run_reason.as_deref(), Some("invalid token"));
    assert!(failed.stopped_at.is_some());
    assert_eq!(failed.next_attempt_at, None);
    assert_eq!(failed.restart_count, 1);

    // A transition without an error keeps the last one for the dashboard.
    let stopped = record_run_state(db, bot.id, &update(RunState::Stopped, None, false)).await;
    assert_eq!(stopped.last_error.as_deref(), Some("error: invalid token"));
    assert_eq!(stopped.run_reason, None);
    assert_eq!(
        stopped.run_reason_code, None,
        "the code goes with its reason"
    );
}

async fn a_new_token_bumps_the_config_version(db: &TestDb) {
    let bot = db.store.insert_bot(&new_bot(7005)).await.unwrap();
    let replaced = db
        .store
        .replace_bot_token(bot.id, "new-ciphertext")
        .await
        .unwrap();
    assert_eq!(replaced.token_ciphertext, "new-ciphertext");
    assert_eq!(replaced.config_version, bot.config_version + 1);
}

async fn unknown_ids_are_reported_as_not_found(db: &TestDb) {
    let missing = 424242;
    assert!(matches!(
        db.store.bot(missing).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        db.store
            .set_desired_state(missing, DesiredState::Disabled)
            .await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        db.store.delete_bot(missing).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        db.store.group(missing).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        db.store.upsert_group(&new_group(missing, -1, "x")).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        db.store.link_channel(missing, missing).await,
        Err(StoreError::NotFound(_))
    ));
}

async fn deleting_a_bot_removes_its_groups_and_links(db: &TestDb) {
    let bot = db.store.insert_bot(&new_bot(7006)).await.unwrap();
    let other = db.store.insert_bot(&new_bot(7007)).await.unwrap();
    let group = db
        .store
        .upsert_group(&new_group(bot.id, -100100000001, "Doomed"))
        .await
        .unwrap();
    let kept = db
        .store
        .upsert_group(&new_group(other.id, -100100000002, "Kept"))
        .await
        .unwrap();
    let channel = db
        .store
        .upsert_channel(&new_channel(-100200000001, "News"))
        .await
        .unwrap();
    db.store.link_channel(group.id, channel.id).await.unwrap();
    db.store.link_channel(kept.id, channel.id).await.unwrap();

    db.store.delete_bot(bot.id).await.unwrap();
    assert!(matches!(
        db.store.group(group.id).await,
        Err(StoreError::NotFound(_))
    ));
    let affected = db
        .store
        .groups_requiring_channel(-100200000001)
        .await
        .unwrap();
    assert_eq!(
        affected.iter().map(|g| g.id).collect::<Vec<_>>(),
        vec![kept.id]
    );
}

/// Telegram announces an upgrade in both chats (`migrate_to_chat_id`, `migrate_from_chat_id`),
/// handled concurrently: each transaction reads, then writes. On SQLite a transaction that began
/// by reading failed with "database is locked" when the other had written meanwhile.
async fn an_upgrade_seen_in_both_chats_at_once_moves_the_group_once(db: &TestDb) {
    let bot = db.store.insert_bot(&new_bot(7011)).await.unwrap();
    for n in 0..20 {
        let (old, new) = (-4_000 - n, -100_300_000_000 - n);
        let group = db
            .store
            .upsert_group(&new_group(bot.id, old, "Basic"))
            .await
            .unwrap();
        let (a, b) = tokio::join!(
            db.store.migrate_group_chat(bot.id, old, new),
            db.store.migrate_group_chat(bot.id, old, new),
        );
        let moved: Vec<_> = [a.unwrap(), b.unwrap()].into_iter().flatten().collect();
        assert_eq!(moved.len(), 1, "moved once");
        assert_eq!((moved[0].id, moved[0].chat_id), (group.id, new));
        let stored = db.store.group_by_chat(bot.id, new).await.unwrap().unwrap();
        assert!(stored.enabled, "the second sighting disables nothing");
    }
}

async fn groups_and_channels_link_and_unlink(db: &TestDb) {
    let bot = db.store.insert_bot(&new_bot(7008)).await.unwrap();
    let group = db
        .store
        .upsert_group(&new_group(bot.id, -100100000003, "Group"))
        .await
        .unwrap();
    assert!(group.enabled);
    assert_eq!(group.health, "unknown");
    assert_eq!(group.policy, Json(json!({})));
    let b = db
        .store
        .upsert_channel(&new_channel(-100200000002, "Beta"))
        .await
        .unwrap();
    let mut private = new_channel(-100200000003, "Alpha");
    private.is_private = true;
    private.invite_link = Some("https://t.me/+abc".into());
    let a = db.store.upsert_channel(&private).await.unwrap();
    assert!(a.is_private);

    db.store.link_channel(group.id, b.id).await.unwrap();
    db.store.link_channel(group.id, a.id).await.unwrap();
    db.store.link_channel(group.id, a.id).await.unwrap();
    let titles: Vec<_> = db
        .store
        .channels_of_group(group.id)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.title)
        .collect();
    assert_eq!(titles, ["Alpha", "Beta"]);

    // A later refresh without an invite link keeps the one we had.
    let mut refreshed = private.clone();
    refreshed.invite_link = None;
    refreshed.title = "Alpha 2".into();
    let a2 = db.store.upsert_channel(&refreshed).await.unwrap();
    assert_eq!(
        (a2.id, a2.invite_link.as_deref()),
        (a.id, Some("https://t.me/+abc"))
    );

    assert!(db.store.unlink_channel(group.id, b.id).await.unwrap());
    assert!(!db.store.unlink_channel(group.id, b.id).await.unwrap());
    assert_eq!(db.store.channels_of_group(group.id).await.unwrap().len(), 1);
    assert_eq!(
        db.store
            .groups_requiring_channel(-100200000003)
            .await
            .unwrap()[0]
            .id,
        group.id
    );
    assert!(
        db.store
            .groups_requiring_channel(-100200000002)
            .await
            .unwrap()
            .is_empty()
    );

    let disabled = db.store.set_group_enabled(group.id, false).await.unwrap();
    assert!(!disabled.enabled);
    assert_eq!(
        db.store.groups_of_bot(bot.id).await.unwrap(),
        vec![disabled]
    );
}

async fn re_adding_a_group_keeps_its_policy(db: &TestDb) {
    let bot = db.store.insert_bot(&new_bot(7009)).await.unwrap();
    let group = db
        .store
        .upsert_group(&new_group(bot.id, -100100000004, "Old title"))
        .await
        .unwrap();
    let policy = json!({ "action": "restrict", "fail_mode": "open", "allowlist": [1, 2] });
    db.store.set_group_policy(group.id, &policy).await.unwrap();
    let again = db
        .store
        .upsert_group(&new_group(bot.id, -100100000004, "New title"))
        .await
        .unwrap();
    assert_eq!(again.id, group.id);
    assert_eq!(again.title, "New title");
    assert_eq!(again.policy, Json(policy));
}

async fn token_ciphertexts_are_replaced_together_with_the_canary(db: &TestDb) {
    let a = db.store.insert_bot(&new_bot(7010)).await.unwrap();
    let b = db.store.insert_bot(&new_bot(7011)).await.unwrap();
    let canary = json!("canary-ciphertext");
    db.store
        .replace_bot_ciphertexts(
            &[(a.id, "a2".into()), (b.id, "b2".into())],
            ("vault.canary", &canary),
        )
        .await
        .unwrap();
    assert_eq!(
        db.store.bot_ciphertexts().await.unwrap(),
        vec![(a.id, "a2".into()), (b.id, "b2".into())]
    );
    assert_eq!(
        db.store.setting("vault.canary").await.unwrap(),
        Some(canary)
    );
    // Rotation does not change the token itself, so the bot is not restarted.
    assert_eq!(
        db.store.bot(a.id).await.unwrap().config_version,
        a.config_version
    );
}

fn verification(group_id: i64, outcome: &str, cached: bool, created_at: i64) -> Verification {
    Verification {
        bot_instance_id: 1,
        group_id,
        chat_id: -100,
        user_id: 55,
        channel_ids: Json(vec![-200, -201]),
        outcome: outcome.into(),
        cached,
        latency_ms: 12,
        created_at,
    }
}

fn pairs(counts: Vec<KeyCount>) -> Vec<(String, i64)> {
    counts.into_iter().map(|c| (c.key, c.count)).collect()
}

async fn verifications_are_counted_by_outcome_within_a_time_range(db: &TestDb) {
    let t = 1_700_000_000_000;
    // More rows than one INSERT statement holds, to cover the batching.
    let mut rows: Vec<_> = (0..2100)
        .map(|i| verification(1, "verified", i % 2 == 0, t + i))
        .collect();
    rows.extend((0..30).map(|i| verification(2, "restricted", false, t + i)));
    rows.push(verification(1, "unknown", false, t - 1));
    rows.push(verification(1, "verified", false, t + 10_000));
    db.store.insert_verifications(&rows).await.unwrap();

    let counts = pairs(db.store.verification_outcomes(t, t + 10_000).await.unwrap());
    assert_eq!(
        counts,
        [
            ("verified".to_string(), 2100),
            ("restricted".to_string(), 30)
        ]
    );

    let recent = db.store.recent_verifications(2, 5).await.unwrap();
    assert_eq!(recent.len(), 5);
    assert_eq!(recent[0], verification(2, "restricted", false, t + 29));
}

async fn api_calls_are_counted_by_method(db: &TestDb) {
    let t = 1_700_000_000_000;
    let call = |method: &str, outcome: &str, error_code| ApiCall {
        bot_instance_id: 1,
        method: method.into(),
        outcome: outcome.into(),
        error_code,
        latency_ms: 30,
        created_at: t,
    };
    db.store
        .insert_api_calls(&[
            call("getChatMember", "ok", None),
            call("getChatMember", "ok", None),
            call("restrictChatMember", "error", Some(400)),
        ])
        .await
        .unwrap();
    let by_method = pairs(db.store.api_calls_by_method(t, t + 1).await.unwrap());
    assert_eq!(
        by_method,
        [
            ("getChatMember".to_string(), 2),
            ("restrictChatMember".to_string(), 1)
        ]
    );
}

async fn event_ids_only_grow_and_replay_after_a_cursor(db: &TestDb) {
    let mut ids = Vec::new();
    for n in 0..5 {
        let event = db
            .store
            .append_event("bot_status", Some(n), &json!({ "n": n }))
            .await
            .unwrap();
        assert_eq!(event.payload, Json(json!({ "n": n })));
        ids.push(event.id);
    }
    assert!(ids.windows(2).all(|pair| pair[0] < pair[1]), "{ids:?}");

    let missed = db.store.events_after(ids[1], 100).await.unwrap();
    assert_eq!(missed.iter().map(|e| e.id).collect::<Vec<_>>(), ids[2..]);
    let page = db.store.events_before(None, 2).await.unwrap();
    assert_eq!(
        page.iter().map(|e| e.id).collect::<Vec<_>>(),
        [ids[4], ids[3]]
    );
    let older = db.store.events_before(Some(ids[3]), 10).await.unwrap();
    assert_eq!(older.len(), 3);

    // Pruning the newest rows must not let a later event reuse an id.
    assert_eq!(db.store.prune_events(i64::MAX).await.unwrap(), 5);
    let next = db
        .store
        .append_event("activity", None, &json!({}))
        .await
        .unwrap();
    assert!(next.id > ids[4]);
}

/// A burst as the Broadcaster stores it: plain events go in multi-row statements, a transition
/// alone after its update; the ids still follow the order of publication, which an SSE client's
/// cursor relies on.
async fn a_burst_of_events_is_stored_in_the_order_published(db: &TestDb) {
    let bot = db.store.insert_bot(&new_bot(7101)).await.unwrap();
    let plain = |n: i64| NewEvent {
        kind: "activity".into(),
        bot_instance_id: Some(bot.id),
        payload: json!({ "n": n }),
        transition: None,
    };
    let mut burst: Vec<NewEvent> = (0..1_500).map(plain).collect();
    burst.insert(
        700,
        NewEvent {
            kind: "bot_status".into(),
            bot_instance_id: Some(bot.id),
            payload: json!({ "n": "transition" }),
            transition: Some(RunStateUpdate {
                state: RunState::Running,
                reason: None,
                code: None,
                last_error: None,
                next_attempt_at: None,
                restarted: true,
                attempt: 1,
            }),
        },
    );
    burst.extend((1_500..1_503).map(plain));
    let stored = db.store.append_events(&burst).await.unwrap();
    let published: Vec<&serde_json::Value> = burst.iter().map(|e| &e.payload["n"]).collect();
    let returned: Vec<&serde_json::Value> = stored.iter().map(|e| &e.payload.0["n"]).collect();
    assert_eq!(returned, published);
    assert!(stored.windows(2).all(|pair| pair[0].id < pair[1].id));
    assert_eq!(stored[700].kind, "bot_status");
    assert_eq!(stored[700].payload.0["restart_count"], json!(1));
    let replayed = db.store.events_after(0, 2_000).await.unwrap();
    let replayed: Vec<&serde_json::Value> = replayed.iter().map(|e| &e.payload.0["n"]).collect();
    assert_eq!(replayed, published);
    assert_eq!(
        db.store.bot(bot.id).await.unwrap().run_state,
        RunState::Running
    );
}

async fn events_are_told_apart_by_the_process_that_stored_them(db: &TestDb) {
    assert_eq!(db.store.newest_event_id().await.unwrap(), 0);
    let other = db.attach().await;
    assert_ne!(db.store.origin(), other.store.origin());
    let own = db
        .store
        .append_event("audit", None, &json!({}))
        .await
        .unwrap();
    let theirs = other
        .store
        .append_event("audit", None, &json!({}))
        .await
        .unwrap();
    assert_eq!(db.store.newest_event_id().await.unwrap(), theirs.id);
    let replay = db.store.others_events_after(0, 10).await.unwrap();
    assert_eq!(replay.iter().map(|e| e.id).collect::<Vec<_>>(), [theirs.id]);
    let replay = other.store.others_events_after(0, 10).await.unwrap();
    assert_eq!(replay.iter().map(|e| e.id).collect::<Vec<_>>(), [own.id]);
    assert!(
        db.store
            .others_events_after(theirs.id, 10)
            .await
            .unwrap()
            .is_empty()
    );
    other.finish().await;
}

fn log(level: &str, target: &str, message: &str, created_at: i64) -> NewLog {
    NewLog {
        level: level.into(),
        target: target.into(),
        message: message.into(),
        fields: json!({ "bot_id": 3 }),
        bot_instance_id: Some(3),
        created_at,
    }
}

async fn logs_filter_by_level_target_text_and_page(db: &TestDb) {
    let t = 1_700_000_000_000;
    db.store
        .insert_logs(&[
            log("info", "nezuko::db", "Connected to Store", t),
            log("warn", "nezuko::db::bots", "slow query", t + 1),
            log("error", "nezuko::telegram", "Telegram said 409", t + 2),
            log("info", "nezuko::dbx", "not a child of nezuko::db", t + 3),
        ])
        .await
        .unwrap();
    let query = |filter: LogFilter| async move {
        let rows = db
            .store
            .query_logs(&LogFilter {
                limit: 50,
                ..filter
            })
            .await
            .unwrap();
        rows.into_iter().map(|r| r.message).collect::<Vec<_>>()
    };

    assert_eq!(query(LogFilter::default()).await.len(), 4);
    assert_eq!(
        query(LogFilter {
            levels: vec!["warn".into(), "error".into()],
            ..Default::default()
        })
        .await,
        ["Telegram said 409", "slow query"]
    );
    assert_eq!(
        query(LogFilter {
            target: Some("nezuko::db".into()),
            ..Default::default()
        })
        .await,
        ["slow query", "Connected to Store"]
    );
    assert_eq!(
        query(LogFilter {
            text: Some("STORE".into()),
            ..Default::default()
        })
        .await,
        ["Connected to Store"]
    );
    assert_eq!(
        query(LogFilter {
            from: Some(t + 1),
            to: Some(t + 3),
            ..Default::default()
        })
        .await
        .len(),
        2
    );
    let first_page = db
        .store
        .query_logs(&LogFilter {
            limit: 2,
            ..Default::default()
        })
        .await
        .unwrap();
    let next_page = query(LogFilter {
        before_id: Some(first_page[1].id),
        ..Default::default()
    })
    .await;
    assert_eq!(next_page, ["slow query", "Connected to Store"]);
    assert_eq!(first_page[0].fields, Json(json!({ "bot_id": 3 })));
    assert_eq!(db.store.prune_logs(t + 2).await.unwrap(), 2);
}

async fn log_search_treats_wildcards_literally(db: &TestDb) {
    let t = 1_700_000_000_000;
    db.store
        .insert_logs(&[
            log("info", "a", "100% done", t),
            log("info", "a", "100 done", t),
            log("info", "a_b", "x", t),
        ])
        .await
        .unwrap();
    let rows = db
        .store
        .query_logs(&LogFilter {
            text: Some("0%".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    let rows = db
        .store
        .query_logs(&LogFilter {
            target: Some("a".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(rows.len(), 2, "`a` must not match `a_b`");
}

async fn sessions_expire_and_end_at_logout(db: &TestDb) {
    let now = now_ms();
    let session = |id: &str, expires_at| SessionRow {
        id_hash: id.into(),
        telegram_user_id: 1000,
        csrf_token: format!("csrf-{id}"),
        user_agent: Some("test".into()),
        ip: Some("127.0.0.1".into()),
        created_at: now,
        last_seen_at: now,
        expires_at,
    };
    db.store
        .create_session(&session("live", now + 60_000))
        .await
        .unwrap();
    db.store
        .create_session(&session("expired", now - 1))
        .await
        .unwrap();

    let live = db
        .store
        .live_session("live")
        .await
        .unwrap()
        .expect("live session");
    assert_eq!(live.csrf_token, "csrf-live");
    assert!(live.last_seen_at >= now);
    assert_eq!(db.store.live_session("expired").await.unwrap(), None);
    assert_eq!(db.store.delete_expired_sessions().await.unwrap(), 1);
    assert!(db.store.delete_session("live").await.unwrap());
    assert_eq!(db.store.live_session("live").await.unwrap(), None);
    assert!(!db.store.delete_session("live").await.unwrap());
}

async fn settings_are_upserted_and_listed_by_prefix(db: &TestDb) {
    assert_eq!(db.store.setting("policy.action").await.unwrap(), None);
    db.store
        .put_setting("policy.action", &json!("restrict"), Some(1000))
        .await
        .unwrap();
    db.store
        .put_setting("policy.action", &json!("ban"), Some(1000))
        .await
        .unwrap();
    db.store
        .put_setting("policy.grace_s", &json!(30), None)
        .await
        .unwrap();
    db.store
        .put_setting("policyx", &json!(true), None)
        .await
        .unwrap();
    assert_eq!(
        db.store.setting("policy.action").await.unwrap(),
        Some(json!("ban"))
    );
    let listed = db.store.settings_with_prefix("policy.").await.unwrap();
    assert_eq!(
        listed,
        [
            ("policy.action".to_string(), json!("ban")),
            ("policy.grace_s".to_string(), json!(30))
        ]
    );
}

async fn audit_entries_filter_by_action_and_page(db: &TestDb) {
    let entry = |action: &str, target_id: &str| NewAuditEntry {
        actor_id: Some(1000),
        actor_name: "owner".into(),
        action: action.into(),
        target_type: "bot".into(),
        target_id: Some(target_id.into()),
        before: Some(json!({ "desired_state": "enabled" })),
        after: Some(json!({ "desired_state": "disabled" })),
        ip: Some("127.0.0.1".into()),
    };
    let first = db
        .store
        .append_audit(&entry("bot.disable", "1"))
        .await
        .unwrap();
    assert_eq!(
        first.after,
        Some(Json(json!({ "desired_state": "disabled" })))
    );
    db.store
        .append_audit(&entry("bot.enable", "1"))
        .await
        .unwrap();
    db.store
        .append_audit(&entry("bot.disable", "2"))
        .await
        .unwrap();

    let disables = db
        .store
        .query_audit(&AuditFilter {
            action: Some("bot.disable".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        disables
            .iter()
            .map(|e| e.target_id.clone().unwrap())
            .collect::<Vec<_>>(),
        ["2", "1"]
    );
    let older = db
        .store
        .query_audit(&AuditFilter {
            before_id: Some(disables[0].id),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(older.len(), 2);
    let by_other = db
        .store
        .query_audit(&AuditFilter {
            actor_id: Some(1),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(by_other.is_empty());
}

fn progress(bot_instance_id: i64, highest_update_id: i64, pending: Vec<i64>) -> UpdateProgress {
    UpdateProgress {
        bot_instance_id,
        highest_update_id,
        pending,
    }
}

async fn update_progress_is_kept_per_bot_and_skips_deleted_bots(db: &TestDb) {
    let kept = db.store.insert_bot(&new_bot(7101)).await.unwrap();
    let deleted = db.store.insert_bot(&new_bot(7102)).await.unwrap();
    db.store.delete_bot(deleted.id).await.unwrap();
    // A later row for the same bot replaces an earlier one in the same batch; the deleted bot's
    // row (still queued when it was deleted) is passed over instead of failing the batch.
    db.store
        .keep_update_progress(&[
            progress(kept.id, 10, vec![9]),
            progress(deleted.id, 4, vec![]),
            progress(kept.id, 12, vec![11, 12]),
        ])
        .await
        .unwrap();
    assert_eq!(
        db.store.update_progress(kept.id).await.unwrap(),
        Some(progress(kept.id, 12, vec![11, 12]))
    );
    assert_eq!(db.store.update_progress(deleted.id).await.unwrap(), None);
    // Overwritten by the next batch.
    db.store
        .keep_update_progress(&[progress(kept.id, 20, vec![])])
        .await
        .unwrap();
    assert_eq!(
        db.store.update_progress(kept.id).await.unwrap(),
        Some(progress(kept.id, 20, vec![]))
    );
}
