//! A real PostgreSQL for the tests: `initdb` + `pg_ctl` on a free port of 127.0.0.1 in a
//! temporary folder, with password authentication (user `phlo`, password [`PASSWORD`]);
//! stopped and removed on drop. PostgreSQL refuses to run as root: as root, the folder belongs
//! to the `postgres` user and the commands run as that user (`runuser`).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

pub const PASSWORD: &str = "s3cret-pw";

const HINT: &str = "the PostgreSQL server binaries (initdb, pg_ctl) are needed for these tests: \
                    install them (`apt-get install postgresql`)";

pub struct Server {
    dir: tempfile::TempDir,
    pg_ctl: PathBuf,
    pub port: u16,
}

impl Server {
    pub fn start() -> Self {
        let (initdb, pg_ctl) = (binary("initdb"), binary("pg_ctl"));
        let dir = tempfile::Builder::new()
            .prefix("phlo-pg-")
            .tempdir()
            .unwrap();
        let as_root = is_root();
        if as_root {
            run(
                &["chown", "postgres:postgres", &path(dir.path())],
                false,
                "chown",
            );
        }
        let pwfile = dir.path().join("pw");
        std::fs::write(&pwfile, PASSWORD).unwrap();
        let data = path(&dir.path().join("data"));
        run(
            &[
                &path(&initdb),
                "-D",
                &data,
                "-U",
                "phlo",
                "--auth=scram-sha-256",
                &format!("--pwfile={}", path(&pwfile)),
                "-E",
                "UTF8",
                // The environment's locale (LANG) may not be installed: initdb then refuses.
                "--no-locale",
            ],
            as_root,
            "initdb",
        );
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            path(dir.path())
        );
        let log = path(&dir.path().join("log"));
        let pg_ctl_path = path(&pg_ctl);
        run(
            &[
                &pg_ctl_path,
                "-D",
                &data,
                "-o",
                &options,
                "-l",
                &log,
                "-w",
                "start",
            ],
            as_root,
            "pg_ctl start",
        );
        Self { dir, pg_ctl, port }
    }

    /// The URL of database `postgres` as user `phlo` with `password`.
    pub fn url_with(&self, password: &str) -> String {
        format!(
            "postgresql://phlo:{password}@127.0.0.1:{}/postgres",
            self.port
        )
    }

    pub fn url(&self) -> String {
        self.url_with(PASSWORD)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let data = path(&self.dir.path().join("data"));
        let pg_ctl = path(&self.pg_ctl);
        run(
            &[&pg_ctl, "-D", &data, "-m", "immediate", "-w", "stop"],
            is_root(),
            "pg_ctl stop",
        );
    }
}

fn binary(name: &str) -> PathBuf {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    });
    let mut installed: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|version| version.path().join("bin").join(name))
        .filter(|p| p.is_file())
        .collect();
    installed.sort();
    on_path
        .or_else(|| installed.pop())
        .unwrap_or_else(|| panic!("{name} not found: {HINT}"))
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.stdout.trim_ascii() == b"0")
}

fn run(command: &[&str], as_postgres: bool, what: &str) {
    let mut full: Vec<&str> = Vec::new();
    if as_postgres {
        full.extend(["runuser", "-u", "postgres", "--"]);
    }
    full.extend(command);
    let done = Command::new(full[0])
        .args(&full[1..])
        .output()
        .unwrap_or_else(|e| panic!("{what} could not start: {e}. {HINT}"));
    assert!(
        done.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&done.stderr),
        String::from_utf8_lossy(&done.stdout)
    );
}

fn path(p: &Path) -> String {
    p.display().to_string()
}
