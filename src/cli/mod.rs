//! The `nezuko` command line: argument parsing and one function per command (`commands`), the
//! `sandbox` runs the fake Telegram, `bench_*` the benchmarks (`affinity` pins their processes).
//!
//! Errors leave as one line on stderr (`error: …`, causes joined by `: `) and a non-zero exit code:
//! 78 (EX_CONFIG) for configuration problems, 1 for everything else. No panics, no backtraces.

/// `println!` for a command's output that returns a write error instead of panicking: a full
/// disk behind `> file` is a one-line error and exit status 1, not a backtrace. (A closed pipe
/// ends the process by SIGPIPE before it gets here; see `quit_quietly_on_a_closed_pipe`.)
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*)
            .map_err(|e| anyhow::anyhow!("cannot write to standard output: {e}"))?
    }};
}

mod affinity;
mod audit;
mod bench_api;
mod bench_chaos;
mod bench_failover;
mod bench_fleet;
mod bench_sandbox;
mod bench_verify;
mod bots;
mod commands;
mod demo;
mod import;
mod sandbox;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::settings::ConfigError;

/// Runs many force-subscribe Telegram bots under supervision, with an admin API and dashboard.
#[derive(Debug, Parser)]
#[command(name = "nezuko", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Run on this CPU only (a benchmark pins the process it measures, and its load apart).
    #[arg(long, global = true, hide = true)]
    pub cpu: Option<usize>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the service: the admin API and dashboard, and every enabled bot (the main job).
    Serve {
        /// What this process does: `all` (the default), `api` (the admin API and dashboard, no
        /// bots) or `bots` (the bots, with /healthz, /readyz and /metrics only). On SQLite one
        /// process runs the bots; others on the same file take `--role api`. Without it, the
        /// configuration's `server.role` (NEZUKO_SERVER__ROLE), itself `all` by default.
        #[arg(long, value_enum)]
        role: Option<crate::app::Role>,
    },
    /// Apply pending database migrations and exit.
    Migrate,
    /// Copy the SQLite database while the service runs (a consistent snapshot), check the copy and
    /// that the key decrypting it is kept; on PostgreSQL, says what to run instead (pg_dump).
    Backup {
        /// The new backup file (never overwritten). A key file in use is copied to FILE.key.
        #[arg(long, value_name = "FILE")]
        to: std::path::PathBuf,
    },
    /// Print a new Fernet encryption key (for ENCRYPTION_KEY).
    Keygen,
    /// Check the configuration and print the effective settings, secrets redacted.
    CheckConfig,
    /// Re-encrypt every stored bot token with the first key in ENCRYPTION_KEY.
    ///
    /// To rotate: put a new key first and the old one after it (ENCRYPTION_KEY=NEW,OLD), run this,
    /// then drop the old key.
    RotateKey,
    /// Print a one-time dashboard login URL (for machines without a public domain for the widget).
    LoginLink {
        /// Telegram user id to sign in as; default: the owner (auth.owner_telegram_id).
        #[arg(long)]
        user: Option<i64>,
        /// Minutes the link stays valid.
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=1440))]
        minutes: u64,
    },
    /// Try Nezuko without Telegram: the service on a temporary database, a simulated Telegram with
    /// bots, groups, channels and members producing traffic, and a one-time login URL.
    Demo(demo::DemoArgs),
    /// Bring the original Python platform's database over (bots, groups, channels, history),
    /// read-only on the original, in one transaction; a second run changes nothing.
    Import(import::ImportArgs),
    /// Manage bot instances (list, add, enable, disable, restart).
    #[command(subcommand)]
    Bot(bots::BotCommand),
    /// List the `serve` processes sharing the database (nodes): role, whether each runs the bots,
    /// heartbeat.
    Nodes,
    /// Run the sandbox: a fake Telegram Bot API server for offline tests, optionally driving a load scenario.
    Sandbox(sandbox::SandboxArgs),
    /// Measure performance; each benchmark prints one JSON line last.
    Bench {
        #[command(subcommand)]
        target: BenchTarget,
    },
}

