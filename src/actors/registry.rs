//! The Registry: a reconciler from the desired state in `bot_instances` to the bots the supervisor
//! manages. [`diff`] is pure; [`reconcile_once`] is one step, public so tests drive it without waiting.
//!
//! Triggers: on PostgreSQL a `LISTEN bot_instances` (the migration's trigger notifies on every change);
//! on SQLite a short poll; on both a periodic full reconcile and a nudge from the HTTP layer (or
//! from the lease keeper, when the bots this node holds change).
//!
//! On PostgreSQL a bot is desired here only while this node holds its lease ([`Leases::runs`]);
//! a bot this node runs and no longer holds is handed over ([`Action::Release`]), which records
//! no state: its next runner records its own.

use std::collections::HashMap;
use std::time::Duration;

use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, SpawnErr};
use sqlx::postgres::PgListener;
use tokio_util::task::AbortOnDropHandle;

use super::leases::Leases;
use super::supervisor::{SupervisorMsg, SupervisorRef};
use crate::db::webhooks::WEBHOOK_CHANNEL;
use crate::db::{BotRow, Store};
use crate::domain::DesiredState;
use crate::telegram::webhook::Arrivals;

/// What the supervisor must do to make the running fleet match the database.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Start(Box<BotRow>),
    Stop(i64),
    /// The bot's generation changed (new token, settings, or a start/restart request).
    Restart(Box<BotRow>),
    /// The bot stays enabled but another node runs it from now on: stop it here without
    /// recording a state.
    Release(i64),
}

/// Compares the desired bots with the managed ones (`id → config_version`). `runs_here` says
/// whether this node runs an enabled bot (always, without leases).
pub fn diff(
    desired: &[BotRow],
    managed: &HashMap<i64, i64>,
    runs_here: impl Fn(i64) -> bool,
) -> Vec<Action> {
    let mut actions = Vec::new();
    for bot in desired {
        let enabled = bot.desired_state == DesiredState::Enabled;
        if enabled && !runs_here(bot.id) {
            if managed.contains_key(&bot.id) {
                actions.push(Action::Release(bot.id));
            }
            continue;
        }
        match managed.get(&bot.id) {
            None if enabled => actions.push(Action::Start(Box::new(bot.clone()))),
            Some(_) if !enabled => actions.push(Action::Stop(bot.id)),
            Some(version) if *version != bot.config_version => {
                actions.push(Action::Restart(Box::new(bot.clone())))
            }
            _ => {}
        }
    }
    let mut gone: Vec<i64> = managed
        .keys()
        .copied()
        .filter(|id| !desired.iter().any(|b| b.id == *id))
        .collect();
    gone.sort_unstable();
    actions.extend(gone.into_iter().map(Action::Stop));
    actions
}

/// One reconcile step: reads the desired state, asks the supervisor what it manages, sends it the
/// difference, and returns what was sent.
pub async fn reconcile_once(
    store: &Store,
    supervisor: &SupervisorRef,
    leases: Option<&Leases>,
) -> anyhow::Result<Vec<Action>> {
    let desired = store.bots().await?;
    let managed = ractor::call!(supervisor, SupervisorMsg::Managed)?;
    let actions = diff(&desired, &managed, |id| leases.is_none_or(|l| l.runs(id)));
    if !actions.is_empty() {
        supervisor.cast(SupervisorMsg::Apply(actions.clone()))?;
    }
    Ok(actions)
}

/// Reconciles only the bots with these ids (those a notification named); the rest is left alone.
pub async fn reconcile_bots(
    store: &Store,
    supervisor: &SupervisorRef,
    leases: Option<&Leases>,
    ids: &[i64],
) -> anyhow::Result<Vec<Action>> {
    let desired = store.bots_by_ids(ids).await?;
    let managed: HashMap<i64, i64> = ractor::call!(supervisor, SupervisorMsg::Managed)?
        .into_iter()
        .filter(|(id, _)| ids.contains(id))
        .collect();
    let actions = diff(&desired, &managed, |id| leases.is_none_or(|l| l.runs(id)));
    if !actions.is_empty() {
        supervisor.cast(SupervisorMsg::Apply(actions.clone()))?;
    }
    Ok(actions)
}

pub type RegistryRef = ActorRef<RegistryMsg>;

pub enum RegistryMsg {
    /// Reconcile everything now (a nudge, the periodic tick, or after a lost notification).
    Reconcile,
    /// These bots changed (PostgreSQL notifications, batched).
    Changed(Vec<i64>),
    /// An admin changed these bots through this process. On SQLite they are reconciled at once
    /// (instead of at the next poll); on PostgreSQL the trigger's notification of the same change
    /// arrives as `Changed`, so the nudge is dropped rather than reconciling the change twice.
    Nudged(Vec<i64>),
}

