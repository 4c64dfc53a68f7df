//! The verdict: how `require` and `fail_mode` read a check.

use std::sync::Arc;

use sqlx::types::Json;

use super::*;
use crate::db::{ChannelRow, GroupRow};
use crate::enforce::policy::Policy;
use crate::enforce::texts::Texts;

fn channel(id: i64) -> ChannelRow {
    ChannelRow {
        id,
        chat_id: -100 - id,
        title: format!("Channel {id}"),
        username: None,
        invite_link: None,
        is_private: true,
        created_at: 0,
        updated_at: 0,
    }
}

fn view(require: Require, fail_mode: FailMode) -> GroupView {
    GroupView {
        group: GroupRow {
            id: 1,
            bot_instance_id: 1,
            chat_id: -1,
            title: "G".into(),
            username: None,
            enabled: true,
            policy: Json(serde_json::json!({})),
            health: "ok".into(),
            health_detail: None,
            health_checked_at: None,
            member_count: None,
            created_at: 0,
            updated_at: 0,
            chat_type: "supergroup".into(),
        },
        channels: vec![channel(1), channel(2)],
        policy: Policy {
            require,
            fail_mode,
            ..Policy::default()
        },
        texts: Arc::new(Texts::default()),
    }
}

fn outcome(subscribed: &[i64], missing: &[i64], unknown: &[i64]) -> CheckOutcome {
    CheckOutcome {
        subscribed: subscribed.iter().map(|id| channel(*id)).collect(),
        missing: missing.iter().map(|id| channel(*id)).collect(),
        unknown: unknown
            .iter()
            .map(|id| (channel(*id), "member list is inaccessible".into()))
            .collect(),
        cached: false,
    }
}

#[test]
fn all_channels_are_needed_unless_the_group_asks_for_any() {
    let all = view(Require::All, FailMode::Open);
    let any = view(Require::Any, FailMode::Open);
    let one_of_two = outcome(&[1], &[2], &[]);
    assert_eq!(
        verdict(&all, &one_of_two),
        Verdict::Denied { unconfirmed: false }
    );
    assert_eq!(
        verdict(&any, &one_of_two),
        Verdict::Allowed { assumed: false }
    );
    assert_eq!(
        verdict(&all, &outcome(&[1, 2], &[], &[])),
        Verdict::Allowed { assumed: false }
    );
    assert_eq!(
        verdict(&any, &outcome(&[], &[1, 2], &[])),
        Verdict::Denied { unconfirmed: false }
    );
}

#[test]
fn an_unknown_answer_is_never_read_as_not_subscribed() {
    let open = view(Require::All, FailMode::Open);
    let closed = view(Require::All, FailMode::Closed);
    let unknown = outcome(&[1], &[], &[2]);
    assert_eq!(verdict(&open, &unknown), Verdict::Allowed { assumed: true });
    assert_eq!(
        verdict(&closed, &unknown),
        Verdict::Denied { unconfirmed: true }
    );
    // A channel known to be missing decides, whatever the unknown one would have said.
    assert_eq!(
        verdict(&open, &outcome(&[], &[1], &[2])),
        Verdict::Denied { unconfirmed: false }
    );
    let any_closed = view(Require::Any, FailMode::Closed);
    assert_eq!(
        verdict(&any_closed, &outcome(&[], &[1], &[2])),
        Verdict::Denied { unconfirmed: true }
    );
    assert_eq!(
        verdict(&any_closed, &outcome(&[2], &[], &[1])),
        Verdict::Allowed { assumed: false }
    );
}

#[test]
fn a_fail_closed_warning_names_the_unreadable_channels_too() {
    let names: Vec<i64> = to_name(&outcome(&[], &[1], &[2]))
        .iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(names, [1, 2]);
}
