//! Administrators acting by hand in Telegram's app: restricting, banning, unbanning and lifting a
//! restriction. Each change reaches administrator bots as a `chat_member` update whose `from` is
//! that administrator, as Telegram sends it.

use super::world::check_ids;
use super::{AdminRestrict, ControlError};
use crate::Sandbox;
use crate::api::{effective_until, restricted};
use crate::model::{ChatKind, Status, uniform_permissions};
use crate::world::World;

impl Sandbox {
    /// The administrator restricts a member (a supergroup only, as in Telegram).
    pub fn admin_restrict(&self, restrict: &AdminRestrict) -> Result<(), ControlError> {
        let mut world = self.world();
        authorize(&world, restrict.chat, restrict.admin, restrict.user)?;
        world.require_supergroup(restrict.chat)?;
        let mut permissions = uniform_permissions(false);
        permissions.extend(restrict.permissions.clone());
        let until = effective_until(world.now(), restrict.until_date);
        let is_member = world.status(restrict.chat, restrict.user).is_present();
        let new = restricted(is_member, permissions, until);
        Ok(world.set_status(restrict.chat, restrict.user, new, restrict.admin)?)
    }

    /// The administrator bans (removes) a member until `until_date`, or forever. The creator
    /// may remove an administrator too (a bot, say), as Telegram's app lets them.
    pub fn admin_ban(
        &self,
        chat: i64,
        admin: i64,
        user: i64,
        until_date: Option<i64>,
    ) -> Result<(), ControlError> {
        let mut world = self.world();
        let by_creator = matches!(world.status(chat, admin), Status::Creator);
        authorize_over(&world, chat, admin, user, by_creator)?;
        let until_date = effective_until(world.now(), until_date);
        Ok(world.set_status(chat, user, Status::Kicked { until_date }, admin)?)
    }

    /// The administrator takes a user off the ban list: they may join again.
    pub fn admin_unban(&self, chat: i64, admin: i64, user: i64) -> Result<(), ControlError> {
        let mut world = self.world();
        authorize(&world, chat, admin, user)?;
        if world.chat(chat)?.kind == ChatKind::Group {
            return Err(ControlError::Telegram(
                "a basic group keeps no ban list to unban from".into(),
            ));
        }
        match world.status(chat, user) {
            Status::Kicked { .. } => Ok(world.set_status(chat, user, Status::Left, admin)?),
            _ => Ok(()),
        }
    }

    /// The administrator lifts a member's restriction: every permission back.
    pub fn admin_lift(&self, chat: i64, admin: i64, user: i64) -> Result<(), ControlError> {
        let mut world = self.world();
        authorize(&world, chat, admin, user)?;
        match world.status(chat, user) {
            Status::Restricted { is_member, .. } => {
                let new = restricted(is_member, uniform_permissions(true), 0);
                Ok(world.set_status(chat, user, new, admin)?)
            }
            _ => Ok(()),
        }
    }
}

/// `admin` may restrict members here, and `user` is not an administrator.
fn authorize(world: &World, chat: i64, admin: i64, user: i64) -> Result<(), ControlError> {
    authorize_over(world, chat, admin, user, false)
}

/// As [`authorize`], optionally over administrators (never over the creator).
fn authorize_over(
    world: &World,
    chat: i64,
    admin: i64,
    user: i64,
    over_admins: bool,
) -> Result<(), ControlError> {
    check_ids(world, chat, admin)?;
    check_ids(world, chat, user)?;
    if world.accounts[&admin].deleted {
        return Err(ControlError::Deleted(admin));
    }
    if let Some(to) = world.chats[&chat].migrated_to {
        return Err(ControlError::Upgraded { chat, to });
    }
    if !world.can_restrict(chat, admin) {
        return Err(ControlError::NotAllowed {
            chat,
            user: admin,
            reason: "an administrator with the right to ban users acts here".into(),
        });
    }
    let target = world.status(chat, user);
    if matches!(target, Status::Creator) || (target.is_admin() && !over_admins) {
        return Err(ControlError::NotAllowed {
            chat,
            user: admin,
            reason: format!("user {user} is an administrator"),
        });
    }
    Ok(())
}
