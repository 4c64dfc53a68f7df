//! Every control operation as one typed value, read from JSON (`{"op": "join", "chat": …}`) and
//! carried out by [`Sandbox::apply`]. The README documents each with an example; a test reads
//! those examples back into this type, so the two cannot drift.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use strum::VariantNames;

use super::ControlError;
use crate::Sandbox;
use crate::faults::{Fault, RateLimits};
use crate::model::{AdminRights, ChatKind, Permissions, Status};

/// A chat and a user in it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatUser {
    pub chat: i64,
    pub user: i64,
}

/// A chat to create. A forum is a supergroup with topics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewChat {
    pub kind: ChatKind,
    pub title: String,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub is_forum: bool,
}

/// A message a user writes in a group or channel discussion.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Say {
    pub chat: i64,
    pub user: i64,
    pub text: String,
    /// Write as this chat: the group itself (an anonymous administrator) or a channel the user
    /// administers. Telegram shows `@GroupAnonymousBot` or `@Channel_Bot` as the sender.
    #[serde(default)]
    pub sender_chat: Option<i64>,
    /// The forum topic (`message_thread_id`); `None` writes in General.
    #[serde(default)]
    pub thread: Option<i64>,
    /// The message this one replies to.
    #[serde(default)]
    pub reply_to: Option<i64>,
}

impl Say {
    pub fn new(chat: i64, user: i64, text: &str) -> Self {
        Self {
            chat,
            user,
            text: text.to_string(),
            ..Self::default()
        }
    }
}

/// A user forwards a channel's post into a chat.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Forward {
    pub chat: i64,
    pub user: i64,
    pub from_chat: i64,
    pub message_id: i64,
    #[serde(default)]
    pub thread: Option<i64>,
}

/// An administrator restricts a member by hand.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminRestrict {
    pub chat: i64,
    pub admin: i64,
    pub user: i64,
    /// What the member may still do; absent names are not allowed. Default: nothing.
    #[serde(default)]
    pub permissions: Permissions,
    /// Unix seconds; absent or outside Telegram's window (30 s to 366 days ahead): forever.
    #[serde(default)]
    pub until_date: Option<i64>,
}

/// Every operation of the control API. Over HTTP the variant is the path
/// (`POST /_sandbox/admin_ban`) and its fields the JSON body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, strum::VariantNames)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
#[strum(serialize_all = "snake_case")]
pub enum Operation {
    // Building the world.
    CreateBot {
        first_name: String,
        #[serde(default)]
        username: Option<String>,
    },
    CreateUser {
        first_name: String,
        #[serde(default)]
        last_name: Option<String>,
        #[serde(default)]
        username: Option<String>,
    },
    CreateChat(NewChat),
    /// Sets a standing silently: a fixture for a world that already is so; no update is sent.
    SetMember {
        chat: i64,
        user: i64,
        status: Status,
    },
    /// The chat's creator makes `user` an administrator (updates are sent).
    Promote {
        chat: i64,
        user: i64,
        #[serde(default)]
        rights: AdminRights,
    },
    /// The chat's creator takes `user`'s administrator rights away (updates are sent).
    Demote(ChatUser),
    LinkDiscussion {
        channel: i64,
        group: i64,
    },
    CreateTopic {
        chat: i64,
        user: i64,
        name: String,
    },
    DeleteTopic {
        chat: i64,
        thread: i64,
    },
    UpgradeGroup(ChatUser),
    // Users acting.
    Join(ChatUser),
    Leave(ChatUser),
    /// Returns `{"query_id": …}`: the guard bot's query, or null.
    RequestJoin(ChatUser),
    WithdrawJoinRequest(ChatUser),
    /// Returns `{"url": …, "init_data": …}`.
    OpenJoinWebApp {
        query: String,
    },
    Send(Say),
    Forward(Forward),
    SendPrivate {
        bot: i64,
        user: i64,
        text: String,
    },
    Post {
        chat: i64,
        text: String,
    },
    Edit {
        chat: i64,
        message_id: i64,
        user: i64,
        text: String,
    },
    PressButton {
        chat: i64,
        message_id: i64,
        user: i64,
        data: String,
    },
    BlockBot {
        user: i64,
        bot: i64,
    },
    UnblockBot {
        user: i64,
        bot: i64,
    },
    DeleteAccount {
        user: i64,
    },
    // Administrators acting by hand.
    AdminRestrict(AdminRestrict),
    AdminBan {
        chat: i64,
        admin: i64,
        user: i64,
        #[serde(default)]
        until_date: Option<i64>,
    },
    AdminUnban {
        chat: i64,
        admin: i64,
        user: i64,
    },
    AdminLift {
        chat: i64,
        admin: i64,
        user: i64,
    },
    /// The chat's owner assigns a guard bot for join requests (`bot: null` unassigns).
    SetJoinGuard {
        chat: i64,
        #[serde(default)]
        bot: Option<i64>,
    },
    // Reading back.
    JoinRequests {
        chat: i64,
    },
    Member(ChatUser),
    Chat {
        chat: i64,
    },
    Transcript {
        chat: i64,
    },
    Blocked {
        chat: i64,
    },
    LatestButton {
        chat: i64,
    },
    CallbackAnswer {
        id: String,
    },
    Calls {
        #[serde(default)]
        bot: Option<i64>,
        #[serde(default)]
        method: Option<String>,
    },
    Violations,
    Counters,
    PendingUpdates {
        bot: i64,
    },
    IsPolling {
        bot: i64,
    },
    WaitForCall {
        bot: i64,
        method: String,
        #[serde(default)]
        after: usize,
        #[serde(default = "default_wait_ms")]
        timeout_ms: u64,
    },
    // The operator's levers.
    InjectFault(Fault),
    ClearFaults,
    RevokeToken {
        bot: i64,
    },
    RestoreToken {
        bot: i64,
    },
    RotateToken {
        bot: i64,
    },
    AdvanceClock {
        seconds: i64,
    },
    SetRateLimits(RateLimits),
}

