//! A Garage single-node process as a second, production-grade upstream. Found through
//! `$GARAGE_BIN`, then `garage` on PATH, then `~/.cargo/bin/garage`; when none exists the
//! Garage tier is skipped (the caller prints why). The process dies with the harness.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{BUCKET, REGION, clients};

/// A running Garage node with its default key and default bucket `test`.
pub struct GarageNode {
    pub s3_addr: SocketAddr,
    pub access_key: String,
    pub secret_key: String,
    pub log_path: PathBuf,
    child: Child,
    bin: PathBuf,
    cfg: PathBuf,
}

impl GarageNode {
    /// The garage binary, if one is installed.
    pub fn binary() -> Option<PathBuf> {
        if let Some(p) = std::env::var_os("GARAGE_BIN").map(PathBuf::from) {
            return p.is_file().then_some(p);
        }
        let on_path = std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join("garage"))
                .find(|p| p.is_file())
        });
        on_path.or_else(|| {
            let home = std::env::var_os("HOME").map(PathBuf::from)?;
            let p = home.join(".cargo/bin/garage");
            p.is_file().then_some(p)
        })
    }

    /// Write a config under `dir`, start `garage server --single-node --default-bucket`
    /// and wait until its S3 API serves the default bucket. `None` if not installed.
    /// The ports are probed free first; if another process takes one in between and
    /// Garage exits, it is started again on new ports (at most three attempts).
    ///
    /// With `STOWAGE_REQUIRE_GARAGE=1` (set by `.ci/run`) a missing binary is a failure,
    /// not a skip: CI must never pass with the production-upstream tier unrun.
    pub async fn start(dir: &Path) -> Option<Self> {
        let Some(bin) = Self::binary() else {
            assert!(
                std::env::var_os("STOWAGE_REQUIRE_GARAGE").is_none(),
                "STOWAGE_REQUIRE_GARAGE is set but no garage binary was found"
            );
            return None;
        };
        let mut last_log = String::new();
        for attempt in 0..3 {
            let mut node = Self::spawn(&bin, &dir.join(format!("attempt-{attempt}")));
            match node.wait_ready().await {
                Ok(()) => return Some(node),
                Err(log) => last_log = log,
            }
        }
        panic!("garage exited three times; last log:\n{last_log}");
    }

    fn spawn(bin: &Path, dir: &Path) -> Self {
        std::fs::create_dir_all(dir).expect("garage dir");
        let s3_addr = free_addr();
        let access_key = format!("GK{}", hex::encode(rand::random::<[u8; 12]>()));
        let secret_key = hex::encode(rand::random::<[u8; 32]>());
        let cfg = dir.join("garage.toml");
        std::fs::write(&cfg, config_text(dir, s3_addr, free_addr())).expect("write garage config");
        let log_path = dir.join("garage.log");
        std::fs::File::create(&log_path).expect("garage log file");
        let child = run(bin, &cfg, &log_path, &access_key, &secret_key);
        Self {
            s3_addr,
            access_key,
            secret_key,
            log_path,
            child,
            bin: bin.to_path_buf(),
            cfg,
        }
    }

    /// Start a killed node again: the same config, ports, data and keys (the
    /// upstream-restarted case). Waits until it serves the default bucket.
    pub async fn restart(&mut self) {
        self.kill();
        self.child = run(
            &self.bin,
            &self.cfg,
            &self.log_path,
            &self.access_key,
            &self.secret_key,
        );
        if let Err(log) = self.wait_ready().await {
            panic!("garage did not restart; log:\n{log}");
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.s3_addr)
    }

    /// Stop the process now (the upstream-down case).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Ready, or `Err(log)` when the process exited.
    async fn wait_ready(&mut self) -> Result<(), String> {
        let client = clients::sdk_client(
            &self.endpoint(),
            &self.access_key,
            &self.secret_key,
            true,
            &clients::Recorder::default(),
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("exit status {status}\n{}", self.log()));
            }
            if client.head_bucket().bucket(BUCKET).send().await.is_ok() {
                return Ok(());
            }
            assert!(
                Instant::now() < deadline,
                "garage did not serve bucket `{BUCKET}` within 30 s; log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }
}

impl Drop for GarageNode {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `garage server` on `cfg`, appending to `log_path`.
fn run(bin: &Path, cfg: &Path, log_path: &Path, access_key: &str, secret_key: &str) -> Child {
    let log = std::fs::OpenOptions::new()
        .append(true)
        .open(log_path)
        .expect("garage log file");
    Command::new(bin)
        .arg("-c")
        .arg(cfg)
        .args(["server", "--single-node", "--default-bucket"])
        .env("GARAGE_DEFAULT_ACCESS_KEY", access_key)
        .env("GARAGE_DEFAULT_SECRET_KEY", secret_key)
        .env("GARAGE_DEFAULT_BUCKET", BUCKET)
        .env("RUST_LOG", "garage=warn")
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log handle"))
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.display()))
}

/// A port that was free a moment ago (Garage binds it itself).
fn free_addr() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind probe");
    l.local_addr().expect("probe addr")
}

fn config_text(dir: &Path, s3: SocketAddr, rpc: SocketAddr) -> String {
    let rpc_secret = hex::encode(rand::random::<[u8; 32]>());
    format!(
        r#"metadata_dir = "{meta}"
data_dir = "{data}"
db_engine = "lmdb"
replication_factor = 1
rpc_bind_addr = "{rpc}"
rpc_public_addr = "{rpc}"
rpc_secret = "{rpc_secret}"

[s3_api]
s3_region = "{REGION}"
api_bind_addr = "{s3}"
"#,
        meta = dir.join("meta").display(),
        data = dir.join("data").display(),
    )
}