#[derive(Debug, Subcommand)]
pub enum BenchTarget {
    /// The sandbox alone, in a process of its own: updates per second through getUpdates,
    /// getChatMember calls per second, and its CPU time per update and per call.
    Sandbox {
        #[arg(long, default_value_t = 20)]
        bots: usize,
        #[arg(long, default_value_t = 64)]
        clients: usize,
        #[arg(long, default_value_t = 5.0)]
        seconds: f64,
        /// Run the sandbox and the load each on a CPU of their own (the sandbox's one-core figures).
        #[arg(long)]
        pin: bool,
        /// Be the measured sandbox process (started by the benchmark itself).
        #[arg(long, hide = true)]
        serve: bool,
        /// The CPU the serving process pins itself to.
        #[arg(long, hide = true)]
        cpu: Option<usize>,
    },
    /// The fleet: start N bots against an in-process sandbox; time to all running, memory, and
    /// start/stop latency through the database.
    Fleet {
        #[arg(long, default_value_t = 1000)]
        bots: usize,
        /// A PostgreSQL server to run on (a database is created and dropped); SQLite otherwise.
        #[arg(long)]
        postgres: Option<String>,
        /// How many bots to stop and start again for the latency figures.
        #[arg(long, default_value_t = 100)]
        sample: usize,
        /// How the bots receive updates: long polling (a connection held open per bot), or the
        /// sandbox posting to their webhooks (`telegram.mode`).
        #[arg(long, value_enum, default_value_t = DeliveryMode::Polling)]
        mode: DeliveryMode,
    },
    /// The admin API: stats and every chart over N verification rows (p95), and SSE delivery to
    /// many clients in a second process (p99).
    Api {
        /// A PostgreSQL server to run on (a database is created and dropped); SQLite otherwise.
        #[arg(long)]
        postgres: Option<String>,
        #[arg(long, default_value_t = 1_000_000)]
        rows: usize,
        /// Timed requests per endpoint.
        #[arg(long, default_value_t = 20)]
        samples: usize,
        #[arg(long, default_value_t = 1000)]
        sse_clients: usize,
        /// Events published per second during the SSE run.
        #[arg(long, default_value_t = 100.0)]
        rate: f64,
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
    },
    /// Internal to `bench api`: the SSE client process.
    #[command(hide = true)]
    SseListen {
        #[arg(long)]
        url: String,
        #[arg(long)]
        cookie: String,
        #[arg(long)]
        clients: usize,
        #[arg(long)]
        seconds: f64,
    },
    /// Nothing lost, nothing doubled: load against a `nezuko serve` child that is killed with
    /// SIGKILL and restarted, loses its database for a while, and meets a storm of Telegram 5xx
    /// and 429s; compares Telegram's final state with what the load required.
    Chaos {
        /// A PostgreSQL server to run on (a database is created and dropped); SQLite otherwise.
        #[arg(long)]
        postgres: Option<String>,
        /// Seconds of load.
        #[arg(long, default_value_t = 60.0)]
        seconds: f64,
        /// Events per second.
        #[arg(long, default_value_t = 20.0)]
        rate: f64,
        /// SIGKILLs spread over the run.
        #[arg(long, default_value_t = 5)]
        kills: usize,
        /// Seconds the database is away.
        #[arg(long, default_value_t = 15.0)]
        outage: f64,
    },
    /// Failover on PostgreSQL: N `nezuko serve` nodes share a scenario's bots (the `verify`
    /// world's 100) under load; the node running the most is killed with SIGKILL, then every node
    /// is restarted in turn. Prints takeover p50/p99 (s), the rolling restart's length (s), bots
    /// failed, lost actions, updates acted on twice and 409s.
    Failover {
        /// The PostgreSQL server (a database is created and dropped).
        #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
        postgres: String,
        #[arg(long, default_value_t = 3)]
        nodes: usize,
        /// A built-in scenario (verify, busy-bot, smoke, raid, join-raid) or a scenario file.
        #[arg(long, default_value = "verify")]
        scenario: String,
        /// Events per second.
        #[arg(long, default_value_t = 200.0)]
        rate: f64,
        /// Measured seconds: the kill and the rolling restart happen within them.
        #[arg(long, default_value_t = 90.0)]
        seconds: f64,
        /// Seconds of load before measuring. The default lets the nodes work off the world's
        /// setup first (the `verify` world's 50,000 members joining: about 25 s on 2 cores), so
        /// the figures are the kill and the restarts, not the start-up.
        #[arg(long, default_value_t = 45.0)]
        warmup: f64,
        /// Seconds into the measured run when a node is killed.
        #[arg(long, default_value_t = 10.0)]
        kill_at: f64,
        /// Only the kill: no rolling restart after it.
        #[arg(long)]
        no_rolling: bool,
        /// Seconds after the load the bots have to act on what they were handed; an update
        /// still waiting then counts as lost.
        #[arg(long, default_value_t = 30.0)]
        settle: f64,
        /// Keep the scratch directory (each node's `serve.log`, the sandbox's log) and print
        /// where it is.
        #[arg(long)]
        keep: bool,
    },
    /// Enforcement under load: a scenario (`verify`: 100 bots, 20,000 events/s; `busy-bot`: one bot,
    /// 1,000 events/s) played by the sandbox in a process of its own against `nezuko serve` in
    /// another, each pinned to a CPU, with Telegram's flood limits on; updates/s, update-to-action
    /// latency, cache hit rate, 429s, and the product's CPU time per update and memory.
    Verify {
        /// A PostgreSQL server to run on (a database is created and dropped); SQLite otherwise.
        #[arg(long)]
        postgres: Option<String>,
        /// A Redis server for the shared membership cache tier.
        #[arg(long)]
        redis: Option<String>,
        /// A built-in scenario (verify, busy-bot, smoke, raid, join-raid) or a scenario file.
        #[arg(long, default_value = "verify")]
        scenario: String,
        /// Measured seconds (default: the scenario's).
        #[arg(long)]
        seconds: Option<f64>,
        /// Events per second (default: the scenario's).
        #[arg(long)]
        rate: Option<f64>,
        /// Seconds of traffic before measuring: long enough for most members of the world to have
        /// spoken once, so the figures are the steady state, not the first sight of everyone.
        #[arg(long, default_value_t = 30.0)]
        warmup: f64,
        /// Stop the product (SIGTERM) this many seconds into the measured run and start it again;
        /// the latency of the `--after-restart` seconds after it is reported as `after_restart`.
        #[arg(long)]
        restart_at: Option<f64>,
        /// How long after the restart the latency is reported on its own, in seconds.
        #[arg(long, default_value_t = 60.0)]
        after_restart: f64,
        /// Keep the scratch directory (the product's `serve.log`, the sandbox's log, the world)
        /// and print where it is, for a look after the run.
        #[arg(long)]
        keep: bool,
        /// How the product's bots receive updates: long polling, or the sandbox posting to
        /// their webhooks (`telegram.mode`).
        #[arg(long, value_enum, default_value_t = DeliveryMode::Polling)]
        mode: DeliveryMode,
    },
}

