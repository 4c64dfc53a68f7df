//! Changing a member's standing, and what Telegram sends when it changes: `chat_member` to the
//! administrator bots that asked for it, `my_chat_member` to the member if it is a bot, and the
//! join and leave service messages of groups.

use serde_json::json;

use super::{Draft, Payload, World};
use crate::api::ApiError;
use crate::model::{Account, ChatKind, Status};

impl World {
    /// Sets a member's status as `actor` changed it, and produces the updates Telegram would.
    pub fn set_status(
        &mut self,
        chat_id: i64,
        user: i64,
        new: Status,
        actor: i64,
    ) -> Result<(), ApiError> {
        self.change_status(chat_id, user, new, actor, false)
    }

    /// A join request `approver` approved: the `chat_member` update says `via_join_request`, and
    /// the join's service message is the member's own.
    pub fn set_status_by_request(
        &mut self,
        chat_id: i64,
        user: i64,
        new: Status,
        approver: i64,
    ) -> Result<(), ApiError> {
        self.change_status(chat_id, user, new, approver, true)
    }

    fn change_status(
        &mut self,
        chat_id: i64,
        user: i64,
        new: Status,
        actor: i64,
        via_join_request: bool,
    ) -> Result<(), ApiError> {
        let old = self.status(chat_id, user);
        let kind = self.chat(chat_id)?.kind;
        self.chat_mut(chat_id)?.members.insert(user, new.clone());
        if old == new {
            return Ok(());
        }
        let account = self.account(user)?.clone();
        let mut change = json!({
            "chat": self.chat_json(chat_id)?,
            "from": self.accounts.get(&actor).unwrap_or(&account).to_json(),
            "date": self.now(),
            "old_chat_member": old.to_json(&account, kind),
            "new_chat_member": new.to_json(&account, kind),
        });
        if via_join_request {
            change["via_join_request"] = json!(true);
        }
        let change = Payload::new(change);
        if self.bots.contains_key(&user) {
            self.push_update(user, "my_chat_member", &change);
        }
        for bot in self.admin_bots(chat_id) {
            if bot != user {
                self.push_update(bot, "chat_member", &change);
            }
        }
        if kind.is_group() {
            let sender = if via_join_request { user } else { actor };
            self.membership_service_message(chat_id, &account, &old, &new, sender)?;
        }
        Ok(())
    }

    /// Sets a member's status and tells nobody: a test fixture for a world that already is so.
    pub fn set_status_silently(
        &mut self,
        chat_id: i64,
        user: i64,
        status: Status,
    ) -> Result<(), ApiError> {
        self.account(user)?;
        self.chat_mut(chat_id)?.members.insert(user, status);
        Ok(())
    }

    /// "X joined" or "X left / was removed", in the General topic of a forum.
    fn membership_service_message(
        &mut self,
        chat_id: i64,
        account: &Account,
        old: &Status,
        new: &Status,
        actor: i64,
    ) -> Result<(), ApiError> {
        let field = match (old.is_present(), new.is_present()) {
            (false, true) => json!({ "new_chat_members": [account.to_json()] }),
            (true, false) => json!({ "left_chat_member": account.to_json() }),
            _ => return Ok(()),
        };
        let from = if self.accounts.contains_key(&actor) {
            actor
        } else {
            account.id
        };
        let message = self.record_message(Draft::new(chat_id, from, field))?;
        self.broadcast_service(chat_id, account.id, &message);
        Ok(())
    }

    /// The standing of someone who joins now: a restriction outlives leaving and applies again on
    /// return; a banned user cannot join.
    pub fn status_on_joining(&self, chat: i64, user: i64) -> Result<Option<Status>, ApiError> {
        Ok(match self.status(chat, user) {
            Status::Kicked { .. } => {
                return Err(ApiError::forbidden("user is banned in the chat"));
            }
            status if status.is_present() => None,
            Status::Restricted {
                permissions,
                until_date,
                ..
            } => Some(Status::Restricted {
                permissions,
                until_date,
                is_member: true,
            }),
            _ => Some(Status::Member),
        })
    }

    /// Whether `admin` may restrict and ban others in `chat` (as a person; bots use `bot_rights`).
    pub fn can_restrict(&self, chat: i64, admin: i64) -> bool {
        self.status(chat, admin).rights().can_restrict_members
    }

    /// A chat a member can be restricted in: Telegram restricts only in supergroups.
    pub fn require_supergroup(&self, chat: i64) -> Result<(), ApiError> {
        match self.chat(chat)?.kind {
            ChatKind::Supergroup => Ok(()),
            _ => Err(ApiError::bad_request(
                "method is available only for supergroups",
            )),
        }
    }
}
