//! The `nezuko` binary run as an operator runs it, for the tests that need a real process: a
//! fresh directory, a clean environment, real signals.

use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use nezuko::db::{DatabaseUrl, Store};
use nezuko::settings::DatabaseSettings;
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

pub const DEADLINE: Duration = Duration::from_secs(20);

/// A working directory of its own and a clean environment (only PATH and what the test adds).
pub struct Operator {
    pub dir: TempDir,
}

pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Finished {
    /// The lines that report an error (log lines before them are context, not the message).
    pub fn error_lines(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter(|l| l.starts_with("error:"))
            .collect()
    }
}

pub struct Serving {
    pub child: Child,
    pub base: String,
    pub lines: mpsc::UnboundedReceiver<String>,
    pub log: Vec<String>,
}

impl Operator {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn command(&self, args: &[&str], vars: &[(&str, &str)]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_nezuko"));
        command
            .args(args)
            .current_dir(self.dir.path())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(vars.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        command
    }

    pub async fn run(&self, args: &[&str], vars: &[(&str, &str)]) -> Finished {
        let output = tokio::time::timeout(DEADLINE, self.command(args, vars).output())
            .await
            .expect("the command finishes in time")
            .expect("the binary runs");
        Finished {
            status: output.status,
            stdout: String::from_utf8_lossy(&output.stdout).into(),
            stderr: String::from_utf8_lossy(&output.stderr).into(),
        }
    }

    /// Runs a `nezuko bench …` that may take up to `within`, asserts it succeeded, and returns its
    /// report (the last line of its output, JSON) with what it wrote on stderr.
    pub async fn bench_report(
        &self,
        args: &[&str],
        within: Duration,
    ) -> (serde_json::Value, String) {
        let output = tokio::time::timeout(within, self.command(args, &[]).output())
            .await
            .expect("the benchmark finishes")
            .expect("the binary runs");
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(output.status.success(), "{stderr}");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let last = stdout.lines().last().expect("a report line");
        (serde_json::from_str(last).unwrap(), stderr)
    }

    /// Runs a command with `input` on its standard input.
    pub async fn run_with_input(
        &self,
        args: &[&str],
        vars: &[(&str, &str)],
        input: &str,
    ) -> Finished {
        use tokio::io::AsyncWriteExt;
        let mut command = self.command(args, vars);
        command.stdin(Stdio::piped());
        let mut child = command.spawn().expect("the binary runs");
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(input.as_bytes()).await.unwrap();
        drop(stdin);
        let output = tokio::time::timeout(DEADLINE, child.wait_with_output())
            .await
            .expect("finishes in time")
            .unwrap();
        Finished {
            status: output.status,
            stdout: String::from_utf8_lossy(&output.stdout).into(),
            stderr: String::from_utf8_lossy(&output.stderr).into(),
        }
    }

    /// Starts `nezuko serve` on a free port and waits for it to listen.
    pub async fn serve(&self, vars: &[(&str, &str)]) -> Serving {
        self.serve_as("all", vars).await
    }

    /// Starts `nezuko serve --role ROLE` on a free port and waits for it to listen.
    pub async fn serve_as(&self, role: &str, vars: &[(&str, &str)]) -> Serving {
        self.serve_with(&["serve", "--role", role], vars).await
    }

    /// Starts `nezuko ARGS` (a `serve`) on a free port and waits for it to listen.
    pub async fn serve_with(&self, args: &[&str], vars: &[(&str, &str)]) -> Serving {
        let mut all = vec![("NEZUKO_SERVER__LISTEN", "127.0.0.1:0")];
        all.extend_from_slice(vars);
        let mut child = self.command(args, &all).spawn().expect("serve starts");
        let stderr = child.stderr.take().unwrap();
        let (tx, mut lines) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut reader = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                let _ = tx.send(line);
            }
        });
        let mut log = Vec::new();
        let addr = tokio::time::timeout(DEADLINE, async {
            while let Some(line) = lines.recv().await {
                log.push(line.clone());
                if let Some(addr) = line.split("addr=").nth(1) {
                    return addr.split_whitespace().next().unwrap().to_string();
                }
            }
            panic!("serve exited before listening: {log:#?}");
        })
        .await
        .expect("serve listens in time");
        Serving {
            child,
            base: format!("http://{addr}"),
            lines,
            log,
        }
    }

    pub fn data(&self) -> std::path::PathBuf {
        self.dir.path().join("data")
    }

    pub async fn store(&self) -> Store {
        let settings = DatabaseSettings {
            url: DatabaseUrl::parse(&format!(
                "sqlite://{}",
                self.data().join("nezuko.db").display()
            ))
            .unwrap(),
            max_connections: 1,
            connect_timeout: Duration::from_secs(5),
        };
        Store::connect(&settings).await.unwrap()
    }
}

impl Serving {
    /// SIGKILL: the process ends at once, with whatever it held in memory.
    pub async fn kill(mut self) {
        self.child.start_kill().expect("still running");
        self.child.wait().await.expect("reaped");
    }

    /// SIGTERM, then the exit status and everything the service logged.
    pub async fn terminate(mut self) -> (ExitStatus, Vec<String>) {
        let pid = self.child.id().expect("still running").to_string();
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        assert!(sent.success());
        let status = tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .expect("stops within 10 s of SIGTERM")
            .unwrap();
        while let Some(line) = self.lines.recv().await {
            self.log.push(line);
        }
        (status, self.log)
    }
}
