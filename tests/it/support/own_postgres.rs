//! A PostgreSQL server of a test's own, in a temp dir on a free port, that the test can stop and
//! start again: outages are real (connections refused, pooled connections cut), and the shared
//! server the other suites use is never touched.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use tempfile::TempDir;

/// One throwaway cluster (`initdb`, trust auth, user `postgres`), stopped on drop.
pub struct OwnPostgres {
    bin: PathBuf,
    dir: TempDir,
    port: u16,
}

impl OwnPostgres {
    /// Creates and starts the cluster. Panics with what is missing when PostgreSQL's server
    /// programs cannot be found or run (the suite needs them; `scripts/test` installs them).
    pub fn start() -> Self {
        let bin = server_bin_dir();
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let server = Self { bin, dir, port };
        // initdb and the server refuse to run as root: they run as `postgres` there.
        if is_root() {
            run(Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(server.dir.path()));
        }
        run(server
            .command("initdb")
            .args([
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
                "-D",
            ])
            .arg(server.data()));
        server.resume();
        server
    }

    /// `postgres://postgres@127.0.0.1:PORT/postgres`.
    pub fn admin_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Stops the server (fast shutdown: open connections are cut), waiting until it is down.
    pub fn stop(&self) {
        run(self
            .command("pg_ctl")
            .args(["stop", "-w", "-m", "fast", "-D"])
            .arg(self.data()));
        self.wait_port(false);
    }

    /// Starts the stopped server on the same port, waiting until it accepts connections.
    pub fn resume(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("server.log");
        run(self
            .command("pg_ctl")
            .args(["start", "-w", "-t", "60", "-D"])
            .arg(self.data())
            .arg("-l")
            .arg(log)
            .args(["-o", &options]));
        self.wait_port(true);
    }

    /// Waits until the server's TCP port, the one the tests connect to, accepts connections
    /// (`open`) or refuses them. `pg_ctl -w` has waited for the server's own status, which
    /// normally agrees already.
    fn wait_port(&self, open: bool) {
        let address = std::net::SocketAddr::from(([127, 0, 0, 1], self.port));
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let accepts =
                std::net::TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_ok();
            if accepts == open {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "port {} still {} 10 s after pg_ctl returned",
                self.port,
                if accepts { "accepts" } else { "refuses" }
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        if is_root() {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(path);
            command
        } else {
            Command::new(path)
        }
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        let _ = self
            .command("pg_ctl")
            .args(["stop", "-w", "-m", "immediate", "-D"])
            .arg(self.data())
            .output();
    }
}

/// Where `initdb` and `pg_ctl` live: `pg_config --bindir`, else the newest Debian install.
fn server_bin_dir() -> PathBuf {
    let from_config = Command::new("pg_config")
        .arg("--bindir")
        .output()
        .ok()
        .map(|out| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
        .filter(|dir| dir.join("initdb").exists());
    let debian = || {
        let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .map(|entry| entry.path().join("bin"))
            .filter(|dir| dir.join("initdb").exists())
            .collect();
        dirs.sort_by_key(|dir| version_of(dir));
        dirs.pop()
    };
    from_config.or_else(debian).unwrap_or_else(|| {
        panic!("PostgreSQL's server programs (initdb, pg_ctl) are not installed; scripts/test installs them")
    })
}

fn version_of(bin: &Path) -> u32 {
    bin.parent()
        .and_then(|dir| dir.file_name())
        .and_then(|name| name.to_str())
        .and_then(|name| name.parse().ok())
        .unwrap_or(0)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free port")
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.stdout.trim_ascii() == b"0")
}

fn run(command: &mut Command) {
    let out = command
        .output()
        .unwrap_or_else(|error| panic!("could not run {command:?}: {error}"));
    assert!(
        out.status.success(),
        "{command:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