pub struct RegistryArgs {
    pub store: Store,
    pub supervisor: SupervisorRef,
    /// SQLite: how often to look for changes.
    pub poll_interval: Duration,
    /// Both backends: a full reconcile this often, whatever the notifications said.
    pub full_interval: Duration,
    /// On PostgreSQL, the bots this node holds; `None` runs every enabled bot.
    pub leases: Option<Leases>,
    /// Webhook mode: the wake-ups of bots running here, told on PostgreSQL when another node
    /// stored an update for one of them.
    pub arrivals: Option<Arrivals>,
}

pub struct RegistryState {
    store: Store,
    supervisor: SupervisorRef,
    leases: Option<Leases>,
    /// The notification listener and the tick, held only to end with this state, however the
    /// actor ends (dropping the handles aborts them).
    _tasks: Vec<AbortOnDropHandle<()>>,
    /// PostgreSQL: changes arrive as notifications.
    notified: bool,
    /// The last full reconcile failed: the next failure is not warned about again (an outage
    /// would fill the log every tick), the next success is told.
    failing: bool,
}

pub struct Registry;

/// Starts the Registry linked to `supervisor`. Errors: PostgreSQL refused the `LISTEN`
/// connection (the supervisor tries again later, see `supervisor/services.rs`).
pub(crate) async fn spawn(
    args: RegistryArgs,
    supervisor: ActorCell,
) -> Result<RegistryRef, SpawnErr> {
    Actor::spawn_linked(None, Registry, args, supervisor)
        .await
        .map(|(actor, _)| actor)
}

impl Actor for Registry {
    type Msg = RegistryMsg;
    type State = RegistryState;
    type Arguments = RegistryArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        let mut tasks = Vec::new();
        let notified = args.store.postgres_pool().is_some();
        let interval = match args.store.postgres_pool() {
            Some(pool) => {
                let mut listener = PgListener::connect_with(pool).await?;
                listener.listen("bot_instances").await?;
                if args.arrivals.is_some() {
                    listener.listen(WEBHOOK_CHANNEL).await?;
                }
                let arrivals = args
                    .arrivals
                    .clone()
                    .map(|arrivals| (arrivals, args.store.origin().to_string()));
                tasks.push(AbortOnDropHandle::new(tokio::spawn(listen(
                    listener,
                    myself.clone(),
                    arrivals,
                ))));
                args.full_interval
            }
            None => args.poll_interval,
        };
        tasks.push(AbortOnDropHandle::new(tokio::spawn(tick(
            interval,
            myself.clone(),
        ))));
        // The first reconcile starts every enabled bot.
        myself.cast(RegistryMsg::Reconcile)?;
        Ok(RegistryState {
            store: args.store,
            supervisor: args.supervisor,
            leases: args.leases,
            _tasks: tasks,
            notified,
            failing: false,
        })
    }

    async fn handle(
        &self,
        _: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            RegistryMsg::Reconcile => {
                let failed = state.reconcile().await.is_err();
                if state.failing && !failed {
                    tracing::info!("the fleet is reconciled again");
                }
                state.failing = failed;
            }
            RegistryMsg::Changed(ids) => state.reconcile_some(&ids).await,
            RegistryMsg::Nudged(ids) if !state.notified => state.reconcile_some(&ids).await,
            RegistryMsg::Nudged(_) => {}
        }
        Ok(())
    }
}

impl RegistryState {
    async fn reconcile_some(&self, ids: &[i64]) {
        tracing::debug!(?ids, "bots changed");
        if let Err(error) =
            reconcile_bots(&self.store, &self.supervisor, self.leases.as_ref(), ids).await
        {
            tracing::warn!(%error, "could not reconcile changed bots; the next full reconcile will");
        }
    }

    /// One full reconcile; an error is logged (warned once per outage) and returned.
    async fn reconcile(&self) -> Result<(), ()> {
        match reconcile_once(&self.store, &self.supervisor, self.leases.as_ref()).await {
            Ok(actions) => {
                if !actions.is_empty() {
                    tracing::debug!(count = actions.len(), "reconciled the fleet");
                }
                Ok(())
            }
            // A database outage leaves running bots as they are; the next tick tries again.
            Err(error) if self.failing => {
                tracing::debug!(%error, "still cannot reconcile the fleet");
                Err(())
            }
            Err(error) => {
                tracing::warn!(%error, "could not reconcile the fleet; keeping it as it is until the database answers");
                Err(())
            }
        }
    }
}

async fn tick(every: Duration, registry: RegistryRef) {
    let mut interval = tokio::time::interval(every);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    interval.tick().await;
    loop {
        interval.tick().await;
        if registry.cast(RegistryMsg::Reconcile).is_err() {
            return;
        }
    }
}

