//! The supervision tree that keeps every bot running, and every long-lived task of the process
//! with the way it ends.
//!
//! ```text
//!                     Supervisor (root)
//!     bots: RestartPolicy (fleet.*)      services: SERVICE_RESTARTS (never gives up, /readyz shows it)
//!          ┌──────────────────┼──────────────────────────┐
//!      Registry           Broadcaster                BotActor × enabled bots      span bot{bot_instance_id}
//!   (+ Alerter: what needs attention → Telegram, every alerts.check_ms)
//!   (desired state)    (events table + fan-out)      (long polling or webhook, per-member dispatch)
//!    ├ listen task       └ pump task                  ├ dispatcher task ── member tasks (one per member
//!    └ tick task           (outbox → mailbox)         │                    with updates in hand)
//!                                                     └ webhook watch (webhook mode, in the dispatcher)
//!   TreeView ◄── Supervisor: bots' status, services' status (HTTP reads it; no call into a mailbox)
//!
//!   Beside the tree, owned by `app::Application` and stopped by it in order at shutdown:
//!   lease keeper (PostgreSQL: renew + balance tasks), heartbeat, webhook pruner, Redis relay or
//!   events-table tail, and the Enforcer (timer runner, membership keeper, per-bot health task).
//! ```
//!
//! Who sends what:
//! - Registry → Supervisor: `Managed` (what runs?), then `Apply([Start | Stop | Restart])` from a pure
//!   `diff(desired, running)`. The Registry reacts to `LISTEN bot_instances` (PostgreSQL), a short poll
//!   (SQLite), a periodic full reconcile, and a `Nudge(ids)` from the HTTP layer naming the bots an
//!   admin changed (reconciled alone on SQLite; dropped on PostgreSQL, whose notification of the
//!   same change arrives anyway).
//! - Supervisor → BotActor: spawn, and `stop` (graceful). BotActor → Supervisor: `BotRunning` once
//!   `getMe` passed and polling started; a failure (with a classified `Failure`) as a supervision event.
//! - Supervisor → Broadcaster: `BotStatus` for every transition (held in order while no Broadcaster
//!   runs). Broadcaster: writes `bot_instances` and the `events` table, then fans the event out to
//!   subscribers (SSE, tests, the Redis relay).
//! - Timers (ractor's `send_after`) → Supervisor: `RetryStart` after a bot's backoff, ignored if the
//!   bot moved on meanwhile; `RestartService` after a service's pause.
//! - Handlers, the log store and the HTTP layer → Broadcaster: events through a
//!   [`crate::events::Publisher`], whose channel outlives any one Broadcaster (the current one
//!   drains it), so the hot path never passes through the Supervisor's mailbox.
//! - Which process runs which bot: with `serve --role api` no Registry is spawned. On SQLite the
//!   one runner holds a file lock taken before the tree starts (`db::RunnerClaim`) and runs every
//!   bot; on PostgreSQL each node runs the bots whose lease it holds ([`leases`]): the keeper
//!   asks the Registry to reconcile when they change, the Registry starts what is held here and
//!   hands over (`Release`) what is not, and each BotActor sends nothing once its lease's fence
//!   has ended.
//!
//! How each task ends: an actor's own tasks live in its state as `AbortOnDropHandle`s or are
//! aborted by its stop (the dispatcher, after it confirmed what it handled), so they end with the
//! actor however it ends; timers are ractor's and die with their actor. Beside the tree, the
//! lease keeper and the heartbeat are stopped by the application; the relay's loops end when the
//! fleet's event stream closes; the record and log writers end when the last handle that feeds
//! them is dropped, after writing what was queued (the log writer lives as long as the process's
//! tracing layer); the Redis connector ends once connected or once its cache is dropped; directory
//! reloads and warning batches are one-shot tasks that end when their work is done.

pub mod alerter;
mod bot;
pub mod broadcaster;
mod fleet;
pub mod heartbeat;
pub mod leases;
pub mod policy;
pub mod registry;
pub mod supervisor;

pub mod relay;
mod webhook_watch;

pub use bot::Delivery;
pub use fleet::{Fleet, FleetHandle, FleetOptions};
pub use policy::RestartPolicy;
pub use supervisor::BotStatus;
pub use supervisor::view::{Service, ServiceStatus, TreeView};
