//! `bot_instances`: the bots the service runs, their desired state and their observed state.

use super::BeginWrite;
use super::{Store, StoreError, now_ms, with_pool};
use crate::domain::{DesiredState, ReasonCode, RunState};

/// A stored bot. The token is only ever held encrypted here.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct BotRow {
    pub id: i64,
    pub telegram_bot_id: i64,
    pub username: String,
    pub display_name: String,
    pub token_ciphertext: String,
    pub owner_telegram_id: Option<i64>,
    #[sqlx(try_from = "String")]
    pub desired_state: DesiredState,
    pub config_version: i64,
    #[sqlx(try_from = "String")]
    pub run_state: RunState,
    pub run_reason: Option<String>,
    /// A [`crate::domain::ReasonCode`] word; kept as text so a word from a newer version reads.
    pub run_reason_code: Option<String>,
    pub last_error: Option<String>,
    pub restart_count: i64,
    /// The start attempt its supervisor was on at its last transition (0 when it ran stably).
    pub run_attempt: i64,
    pub next_attempt_at: Option<i64>,
    pub started_at: Option<i64>,
    pub stopped_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl BotRow {
    /// Enabled and starting or running: an admin's "start" changes nothing for it (see
    /// [`Store::request_bot_start`]).
    pub fn is_up(&self) -> bool {
        self.desired_state == DesiredState::Enabled
            && matches!(self.run_state, RunState::Starting | RunState::Running)
    }

    /// Asked to stay stopped, and no runner left: a stop changes nothing.
    pub fn is_down(&self) -> bool {
        self.desired_state == DesiredState::Disabled
            && matches!(self.run_state, RunState::Stopped | RunState::Failed)
    }
}

/// What an admin supplies to add a bot (after `getMe` has vouched for the token).
#[derive(Debug, Clone)]
pub struct NewBot {
    pub telegram_bot_id: i64,
    pub username: String,
    pub display_name: String,
    pub token_ciphertext: String,
    pub owner_telegram_id: Option<i64>,
    pub desired_state: DesiredState,
}

/// One observed transition, as the supervisor records it.
#[derive(Debug, Clone)]
pub struct RunStateUpdate {
    pub state: RunState,
    pub reason: Option<String>,
    /// `reason` as a word programs decide on.
    pub code: Option<ReasonCode>,
    pub last_error: Option<String>,
    pub next_attempt_at: Option<i64>,
    /// Counts one more restart.
    pub restarted: bool,
    /// The start attempt the supervisor is on (0: it ran stably or was started by a person).
    pub attempt: u32,
}

macro_rules! columns {
    () => {
        "id, telegram_bot_id, username, display_name, token_ciphertext, owner_telegram_id, \
     desired_state, config_version, run_state, run_reason, run_reason_code, last_error, restart_count, run_attempt, next_attempt_at, \
     started_at, stopped_at, created_at, updated_at"
    };
}

/// Records an observed state: `$1` state, `$2` reason, `$3` error (kept when NULL), `$4` next attempt,
/// `$5` restarts to add, `$6` now, `$7` id, `$8` reason code, `$9` attempt. `started_at` is set on entering `running`, `stopped_at` on
/// entering `stopped` or `failed`.
macro_rules! run_state_update {
    () => {
        "UPDATE bot_instances SET run_state = $1, run_reason = $2, last_error = COALESCE($3, last_error), \
         next_attempt_at = $4, restart_count = restart_count + $5, \
         started_at = CASE WHEN $1 = 'running' THEN $6 ELSE started_at END, \
         stopped_at = CASE WHEN $1 IN ('stopped', 'failed') THEN $6 ELSE stopped_at END, \
         updated_at = $6, run_reason_code = $8, run_attempt = $9 WHERE id = $7"
    };
}

/// The same update, returning what an event about it reports.
pub(super) const RUN_STATE_UPDATE_COUNTS: &str =
    concat!(run_state_update!(), " RETURNING restart_count, started_at");

impl Store {
    /// Adds a bot. A second bot with the same Telegram id is a `Conflict`.
    pub async fn insert_bot(&self, bot: &NewBot) -> Result<BotRow, StoreError> {
        let now = now_ms();
        let sql = concat!(
            "INSERT INTO bot_instances (telegram_bot_id, username, display_name, token_ciphertext, \
             owner_telegram_id, desired_state, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING ",
            columns!(),
            ""
        );
        let inserted = with_pool!(self, pool => sqlx::query_as::<_, BotRow>(sql)
            .bind(bot.telegram_bot_id)
            .bind(&bot.username)
            .bind(&bot.display_name)
            .bind(&bot.token_ciphertext)
            .bind(bot.owner_telegram_id)
            .bind(bot.desired_state.as_str())
            .bind(now)
            .fetch_one(pool)
            .await);
        inserted.map_err(|err| match err {
            sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(format!(
                "a bot with Telegram id {} is already registered",
                bot.telegram_bot_id
            )),
            other => other.into(),
        })
    }

    pub async fn bot(&self, id: i64) -> Result<BotRow, StoreError> {
        let sql = concat!("SELECT ", columns!(), " FROM bot_instances WHERE id = $1");
        with_pool!(self, pool => sqlx::query_as::<_, BotRow>(sql).bind(id).fetch_optional(pool).await)?
            .ok_or_else(|| StoreError::NotFound(format!("bot instance {id}")))
    }

