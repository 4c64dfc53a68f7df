//! Building the world: accounts, chats, standing fixtures, administrators, discussion groups,
//! forum topics and the upgrade of a basic group.

use super::{ControlError, NewChat, SandboxBot};
use crate::Sandbox;
use crate::model::{Account, AdminRights, ChatKind, Status};
use crate::world::World;

impl Sandbox {
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

    /// [`Sandbox::create_chat`] or [`Sandbox::create_forum`], as the control API describes it.
    pub fn create_chat_with(&self, chat: &NewChat) -> Result<i64, ControlError> {
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
    /// for changes Telegram would announce.
    pub fn set_member(&self, chat: i64, user: i64, status: Status) -> Result<(), ControlError> {
        let mut world = self.world();
        check_ids(&world, chat, user)?;
        Ok(world.set_status_silently(chat, user, status)?)
    }

    /// The chat's creator makes `user` (typically a bot) an administrator with `rights`; the bot
    /// gets `my_chat_member`, admin bots `chat_member`, as Telegram sends them.
    pub fn promote(&self, chat: i64, user: i64, rights: AdminRights) -> Result<(), ControlError> {
        self.set_by_creator(chat, user, Status::Administrator { rights })
    }

    /// The chat's creator takes `user`'s administrator rights away: a plain member again.
    pub fn demote(&self, chat: i64, user: i64) -> Result<(), ControlError> {
        self.set_by_creator(chat, user, Status::Member)
    }

    fn set_by_creator(&self, chat: i64, user: i64, status: Status) -> Result<(), ControlError> {
        let mut world = self.world();
        check_ids(&world, chat, user)?;
        let actor = world.creator_of(chat).unwrap_or(user);
        Ok(world.set_status(chat, user, status, actor)?)
    }

    /// Makes `group` the discussion group of `channel`: the channel's posts arrive in the group
    /// as automatic forwards.
    pub fn link_discussion(&self, channel: i64, group: i64) -> Result<(), ControlError> {
        Ok(self.world().link_discussion(channel, group)?)
    }

    /// `user` opens a topic in a forum; returns its `message_thread_id`.
    pub fn create_topic(&self, chat: i64, user: i64, name: &str) -> Result<i64, ControlError> {
        let mut world = self.world();
        check_ids(&world, chat, user)?;
        Ok(world.create_topic(chat, user, name)?)
    }

    /// Deletes a forum topic: sending to it fails from now on.
    pub fn delete_topic(&self, chat: i64, thread: i64) -> Result<(), ControlError> {
        Ok(self.world().delete_topic(chat, thread)?)
    }

    /// An administrator upgrades a basic group to a supergroup; returns the supergroup's id.
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