fn default_wait_ms() -> u64 {
    10_000
}

/// The snake_case names of every operation, as they appear in `/_sandbox/<name>`.
pub fn operation_names() -> &'static [&'static str] {
    Operation::VARIANTS
}

/// Why a JSON body is not an operation.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OperationError {
    #[error("unknown control operation `{0}`; the operations are: {names}", names = operation_names().join(", "))]
    Unknown(String),
    #[error("bad arguments for `{op}`: {reason}")]
    BadArguments { op: String, reason: String },
}

impl Operation {
    /// Reads `/_sandbox/<name>` with its JSON body (an object, or nothing).
    pub fn parse(name: &str, body: Value) -> Result<Self, OperationError> {
        if !operation_names().contains(&name) {
            return Err(OperationError::Unknown(name.to_string()));
        }
        let mut object = match body {
            Value::Object(object) => object,
            Value::Null => Default::default(),
            other => {
                return Err(OperationError::BadArguments {
                    op: name.to_string(),
                    reason: format!("the body must be a JSON object, not {other}"),
                });
            }
        };
        object.insert("op".into(), json!(name));
        serde_json::from_value(Value::Object(object)).map_err(|e| OperationError::BadArguments {
            op: name.to_string(),
            reason: e.to_string(),
        })
    }
}

fn done() -> Value {
    json!(true)
}

