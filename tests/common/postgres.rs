//! A real PostgreSQL server for tests: a new cluster in a temporary directory, listening on a
//! free loopback port (and a Unix socket in that directory), stopped when dropped, also when the
//! test panics.
//!
//! The server programs (`initdb`, `pg_ctl`, `postgres`) are looked for in
//! `$CONSENT_PROXY_PG_BIN`, then `PATH`, then Debian's `/usr/lib/postgresql/VERSION/bin`
//! (scripts/test installs Debian's `postgresql`). Without them, starting fails with a message
//! saying so: these tests are not skipped. `initdb` and `postgres` refuse to run as root; a root
//! test process runs them as the `postgres` user (which the Debian package creates) through
//! `runuser`, and hands the temporary directory to that user.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The cluster's superuser, the user of [`PgServer::url`].
pub const PG_USER: &str = "consent";
/// Its password: connections over TCP must give it (scram-sha-256). Distinctive, so that tests
/// can check that no message ever shows it.
pub const PG_PASSWORD: &str = "pw-Kx9-never-printed";

pub struct PgServer {
    dir: tempfile::TempDir,
    bin: PathBuf,
    /// The user the server programs run as, when this process is root.
    run_as: Option<String>,
    pub port: u16,
    running: bool,
}

impl PgServer {
    /// Creates a cluster and starts its server; panics with the reason (and the server's log)
    /// if it cannot. Blocks for a second or two: from async code, call it through
    /// `tokio::task::spawn_blocking`.
    pub fn start() -> PgServer {
        let bin = find_bin();
        let dir = tempfile::Builder::new()
            .prefix("consent-proxy-pg-")
            .tempdir()
            .expect("a temporary directory for PostgreSQL");
        let run_as = running_as_root().then(|| {
            let (uid, gid) = user_ids("postgres");
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))
                .expect("hand the temporary directory to the postgres user");
            "postgres".to_string()
        });
        let mut server = PgServer {
            dir,
            bin,
            run_as,
            port: 0,
            running: false,
        };
        let pwfile = server.dir.path().join("pwfile");
        std::fs::write(&pwfile, format!("{PG_PASSWORD}\n")).unwrap();
        std::fs::set_permissions(&pwfile, std::fs::Permissions::from_mode(0o644)).unwrap();
        let data = server.data();
        let out = server.run(
            "initdb",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-U".as_ref(),
                PG_USER.as_ref(),
                "--pwfile".as_ref(),
                pwfile.as_os_str(),
                "--auth-local=trust".as_ref(),
                "--auth-host=scram-sha-256".as_ref(),
                "-E".as_ref(),
                "UTF8".as_ref(),
                "--locale=C".as_ref(),
                "--no-sync".as_ref(),
                "--no-instructions".as_ref(),
            ],
        );
        if !out.status.success() {
            panic!(
                "initdb failed ({}):\n{}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        // A free port can be taken between choosing it and the server binding it: try again.
        for attempt in 1..=5 {
            let port = free_port();
            match server.start_on(port) {
                Ok(()) => return server,
                Err(why) if attempt < 5 && why.contains("could not bind") => continue,
                Err(why) => panic!("PostgreSQL did not start on port {port}: {why}"),
            }
        }
        unreachable!()
    }

    /// `postgres://consent:PASSWORD@127.0.0.1:PORT/postgres`.
    pub fn url(&self) -> String {
        format!(
            "postgres://{PG_USER}:{PG_PASSWORD}@127.0.0.1:{}/postgres",
            self.port
        )
    }

    /// Stops the server (fast shutdown: sessions are ended), waiting until it has.
    pub fn stop(&mut self) {
        if self.running {
            self.pg_ctl_stop("fast");
        }
    }

    /// Starts the stopped server again, on the same port.
    pub fn start_again(&mut self) {
        assert!(!self.running, "the server is running");
        if let Err(why) = self.start_on(self.port) {
            panic!(
                "PostgreSQL did not start again on port {}: {why}",
                self.port
            );
        }
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn start_on(&mut self, port: u16) -> Result<(), String> {
        let data = self.data();
        let log = self.dir.path().join("log");
        let options = format!("-p {port} -h 127.0.0.1 -k {}", self.dir.path().display());
        let out = self.run(
            "pg_ctl",
            &[
                "start".as_ref(),
                "-w".as_ref(),
                "-t".as_ref(),
                "60".as_ref(),
                "-D".as_ref(),
                data.as_os_str(),
                "-l".as_ref(),
                log.as_os_str(),
                "-o".as_ref(),
                options.as_ref(),
            ],
        );
        if out.status.success() {
            self.port = port;
            self.running = true;
            Ok(())
        } else {
            Err(format!(
                "pg_ctl start: {}\n{}{}\nserver log:\n{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                self.log()
            ))
        }
    }

    fn pg_ctl_stop(&mut self, mode: &str) {
        let data = self.data();
        let out = self.run(
            "pg_ctl",
            &[
                "stop".as_ref(),
                "-w".as_ref(),
                "-t".as_ref(),
                "30".as_ref(),
                "-m".as_ref(),
                mode.as_ref(),
                "-D".as_ref(),
                data.as_os_str(),
            ],
        );
        self.running = false;
        if !out.status.success() && !std::thread::panicking() {
            panic!(
                "pg_ctl stop: {}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    /// Runs one of the server programs, as the `postgres` user when this process is root.
    fn run(&self, program: &str, args: &[&std::ffi::OsStr]) -> Output {
        let program = self.bin.join(program);
        let mut cmd = match &self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(&program);
                c
            }
            None => Command::new(&program),
        };
        cmd.args(args)
            .current_dir(self.dir.path())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()))
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        if self.running {
            self.pg_ctl_stop("immediate");
        }
    }
}

