//! Which bot enforces each original group. The original's `protected_groups` has no bot column
//! and its database does not say whether one bot (`BOT_TOKEN`) or every active dashboard bot ran
//! (`original-schema.md` §5), so, in this order:
//! 1. the operator's `--group-bot CHAT=BOT` for that group;
//! 2. the operator's former `BOT_TOKEN` (`--bot-token-for-groups`): every group is that bot's;
//! 3. exactly one candidate bot (the only bot, or the only active one): every group is its;
//! 4. otherwise Telegram is asked (`getChatMember` of each candidate bot in the group): the one bot
//!    that is an administrator able to restrict members and delete messages gets the group; of
//!    several such bots, the one that also administers every channel the group requires.
//!    Otherwise (none, or still several) the group is listed for the operator, never guessed.

use std::collections::BTreeMap;

use futures_util::StreamExt;
use teloxide::ApiError;
use teloxide::prelude::Requester;
use teloxide::types::{ChatId, ChatMemberKind, UserId};

use crate::domain::BotToken;

/// A bot that may own groups: its Telegram id, @username and token (to ask Telegram).
#[derive(Debug, Clone)]
pub struct Candidate {
    pub telegram_bot_id: i64,
    pub username: String,
    pub token: BotToken,
}

/// Who owns a group, and how that was decided (for the report).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    Bot {
        telegram_bot_id: i64,
        how: String,
    },
    /// Left to the operator: why, in a sentence.
    Undecided(String),
}

/// What decides when Telegram is not asked.
#[derive(Debug, Clone)]
pub struct Rules {
    /// `--group-bot`: chat id → Telegram bot id.
    pub chosen: BTreeMap<i64, i64>,
    /// The bot of `--bot-token-for-groups`.
    pub standalone: Option<i64>,
    /// Every bot's @username by Telegram id (a chosen bot need not be a candidate).
    pub names: BTreeMap<i64, String>,
}

/// Telegram's answers travel this many at a time.
const PROBES_IN_FLIGHT: usize = 8;