/// The first pause after the notification channel is lost, and the longest.
const LISTEN_RETRY_FIRST: Duration = Duration::from_secs(1);
const LISTEN_RETRY_MAX: Duration = Duration::from_secs(30);

/// Forwards PostgreSQL notifications, batching those that arrive together into one message.
/// sqlx's listener reconnects by itself; a reconnect may miss notifications, so one is followed by a
/// full reconcile.
///
/// Webhook mode's notifications (another node stored an update for a bot) wake that bot's reader
/// if it runs here (this node's own come with the update, see [`Arrivals::deliver`]); after a
/// reconnect every bot running here reads its inbox.
async fn listen(
    mut listener: PgListener,
    registry: RegistryRef,
    arrivals: Option<(Arrivals, String)>,
) {
    // Between attempts while the database refuses the channel: 1 s, doubling to 30 s, so an
    // outage is not met with a reconnect (and a full reconcile) every second.
    let mut pause = LISTEN_RETRY_FIRST;
    loop {
        let received = listener.try_recv().await;
        if received.is_ok() {
            if pause > LISTEN_RETRY_FIRST {
                tracing::info!("the bot_instances notification channel is back");
            }
            pause = LISTEN_RETRY_FIRST;
        }
        let message = match received {
            Ok(Some(first)) => {
                let mut ids: Vec<i64> = Vec::new();
                for notification in
                    std::iter::once(first).chain(std::iter::from_fn(|| listener.next_buffered()))
                {
                    let mut payload = notification.payload().split(' ');
                    let Some(Ok(id)) = payload.next().map(str::parse::<i64>) else {
                        continue;
                    };
                    if notification.channel() != WEBHOOK_CHANNEL {
                        ids.push(id);
                    } else if let Some((arrivals, own)) = &arrivals
                        && payload.next() != Some(own.as_str())
                    {
                        arrivals.wake(id);
                    }
                }
                if ids.is_empty() {
                    continue;
                }
                ids.sort_unstable();
                ids.dedup();
                RegistryMsg::Changed(ids)
            }
            Ok(None) => {
                if let Some((arrivals, _)) = &arrivals {
                    arrivals.wake_all();
                }
                RegistryMsg::Reconcile
            }
            Err(error) => {
                // Said once an outage, then quietly retried (the log would fill otherwise).
                if pause == LISTEN_RETRY_FIRST {
                    tracing::warn!(%error, "lost the bot_instances notification channel; retrying with backoff up to 30 s");
                } else {
                    tracing::debug!(%error, ?pause, "the bot_instances notification channel is still lost");
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(LISTEN_RETRY_MAX);
                RegistryMsg::Reconcile
            }
        };
        if registry.cast(message).is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::RunState;

    fn bot(id: i64, state: DesiredState, version: i64) -> BotRow {
        BotRow {
            id,
            telegram_bot_id: id,
            username: String::new(),
            display_name: String::new(),
            token_ciphertext: String::new(),
            owner_telegram_id: None,
            desired_state: state,
            config_version: version,
            run_state: RunState::Stopped,
            run_reason: None,
            run_reason_code: None,
            last_error: None,
            restart_count: 0,
            run_attempt: 0,
            next_attempt_at: None,
            started_at: None,
            stopped_at: None,
            created_at: 0,
            updated_at: 0,
        }
    }

    #[test]
    fn the_diff_starts_stops_and_restarts_exactly_what_changed() {
        use DesiredState::*;
        let desired = [
            bot(1, Enabled, 1),
            bot(2, Disabled, 1),
            bot(3, Enabled, 2),
            bot(4, Enabled, 1),
            bot(5, Disabled, 1),
        ];
        let managed = HashMap::from([(2, 1), (3, 1), (4, 1), (9, 1)]);
        let actions = diff(&desired, &managed, |_| true);
        assert_eq!(
            actions,
            vec![
                Action::Start(Box::new(desired[0].clone())),
                Action::Stop(2),
                Action::Restart(Box::new(desired[2].clone())),
                Action::Stop(9),
            ]
        );
        let settled: HashMap<i64, i64> = HashMap::from([(1, 1), (3, 2), (4, 1)]);
        assert!(diff(&desired, &settled, |_| true).is_empty());
    }

    #[test]
    fn with_leases_only_bots_held_here_start_and_running_ones_held_elsewhere_are_released() {
        use DesiredState::*;
        let desired = [
            bot(1, Enabled, 1),
            bot(2, Enabled, 1),
            bot(3, Enabled, 1),
            bot(4, Disabled, 1),
        ];
        let managed = HashMap::from([(2, 1), (4, 1)]);
        let held_here = |id: i64| id == 1;
        assert_eq!(
            diff(&desired, &managed, held_here),
            vec![
                Action::Start(Box::new(desired[0].clone())),
                Action::Release(2),
                Action::Stop(4),
            ]
        );
    }
}