/// The directory holding `initdb`, `pg_ctl` and `postgres`.
fn find_bin() -> PathBuf {
    let complete = |dir: &Path| {
        ["initdb", "pg_ctl", "postgres"]
            .iter()
            .all(|p| dir.join(p).is_file())
    };
    if let Some(dir) = std::env::var_os("CONSENT_PROXY_PG_BIN") {
        let dir = PathBuf::from(dir);
        assert!(
            complete(&dir),
            "CONSENT_PROXY_PG_BIN={} does not hold initdb, pg_ctl and postgres",
            dir.display()
        );
        return dir;
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    if let Some(dir) = std::env::split_paths(&path).find(|d| complete(d)) {
        return dir;
    }
    // Debian: /usr/lib/postgresql/VERSION/bin, the newest first.
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            Some((version, e.path().join("bin")))
        })
        .filter(|(_, dir)| complete(dir))
        .collect();
    versions.sort();
    match versions.pop() {
        Some((_, dir)) => dir,
        None => panic!(
            "the PostgreSQL server programs (initdb, pg_ctl, postgres) were not found in \
             $CONSENT_PROXY_PG_BIN, PATH or /usr/lib/postgresql/*/bin. Install them (Debian: \
             apt-get install postgresql, which scripts/test does) or point CONSENT_PROXY_PG_BIN \
             at their directory"
        ),
    }
}

fn running_as_root() -> bool {
    let out = Command::new("id").arg("-u").output().expect("run id -u");
    String::from_utf8_lossy(&out.stdout).trim() == "0"
}

/// The uid and gid of `user`, from /etc/passwd.
fn user_ids(user: &str) -> (u32, u32) {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    passwd
        .lines()
        .find_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            (f.len() > 3 && f[0] == user).then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))?
        })
        .unwrap_or_else(|| {
            panic!(
                "this test runs as root, and PostgreSQL's initdb and postgres refuse to: they \
                 run as the `{user}` user, but there is none in /etc/passwd (Debian's postgresql \
                 package creates it)"
            )
        })
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port on 127.0.0.1")
        .port()
}