fn to_json<T: Serialize>(value: T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

impl Sandbox {
    /// Carries out one operation and returns its result as JSON.
    pub async fn apply(&self, operation: Operation) -> Result<Value, ControlError> {
        use Operation as Op;
        Ok(match operation {
            Op::CreateBot {
                first_name,
                username,
            } => {
                let username = match username {
                    Some(name) => name,
                    None => self.world().free_bot_username(),
                };
                self.world().check_username(&username)?;
                to_json(self.create_bot(&first_name, &username))
            }
            Op::CreateUser {
                first_name,
                last_name,
                username,
            } => {
                if let Some(name) = &username {
                    self.world().check_username(name)?;
                }
                to_json(self.create_user_with(
                    &first_name,
                    last_name.as_deref(),
                    username.as_deref(),
                ))
            }
            Op::CreateChat(chat) => json!({ "id": self.create_chat_with(&chat)? }),
            Op::SetMember { chat, user, status } => {
                self.set_member(chat, user, status).map(|()| done())?
            }
            Op::Promote { chat, user, rights } => {
                self.promote(chat, user, rights).map(|()| done())?
            }
            Op::Demote(at) => self.demote(at.chat, at.user).map(|()| done())?,
            Op::LinkDiscussion { channel, group } => {
                self.link_discussion(channel, group).map(|()| done())?
            }
            Op::CreateTopic { chat, user, name } => {
                json!({ "message_thread_id": self.create_topic(chat, user, &name)? })
            }
            Op::DeleteTopic { chat, thread } => self.delete_topic(chat, thread).map(|()| done())?,
            Op::UpgradeGroup(at) => json!({ "id": self.upgrade_group(at.chat, at.user)? }),
            Op::Join(at) => self.join(at.chat, at.user).map(|()| done())?,
            Op::Leave(at) => self.leave(at.chat, at.user).map(|()| done())?,
            Op::RequestJoin(at) => json!({ "query_id": self.request_join(at.chat, at.user)? }),
            Op::WithdrawJoinRequest(at) => self
                .withdraw_join_request(at.chat, at.user)
                .map(|()| done())?,
            Op::OpenJoinWebApp { query } => to_json(self.open_join_web_app(&query)?),
            Op::SetJoinGuard { chat, bot } => self.set_join_guard(chat, bot).map(|()| done())?,
            Op::JoinRequests { chat } => to_json(self.join_requests(chat)?),
            Op::Send(say) => json!({ "message_id": self.say(&say)? }),
            Op::Forward(forward) => json!({ "message_id": self.forward(&forward)? }),
            Op::SendPrivate { bot, user, text } => {
                json!({ "message_id": self.send_private(bot, user, &text)? })
            }
            Op::Post { chat, text } => json!({ "message_id": self.post(chat, &text)? }),
            Op::Edit {
                chat,
                message_id,
                user,
                text,
            } => self.edit(chat, message_id, user, &text).map(|()| done())?,
            Op::PressButton {
                chat,
                message_id,
                user,
                data,
            } => json!({ "callback_id": self.press_button(chat, message_id, user, &data)? }),
            Op::BlockBot { user, bot } => self.block_bot(user, bot).map(|()| done())?,
            Op::UnblockBot { user, bot } => self.unblock_bot(user, bot).map(|()| done())?,
            Op::DeleteAccount { user } => self.delete_account(user).map(|()| done())?,
            Op::AdminRestrict(restrict) => self.admin_restrict(&restrict).map(|()| done())?,
            Op::AdminBan {
                chat,
                admin,
                user,
                until_date,
            } => self
                .admin_ban(chat, admin, user, until_date)
                .map(|()| done())?,
            Op::AdminUnban { chat, admin, user } => {
                self.admin_unban(chat, admin, user).map(|()| done())?
            }
            Op::AdminLift { chat, admin, user } => {
                self.admin_lift(chat, admin, user).map(|()| done())?
            }
            Op::Member(at) => to_json(self.member(at.chat, at.user)),
            Op::Chat { chat } => self.chat_json(chat)?,
            Op::Transcript { chat } => to_json(self.transcript(chat)),
            Op::Blocked { chat } => to_json(self.blocked(chat)),
            Op::LatestButton { chat } => match self.latest_button(chat) {
                Some((message_id, data, user)) => {
                    json!({ "message_id": message_id, "data": data, "user": user })
                }
                None => Value::Null,
            },
            Op::CallbackAnswer { id } => self.callback_answer(&id).unwrap_or(Value::Null),
            Op::Calls { bot, method } => to_json(self.calls(bot, method.as_deref())),
            Op::Violations => to_json(self.violations()),
            Op::Counters => to_json(self.counters()),
            Op::PendingUpdates { bot } => json!(self.pending_updates(bot)),
            Op::IsPolling { bot } => json!(self.is_polling(bot)),
            Op::WaitForCall {
                bot,
                method,
                after,
                timeout_ms,
            } => to_json(
                self.wait_for_call(bot, &method, after, Duration::from_millis(timeout_ms))
                    .await?,
            ),
            Op::InjectFault(fault) => {
                self.inject_fault(fault);
                done()
            }
            Op::ClearFaults => {
                self.clear_faults();
                done()
            }
            Op::RevokeToken { bot } => self.revoke_token(bot).map(|()| done())?,
            Op::RestoreToken { bot } => self.restore_token(bot).map(|()| done())?,
            Op::RotateToken { bot } => json!({ "token": self.rotate_token(bot)? }),
            Op::AdvanceClock { seconds } => {
                self.advance_clock(seconds);
                done()
            }
            Op::SetRateLimits(limits) => {
                self.set_rate_limits(limits);
                done()
            }
        })
    }
}
