//! `join_requests`: the join requests Nezuko took up under a group's `join_requests` policy. A row
//! is pending until one decision moves it (each move is conditional on it still being pending, so
//! a "Check again", the timeout and an admin's click racing each other decide once).

use super::{Store, StoreError, now_ms, with_pool};

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct JoinRequestRow {
    pub id: i64,
    pub bot_instance_id: i64,
    pub group_id: i64,
    pub chat_id: i64,
    pub user_id: i64,
    /// Where the requester may be written to for 5 minutes (`ChatJoinRequest.user_chat_id`).
    pub user_chat_id: i64,
    pub name: String,
    /// A guard bot's query (Bot API 10.1).
    pub query_id: Option<String>,
    /// `pending`, `approved`, `declined` or `withdrawn`.
    pub status: String,
    /// The message written to the requester.
    pub message_id: Option<i64>,
    /// Unix milliseconds.
    pub requested_at: i64,
    pub decided_at: Option<i64>,
    /// `nezuko`, `timeout` or `admin:<user id>`.
    pub decided_by: Option<String>,
}

impl JoinRequestRow {
    pub fn is_pending(&self) -> bool {
        self.status == "pending"
    }
}

#[derive(Debug, Clone)]
pub struct NewJoinRequest {
    pub bot_instance_id: i64,
    pub group_id: i64,
    pub chat_id: i64,
    pub user_id: i64,
    pub user_chat_id: i64,
    pub name: String,
    pub query_id: Option<String>,
}

/// How a pending join request ended (`join_requests.status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinDecision {
    Approved,
    Declined,
    /// The requester took it back, or it was decided elsewhere (Telegram: `HIDE_REQUESTER_MISSING`).
    Withdrawn,
}

impl JoinDecision {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Approved => "approved",
            Self::Declined => "declined",
            Self::Withdrawn => "withdrawn",
        }
    }
}

macro_rules! columns {
    () => {
        "id, bot_instance_id, group_id, chat_id, user_id, user_chat_id, name, query_id, status, \
         message_id, requested_at, decided_at, decided_by"
    };
}

impl Store {
    /// Files a pending request; one already pending for the same bot, chat and user (the update
    /// handled again) is returned as it is.
    pub async fn open_join_request(
        &self,
        request: &NewJoinRequest,
    ) -> Result<JoinRequestRow, StoreError> {
        let insert = "INSERT INTO join_requests (bot_instance_id, group_id, chat_id, user_id, \
                      user_chat_id, name, query_id, requested_at) VALUES ($1, $2, $3, $4, $5, $6, \
                      $7, $8) ON CONFLICT (bot_instance_id, chat_id, user_id) WHERE status = 'pending' \
                      DO NOTHING";
        with_pool!(self, pool => sqlx::query(insert)
            .bind(request.bot_instance_id)
            .bind(request.group_id)
            .bind(request.chat_id)
            .bind(request.user_id)
            .bind(request.user_chat_id)
            .bind(&request.name)
            .bind(&request.query_id)
            .bind(now_ms())
            .execute(pool)
            .await
            .map(|_| ()))?;
        self.pending_join_request(request.bot_instance_id, request.chat_id, request.user_id)
            .await?
            .ok_or_else(|| StoreError::NotFound("the join request just filed".into()))
    }

    /// The pending request of `user` to `chat` that `bot` took up.
    pub async fn pending_join_request(
        &self,
        bot: i64,
        chat: i64,
        user: i64,
    ) -> Result<Option<JoinRequestRow>, StoreError> {
        let sql = concat!(
            "SELECT ",
            columns!(),
            " FROM join_requests WHERE bot_instance_id = $1 AND chat_id = $2 AND user_id = $3 \
             AND status = 'pending'"
        );
        Ok(with_pool!(self, pool => sqlx::query_as(sql)
            .bind(bot).bind(chat).bind(user)
            .fetch_optional(pool).await)?)
    }

    pub async fn join_request(&self, id: i64) -> Result<Option<JoinRequestRow>, StoreError> {
        let sql = concat!("SELECT ", columns!(), " FROM join_requests WHERE id = $1");
        Ok(with_pool!(self, pool => sqlx::query_as(sql).bind(id).fetch_optional(pool).await)?)
    }

    /// Pending requests of a group, oldest first (at most `limit`).
    pub async fn pending_join_requests(
        &self,
        group_id: i64,
        limit: i64,
    ) -> Result<Vec<JoinRequestRow>, StoreError> {
        let sql = concat!(
            "SELECT ",
            columns!(),
            " FROM join_requests WHERE group_id = $1 AND status = 'pending' \
             ORDER BY requested_at, id LIMIT $2"
        );
        Ok(with_pool!(self, pool => sqlx::query_as(sql)
            .bind(group_id).bind(limit)
            .fetch_all(pool).await)?)
    }

    /// Pending requests of `user` that `bot` took up, in any chat: a channel the user just joined
    /// may complete them.
    pub async fn pending_join_requests_of(
        &self,
        bot: i64,
        user: i64,
    ) -> Result<Vec<JoinRequestRow>, StoreError> {
        let sql = concat!(
            "SELECT ",
            columns!(),
            " FROM join_requests WHERE bot_instance_id = $1 AND user_id = $2 AND status = 'pending'"
        );
        Ok(with_pool!(self, pool => sqlx::query_as(sql)
            .bind(bot).bind(user)
            .fetch_all(pool).await)?)
    }

    /// The guard query was answered (`queue`): the request is decided the classic way from here.
    pub async fn clear_join_query(&self, id: i64) -> Result<(), StoreError> {
        let sql = "UPDATE join_requests SET query_id = NULL WHERE id = $1";
        with_pool!(self, pool => sqlx::query(sql)
            .bind(id)
            .execute(pool).await
            .map(|_| ()))?;
        Ok(())
    }

    /// The message written to the requester.
    pub async fn set_join_request_message(
        &self,
        id: i64,
        message_id: i64,
    ) -> Result<(), StoreError> {
        let sql = "UPDATE join_requests SET message_id = $1 WHERE id = $2";
        with_pool!(self, pool => sqlx::query(sql)
            .bind(message_id).bind(id)
            .execute(pool).await
            .map(|_| ()))?;
        Ok(())
    }

    /// Ends a pending request; `false` when it was no longer pending (decided meanwhile).
    pub async fn decide_join_request(
        &self,
        id: i64,
        decision: JoinDecision,
        by: &str,
    ) -> Result<bool, StoreError> {
        let sql = "UPDATE join_requests SET status = $1, decided_at = $2, decided_by = $3 \
                   WHERE id = $4 AND status = 'pending'";
        let changed = with_pool!(self, pool => sqlx::query(sql)
            .bind(decision.as_str()).bind(now_ms()).bind(by).bind(id)
            .execute(pool).await
            .map(|done| done.rows_affected()))?;
        Ok(changed == 1)
    }
}
