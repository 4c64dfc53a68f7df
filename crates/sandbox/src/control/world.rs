//! Building the world: accounts, chats, standing fixtures, administrators, discussion groups,
//! forum topics and the upgrade of a basic group.

use super::{ControlError, NewChat, SandboxBot};
use crate::Sandbox;
use crate::model::{Account, AdminRights, ChatKind, Status};
use crate::world::World;

impl Sandbox {
    /// A bot account; its username must be free (checked by [`Sandbox::apply`], a test fixture
    /// otherwise).
    pub fn create_bot(&self, first_name: &str, username: &str) -> SandboxBot {
        let (account, token) = self.world().add_bot(first_name, username);
        SandboxBot {
            id: account.id,
            token,
            username: username.to_string(),
        }
    }

    pub fn create_user(&self, first_name: &str, username: Option<&str>) -> Account {
        self.world().add_account(first_name, username, false)
    }

    /// A user with a last name too (Telegram shows "First Last").
    pub fn create_user_with(
        &self,
        first_name: &str,
        last_name: Option<&str>,
        username: Option<&str>,
    ) -> Account {
        let mut world = self.world();
        let mut account = world.add_account(first_name, username, false);
        account.last_name = last_name.map(str::to_string);
        world.accounts.insert(account.id, account.clone());
        account
    }

    /// A basic group, supergroup or channel. A public one has a `username` (`@username` resolves to it).
    pub fn create_chat(&self, kind: ChatKind, title: &str, username: Option<&str>) -> i64 {
        self.world().add_chat(kind, title, username)
    }

    /// A supergroup with topics; messages without a topic go to General.
    pub fn create_forum(&self, title: &str, username: Option<&str>) -> i64 {
        let mut world = self.world();
        let id = world.add_chat(ChatKind::Supergroup, title, username);
        if let Some(chat) = world.chats.get_mut(&id) {
            chat.is_forum = true;
        }
        id
    }

    /// [`Sandbox::create_chat`] or [`Sandbox::create_forum`], as the control API describes it; a
    /// username already taken (by a chat or an account) is refused.
    pub fn create_chat_with(&self, chat: &NewChat) -> Result<i64, ControlError> {
        if let Some(name) = &chat.username {
            self.world().check_username(name)?;
        }
        match (chat.is_forum, chat.kind) {
            (false, kind) if kind != ChatKind::Private => {
                Ok(self.create_chat(kind, &chat.title, chat.username.as_deref()))
            }
            (true, ChatKind::Supergroup) => {
                Ok(self.create_forum(&chat.title, chat.username.as_deref()))
            }
            (true, _) => Err(ControlError::Telegram(
                "only a supergroup can be a forum".into(),
            )),
            (false, _) => Err(ControlError::Telegram(
                "a private chat opens when a user writes to a bot (send_private)".into(),
            )),
        }
    }

    /// Sets a member's standing silently: a fixture for a world that already is so. No update
    /// reaches any bot; use [`Sandbox::promote`], the users' and the administrators' operations
    /// for changes Telegram would announce. Restricted members exist only in supergroups.
    pub fn set_member(&self, chat: i64, user: i64, status: Status) -> Result<(), ControlError> {
        let mut world = self.world();
        check_ids(&world, chat, user)?;
        if matches!(status, Status::Restricted { .. })
            && world.chats[&chat].kind != ChatKind::Supergroup
        {
            return Err(ControlError::Telegram(
                "restricted members exist only in supergroups".into(),
            ));
        }
        Ok(world.set_status_silently(chat, user, status)?)
    }

    /// The chat's creator makes `user` (typically a bot) an administrator with `rights`; the bot
    /// gets `my_chat_member`, admin bots `chat_member`, as Telegram sends them. Every
    /// administrator can manage the chat ("implied by any other administrator privilege",
    /// Bot API `ChatAdministratorRights`). The creator cannot be promoted, nor a banned or deleted
    /// account.
    pub fn promote(&self, chat: i64, user: i64, rights: AdminRights) -> Result<(), ControlError> {
        let rights = AdminRights {
            can_manage_chat: true,
            ..rights
        };
        self.set_by_creator(chat, user, Status::Administrator { rights })
    }

    /// The chat's creator takes `user`'s administrator rights away: a plain member again.
    pub fn demote(&self, chat: i64, user: i64) -> Result<(), ControlError> {
        self.set_by_creator(chat, user, Status::Member)
    }

    fn set_by_creator(&self, chat: i64, user: i64, status: Status) -> Result<(), ControlError> {
        let mut world = self.world();
        check_ids(&world, chat, user)?;
        let refuse = |reason: &str| ControlError::NotAllowed {
            chat,
            user,
            reason: reason.to_string(),
        };
        let creator = world
            .creator_of(chat)
            .ok_or_else(|| refuse("the chat has no creator to act (set one with set_member)"))?;
        match world.status(chat, user) {
            Status::Creator => return Err(refuse("the creator's rights cannot be changed")),
            Status::Kicked { .. } => return Err(refuse("a banned user cannot be promoted")),
            _ if world.accounts[&user].deleted => {
                return Err(refuse("a deleted account cannot be promoted"));
            }
            _ => {}
        }
        Ok(world.set_status(chat, user, status, creator)?)
    }

    /// Makes `group` the discussion group of `channel` (each loses its previous link): the
    /// channel's posts arrive in the group as automatic forwards.
    pub fn link_discussion(&self, channel: i64, group: i64) -> Result<(), ControlError> {
        Ok(self.world().link_discussion(channel, group)?)
    }

    /// `user` opens a topic in a forum; returns its `message_thread_id`. Only the creator and
    /// administrators with `can_manage_topics` may (members' default permissions here do not
    /// include it).
    pub fn create_topic(&self, chat: i64, user: i64, name: &str) -> Result<i64, ControlError> {
        let mut world = self.world();
        check_ids(&world, chat, user)?;
        if world.accounts[&user].deleted {
            return Err(ControlError::Deleted(user));
        }
        let status = world.status(chat, user);
        if !status.is_present() || !status.rights().can_manage_topics {
            return Err(ControlError::NotAllowed {
                chat,
                user,
                reason: "only an administrator with can_manage_topics opens topics here".into(),
            });
        }
        Ok(world.create_topic(chat, user, name)?)
    }

    /// Deletes a forum topic: sending to it fails from now on.
    pub fn delete_topic(&self, chat: i64, thread: i64) -> Result<(), ControlError> {
        Ok(self.world().delete_topic(chat, thread)?)
    }

    /// The creator upgrades a basic group to a supergroup; returns the supergroup's id.
    pub fn upgrade_group(&self, chat: i64, user: i64) -> Result<i64, ControlError> {
        let mut world = self.world();
        check_ids(&world, chat, user)?;
        Ok(world.upgrade_group(chat, user)?)
    }
}

/// The chat and the account exist.
pub(super) fn check_ids(world: &World, chat: i64, user: i64) -> Result<(), ControlError> {
    if !world.chats.contains_key(&chat) {
        return Err(ControlError::UnknownChat(chat));
    }
    if !world.accounts.contains_key(&user) {
        return Err(ControlError::UnknownAccount(user));
    }
    Ok(())
}