    /// Every bot, oldest first.
    pub async fn bots(&self) -> Result<Vec<BotRow>, StoreError> {
        let sql = concat!("SELECT ", columns!(), " FROM bot_instances ORDER BY id");
        Ok(with_pool!(self, pool => sqlx::query_as::<_, BotRow>(sql).fetch_all(pool).await)?)
    }

    /// The bots with these ids (missing ids are simply absent), oldest first.
    pub async fn bots_by_ids(&self, ids: &[i64]) -> Result<Vec<BotRow>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        Ok(with_pool!(self, pool => {
            let mut query = sqlx::QueryBuilder::new(concat!("SELECT ", columns!(), " FROM bot_instances WHERE id IN ("));
            let mut list = query.separated(", ");
            for id in ids {
                list.push_bind(*id);
            }
            query.push(") ORDER BY id");
            query.build_query_as::<BotRow>().fetch_all(pool).await?
        }))
    }

    /// The admin's wish for a bot; the registry acts on it.
    pub async fn set_desired_state(
        &self,
        id: i64,
        state: DesiredState,
    ) -> Result<BotRow, StoreError> {
        let sql = concat!(
            "UPDATE bot_instances SET desired_state = $1, updated_at = $2 WHERE id = $3 RETURNING ",
            columns!(),
            ""
        );
        with_pool!(self, pool => sqlx::query_as::<_, BotRow>(sql)
            .bind(state.as_str())
            .bind(now_ms())
            .bind(id)
            .fetch_optional(pool)
            .await)?
        .ok_or_else(|| StoreError::NotFound(format!("bot instance {id}")))
    }

    /// An admin's "start": enabled, and a new generation, so a bot parked as failed or with an
    /// invalid token (or waiting out a backoff) is tried again now. A bot already enabled and
    /// starting or running keeps its generation: starting it is not a restart.
    pub async fn request_bot_start(&self, id: i64) -> Result<BotRow, StoreError> {
        // The CASE reads the row as it was before this update (SQLite and PostgreSQL alike).
        let sql = concat!(
            "UPDATE bot_instances SET desired_state = 'enabled', config_version = config_version + \
             CASE WHEN desired_state = 'enabled' AND run_state IN ('starting', 'running') THEN 0 ELSE 1 END, \
             updated_at = $1 WHERE id = $2 RETURNING ",
            columns!()
        );
        with_pool!(self, pool => sqlx::query_as::<_, BotRow>(sql).bind(now_ms()).bind(id).fetch_optional(pool).await)?
            .ok_or_else(|| StoreError::NotFound(format!("bot instance {id}")))
    }

    /// An admin's "restart": a new generation, which the registry turns into a graceful stop and a start.
    pub async fn request_bot_restart(&self, id: i64) -> Result<BotRow, StoreError> {
        let sql = concat!(
            "UPDATE bot_instances SET config_version = config_version + 1, updated_at = $1 WHERE id = $2 RETURNING ",
            columns!()
        );
        with_pool!(self, pool => sqlx::query_as::<_, BotRow>(sql).bind(now_ms()).bind(id).fetch_optional(pool).await)?
            .ok_or_else(|| StoreError::NotFound(format!("bot instance {id}")))
    }

    /// A new token (already encrypted) for a bot; bumps `config_version` so the bot restarts.
    pub async fn replace_bot_token(
        &self,
        id: i64,
        token_ciphertext: &str,
    ) -> Result<BotRow, StoreError> {
        let sql = concat!(
            "UPDATE bot_instances SET token_ciphertext = $1, config_version = config_version + 1, \
             updated_at = $2 WHERE id = $3 RETURNING ",
            columns!(),
            ""
        );
        with_pool!(self, pool => sqlx::query_as::<_, BotRow>(sql)
            .bind(token_ciphertext)
            .bind(now_ms())
            .bind(id)
            .fetch_optional(pool)
            .await)?
        .ok_or_else(|| StoreError::NotFound(format!("bot instance {id}")))
    }

    /// Removes a bot and, by cascade, its groups, links, restrictions and timers.
    pub async fn delete_bot(&self, id: i64) -> Result<(), StoreError> {
        let result = with_pool!(self, pool => sqlx::query("DELETE FROM bot_instances WHERE id = $1")
            .bind(id)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        match result {
            0 => Err(StoreError::NotFound(format!("bot instance {id}"))),
            _ => Ok(()),
        }
    }

    /// `(id, token_ciphertext)` of every bot, for key checks and rotation.
    pub async fn bot_ciphertexts(&self) -> Result<Vec<(i64, String)>, StoreError> {
        let sql = "SELECT id, token_ciphertext FROM bot_instances ORDER BY id";
        Ok(with_pool!(self, pool => sqlx::query_as::<_, (i64, String)>(sql).fetch_all(pool).await)?)
    }

    /// Replaces token ciphertexts and one setting (the vault canary) in a single transaction,
    /// so a rotation is all or nothing. The tokens themselves do not change, so neither does
    /// `config_version`.
    pub async fn replace_bot_ciphertexts(
        &self,
        ciphertexts: &[(i64, String)],
        setting: (&str, &serde_json::Value),
    ) -> Result<(), StoreError> {
        let now = now_ms();
        with_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            for (id, ciphertext) in ciphertexts {
                sqlx::query("UPDATE bot_instances SET token_ciphertext = $1, updated_at = $2 WHERE id = $3")
                    .bind(ciphertext)
                    .bind(now)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::query(super::settings::UPSERT)
                .bind(setting.0)
                .bind(sqlx::types::Json(setting.1))
                .bind(None::<i64>)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        });
        Ok(())
    }
}