/// `telegram.mode` for a benchmark's product.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DeliveryMode {
    Polling,
    Webhook,
}

impl Cli {
    /// The CPU this process runs on alone, for a benchmark's measured side.
    fn cpu_to_pin(&self) -> Option<usize> {
        match &self.command {
            Command::Bench {
                target:
                    BenchTarget::Sandbox {
                        serve: true, cpu, ..
                    },
            } => *cpu,
            _ => self.cpu,
        }
    }
}

impl Command {
    /// Commands that print and end, holding no sockets of their own open for others.
    fn only_prints(&self) -> bool {
        matches!(
            self,
            Command::Migrate
                | Command::Backup { .. }
                | Command::Keygen
                | Command::CheckConfig
                | Command::LoginLink { .. }
                | Command::Bot(_)
                | Command::Import(_)
                | Command::Nodes
        )
    }
}

/// Restores the default action of SIGPIPE, which Rust's runtime ignores, so `nezuko bot list |
/// head` ends quietly when `head` stops reading, as Unix tools do, instead of panicking in
/// `println!`. Only for commands that print and end: a server must outlive a client that hung up.
fn quit_quietly_on_a_closed_pipe() {
    use nix::sys::signal::{SigHandler, Signal, signal};
    // SAFETY: called before any thread starts (the runtime is built after), and SIG_DFL installs
    // no handler of ours.
    let _ = unsafe { signal(Signal::SIGPIPE, SigHandler::SigDfl) };
}

/// Parses the arguments, runs the command and turns the outcome into an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // A benchmark's measured process is pinned before its runtime starts, so the runtime sizes
    // itself to that one CPU (one worker, no threads contending for it).
    if let Some(cpu) = cli.cpu_to_pin()
        && let Err(err) = affinity::pin_process(cpu)
    {
        return fail(&err);
    }
    if cli.command.only_prints() {
        quit_quietly_on_a_closed_pipe();
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => return fail(&anyhow::anyhow!("cannot start the async runtime: {err}")),
    };
    match runtime.block_on(commands::run(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => fail(&err),
    }
}

fn fail(err: &anyhow::Error) -> ExitCode {
    eprintln!("error: {}", one_line(err));
    let configuration = err.chain().any(|cause| {
        cause.is::<ConfigError>()
            || cause.is::<crate::vault::KeyProblem>()
            || cause
                .downcast_ref::<crate::db::StoreError>()
                .is_some_and(crate::db::StoreError::is_configuration)
    });
    if configuration {
        ExitCode::from(78)
    } else {
        ExitCode::FAILURE
    }
}

/// The error and its causes joined by `: `, skipping a cause whose text its parent already quotes
/// (many library errors print their source inside their own message).
fn one_line(err: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line.replace('\n', " ")
}