/// The owner of each of `groups` (chat ids), among `candidates`; `channels` are the channels
/// each group requires (by chat id).
pub async fn decide(
    groups: &[i64],
    channels: &BTreeMap<i64, Vec<i64>>,
    candidates: &[Candidate],
    rules: &Rules,
    api_url: &reqwest::Url,
) -> BTreeMap<i64, Owner> {
    let name = |telegram: i64| {
        rules
            .names
            .get(&telegram)
            .map_or_else(|| telegram.to_string(), |username| format!("@{username}"))
    };
    let mut owners = BTreeMap::new();
    let mut to_ask = Vec::new();
    for &chat in groups {
        if let Some(&bot) = rules.chosen.get(&chat) {
            owners.insert(
                chat,
                Owner::Bot {
                    telegram_bot_id: bot,
                    how: format!("{} as chosen (--group-bot)", name(bot)),
                },
            );
        } else if let Some(bot) = rules.standalone {
            owners.insert(
                chat,
                Owner::Bot {
                    telegram_bot_id: bot,
                    how: format!("{}, the former BOT_TOKEN", name(bot)),
                },
            );
        } else if let [only] = candidates {
            owners.insert(
                chat,
                Owner::Bot {
                    telegram_bot_id: only.telegram_bot_id,
                    how: format!("@{}, the only candidate bot", only.username),
                },
            );
        } else if candidates.is_empty() {
            owners.insert(
                chat,
                Owner::Undecided(
                    "the original database holds no bot that can take it: pass the former BOT_TOKEN with --bot-token-for-groups".into(),
                ),
            );
        } else {
            to_ask.push(chat);
        }
    }
    let client = crate::telegram::http_client();
    let pairs: Vec<(i64, &Candidate)> = to_ask
        .iter()
        .flat_map(|&chat| candidates.iter().map(move |candidate| (chat, candidate)))
        .collect();
    let answers = ask(&client, api_url, pairs, can_enforce).await;
    let mut able_in: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    let mut unanswered_in: BTreeMap<i64, Vec<String>> = BTreeMap::new();
    for (chat, bot, answer) in &answers {
        match answer {
            Ok(true) => able_in.entry(*chat).or_default().push(*bot),
            Ok(false) => {}
            Err(why) => unanswered_in
                .entry(*chat)
                .or_default()
                .push(format!("{} ({why})", name(*bot))),
        }
    }
    // Several bots able in a group: the one that also administers every channel the group
    // requires (without that it cannot see who is subscribed) is the one that enforced it (§5).
    let mut channel_pairs: Vec<(i64, &Candidate)> = Vec::new();
    for (chat, able) in &able_in {
        if able.len() > 1 && !unanswered_in.contains_key(chat) {
            for &channel in channels.get(chat).map(Vec::as_slice).unwrap_or_default() {
                for candidate in candidates
                    .iter()
                    .filter(|c| able.contains(&c.telegram_bot_id))
                {
                    channel_pairs.push((channel, candidate));
                }
            }
        }
    }
    let in_channels = ask(&client, api_url, channel_pairs, |_, kind| {
        kind.is_privileged()
    })
    .await;
    for &chat in &to_ask {
        let mut able = able_in.remove(&chat).unwrap_or_default();
        able.sort_unstable();
        let unanswered = unanswered_in.remove(&chat).unwrap_or_default();
        let linked = channels.get(&chat).map(Vec::as_slice).unwrap_or_default();
        let reads_channels: Vec<i64> = able
            .iter()
            .copied()
            .filter(|bot| {
                !linked.is_empty()
                    && linked.iter().all(|channel| {
                        in_channels
                            .iter()
                            .any(|(c, b, answer)| c == channel && b == bot && answer == &Ok(true))
                    })
            })
            .collect();
        let owner = match (able.as_slice(), unanswered.is_empty()) {
            ([only], true) => Owner::Bot {
                telegram_bot_id: *only,
                how: format!(
                    "{}, the only one of {} bots Telegram says administers it",
                    name(*only),
                    candidates.len()
                ),
            },
            (_, false) => Owner::Undecided(format!(
                "Telegram could not be asked for {}: run the import again, or choose with --group-bot {chat}=@BOT",
                unanswered.join(", ")
            )),
            ([], true) => Owner::Undecided(format!(
                "none of the bots ({}) is an administrator there able to restrict members and delete messages; choose one with --group-bot {chat}=@BOT",
                candidates
                    .iter()
                    .map(|c| format!("@{}", c.username))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            (several, true) => match reads_channels.as_slice() {
                [only] => Owner::Bot {
                    telegram_bot_id: *only,
                    how: format!(
                        "{}, the only one of the {} bots administering it that also administers its channels",
                        name(*only),
                        several.len()
                    ),
                },
                _ => Owner::Undecided(format!(
                    "{} administer it and its channels alike (two bots enforcing one group warn twice); choose one with --group-bot {chat}=@BOT",
                    several
                        .iter()
                        .map(|b| name(*b))
                        .collect::<Vec<_>>()
                        .join(" and ")
                )),
            },
        };
        owners.insert(chat, owner);
    }
    owners
}

/// Asks Telegram, for each `(chat, bot)`, the bot's own status in the chat and whether `test`
/// accepts it: `Ok(false)` when Telegram refuses to say (not a member, no such chat), `Err` with
/// the reason when Telegram could not be reached.
async fn ask(
    client: &reqwest::Client,
    api_url: &reqwest::Url,
    pairs: Vec<(i64, &Candidate)>,
    test: fn(i64, &ChatMemberKind) -> bool,
) -> Vec<(i64, i64, Result<bool, String>)> {
    futures_util::stream::iter(pairs)
        .map(|(chat, candidate)| {
            let bot = teloxide::Bot::with_client(candidate.token.expose(), client.clone())
                .set_api_url(api_url.clone());
            async move {
                let me = UserId(candidate.telegram_bot_id.max(0) as u64);
                let answer = match bot.get_chat_member(ChatId(chat), me).await {
                    Ok(member) => Ok(test(chat, &member.kind)),
                    Err(teloxide::RequestError::Api(error)) if says_absent(&error) => Ok(false),
                    Err(teloxide::RequestError::Api(ApiError::InvalidToken)) => {
                        Err("Telegram refused its token".to_string())
                    }
                    Err(error) => Err(crate::telegram::classify(&error).to_string()),
                };
                (chat, candidate.telegram_bot_id, answer)
            }
        })
        .buffer_unordered(PROBES_IN_FLIGHT)
        .collect()
        .await
}

/// Whether Telegram's refusal says the bot is not (or no longer) in the chat, or the chat is gone:
/// a 400 or 403 about the chat. A 5xx, a refused token or anything else is no answer at all,
/// and a group is never given to another bot because one bot could not be asked.
fn says_absent(error: &ApiError) -> bool {
    match error {
        ApiError::ChatNotFound
        | ApiError::UserNotFound
        | ApiError::BotKicked
        | ApiError::BotKickedFromSupergroup
        | ApiError::BotKickedFromChannel => true,
        // "Forbidden: bot is not a member of the supergroup chat", and the like.
        ApiError::Unknown(text) => {
            text.starts_with("Forbidden:") || text.starts_with("Bad Request:")
        }
        _ => false,
    }
}

/// Whether a bot with status `kind` in `chat` can enforce there: the creator, or an
/// administrator who may restrict members and delete messages. A basic group's administrators
/// hold every right (Telegram names rights only in supergroups, whose ids start with -100).
fn can_enforce(chat: i64, kind: &ChatMemberKind) -> bool {
    let basic = chat > -1_000_000_000_000;
    match kind {
        ChatMemberKind::Owner(_) => true,
        ChatMemberKind::Administrator(admin) => {
            basic || (admin.can_restrict_members && admin.can_delete_messages)
        }
        _ => false,
    }
}
