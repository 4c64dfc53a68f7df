//! A member left or (re)joined a linked channel (the channel's `chat_member` updates).

use teloxide::types::User;

use super::super::actions::{self, Lifted, Member, Why};
use super::super::context::Turn;
use super::super::standing::{self, Standing};
use super::{Verdict, exempt, to_name, verdict};
use crate::db::RestrictionRow;
use crate::domain::{EndReason, EventKind, Outcome};

/// A member left a channel: in each of this bot's groups that require it where they are known to be
/// (seen joining or writing), they are checked again (the cache now knows) and lose the right to
/// speak if no longer entitled. In other groups their next message meets the same check, since the
/// cache already says they left.
pub async fn left(turn: &Turn, channel: i64, user: &User) -> anyhow::Result<()> {
    let user_id = user.id.0 as i64;
    let groups = turn.shared.store.groups_requiring_channel(channel).await?;
    for row in groups
        .into_iter()
        .filter(|g| g.bot_instance_id == turn.bot() && g.enabled)
    {
        if !turn
            .shared
            .known_members
            .contains_key(&(turn.bot(), row.chat_id, user_id))
        {
            continue;
        }
        let Some(view) = turn.shared.directory.group(turn.bot(), row.chat_id).await? else {
            continue;
        };
        let group = turn.in_group(view, None);
        // Present and able to write: anyone else (gone, banned, restricted by an administrator)
        // is left as they are.
        let standing = match standing::read(&group, row.chat_id, user_id).await {
            Ok(standing) => standing,
            // No answer about the member: the leave is handled again, not passed over.
            Err(error) if crate::telegram::is_weather(&error) => return Err(error.into()),
            Err(_) => continue,
        };
        if !matches!(standing, Standing::Free { .. }) || exempt(&group, user).await {
            continue;
        }
        group.publish(
            EventKind::MemberLeave,
            serde_json::json!({ "group_id": group.view.group.id, "channel_id": channel, "user_id": user_id }),
        );
        let member = Member {
            user_id,
            name: user.full_name(),
        };
        let outcome = group
            .shared
            .checker
            .check(group.calls(), &group.view.channels, user_id, false)
            .await?;
        if let Verdict::Denied { unconfirmed } = verdict(&group.view, &outcome) {
            let why = if unconfirmed {
                Why::Unconfirmed
            } else {
                Why::LeftChannel
            };
            let missing = to_name(&outcome);
            let word = actions::enforce(&group, &member, &missing, why, None).await?;
            let ids: Vec<i64> = missing.iter().map(|c| c.chat_id).collect();
            group.decided(user_id, word, outcome.cached, &ids);
        }
    }
    Ok(())
}

/// A member (re)joined a channel: where the group allows it, Nezuko's restriction is lifted
/// without waiting for the button, if it is still Nezuko's as it left it.
pub async fn rejoined(turn: &Turn, channel: i64, user: i64) -> anyhow::Result<()> {
    for record in turn
        .shared
        .store
        .active_restrictions_of_user(turn.bot(), user)
        .await?
    {
        if !record.missing_channels.0.contains(&channel) {
            continue;
        }
        let Some(view) = turn
            .shared
            .directory
            .group(turn.bot(), record.chat_id)
            .await?
        else {
            continue;
        };
        // Off, the member lifts it with the warning's button; once `warning_ttl_s` is up for
        // that warning there is (or soon will be) no button left to press, and rejoining lifts
        // it after all.
        if !view.policy.restore_on_rejoin && !button_expired(turn, &record).await? {
            continue;
        }
        let group = turn.in_group(view, None);
        let outcome = group
            .shared
            .checker
            .check(group.calls(), &group.view.channels, user, false)
            .await?;
        if verdict(&group.view, &outcome) != (Verdict::Allowed { assumed: false }) {
            continue;
        }
        if actions::lift(&group, record.chat_id, user, EndReason::Restored).await?
            == Lifted::Released
        {
            group.decided(user, Outcome::Restored, outcome.cached, &[]);
        }
    }
    Ok(())
}

/// Whether the time of the warning that named the member (and carried their button) is up:
/// its deletion timer (`warning_ttl_s`) came due while they were still held. Due, not done: the
/// member may rejoin while the `deleteMessage` is on its way, and by the time that is recorded
/// their rejoining would have been passed over, leaving them with no button.
async fn button_expired(turn: &Turn, record: &RestrictionRow) -> anyhow::Result<bool> {
    let Some(message_id) = record.warning_message_id else {
        // Not sent yet: it is owed, and comes with its button.
        return Ok(false);
    };
    Ok(turn
        .shared
        .store
        .message_deletion_due(turn.bot(), record.chat_id, message_id)
        .await?)
}
