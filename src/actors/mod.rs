//! The supervision tree that keeps every bot running.
//!
//! ```text
//!                       Supervisor (root; restart policy)
//!          ┌──────────────────┼───────────────────────┐
//!      Registry           Broadcaster           BotActor × enabled bots
//!   (desired state)    (events table + fan-out)   (per-member dispatch, long polling)
//! ```
//!
//! Who sends what:
//! - Registry → Supervisor: `Managed` (what runs?), then `Apply([Start | Stop | Restart])` from a pure
//!   `diff(desired, running)`. The Registry reacts to `LISTEN bot_instances` (PostgreSQL), a short poll
//!   (SQLite), a periodic full reconcile, and `Nudge` from the HTTP layer (through the Supervisor).
//! - Supervisor → BotActor: spawn, and `stop` (graceful). BotActor → Supervisor: `BotRunning` once
//!   `getMe` passed and polling started; a failure (with a classified `Failure`) as a supervision event.
//! - Supervisor → Broadcaster: `BotStatus` for every transition. Broadcaster: writes `bot_instances`
//!   and the `events` table, then fans the event out to subscribers (SSE, tests, Redis later).
//! - Backoff timers → Supervisor: `RetryStart`, ignored if the bot moved on meanwhile.
//! - Handlers and the HTTP layer → Supervisor: `Publish` through a [`Publisher`], forwarded to the
//!   current Broadcaster.
//! - Which process runs which bot: with `serve --role api` no Registry is spawned. On SQLite the
//!   one runner holds a file lock taken before the tree starts (`db::RunnerClaim`) and runs every
//!   bot; on PostgreSQL each node runs the bots whose lease it holds ([`leases`]): the keeper
//!   nudges the Registry when they change, the Registry starts what is held here and hands over
//!   (`Release`) what is not, and each BotActor sends nothing once its lease's fence has ended.

mod bot;
pub mod broadcaster;
mod fleet;
pub mod heartbeat;
pub mod leases;
pub mod policy;
mod publisher;
pub mod registry;
pub mod supervisor;

pub mod relay;
mod webhook_watch;

pub use bot::Delivery;
pub use broadcaster::Event;
pub use fleet::{Fleet, FleetHandle, FleetOptions};
pub use policy::RestartPolicy;
pub use publisher::Publisher;
pub use supervisor::BotStatus;
