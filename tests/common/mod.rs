//! The end-to-end harness: a real upstream S3 server (s3s-fs in-process, or a Garage
//! process), the proxy started through `stowage::app::start` on `127.0.0.1:0`, and
//! aws-sdk-s3 clients pointed at either. Nothing on the S3 path is mocked.
//!
//! Each test binary includes this module; not every binary uses every helper.
#![allow(dead_code)]

pub mod access_cases;
pub mod cases;
pub mod clients;
pub mod edge;
pub mod fake_apiserver;
pub mod faulty;
pub mod forms;
pub mod garage;
pub mod logs;
pub mod quota;
pub mod raw;
pub mod signer;
pub mod tls;
pub mod transfer_cases;
pub mod uploads;
pub mod upstream_tap;
pub mod webdriver;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use aws_sdk_s3::Client;
use stowage::app::Running;
use stowage::config::{Backend, Config};
use stowage::credentials::model::{Access, Scope};
use stowage::credentials::sqlite::{NewCredential, SqliteStore};
use stowage::quickstart::upstream::{EmbeddedUpstream, spawn_fs_upstream};
use stowage::secret::{RootKey, SecretKey};
use tempfile::TempDir;

pub use clients::Recorder;

/// The bucket every harness creates before the test starts.
pub const BUCKET: &str = "test";
/// The region both the proxy and the upstream sign for.
pub const REGION: &str = "us-east-1";
/// The backend id credentials point at.
pub const BACKEND: &str = "primary";

/// Which real S3 server sits behind the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamKind {
    /// s3s-fs, in-process; checks SigV4.
    S3sFs,
    /// A Garage 2.x single-node process.
    Garage,
}

enum Upstream {
    Fs(EmbeddedUpstream),
    Garage(garage::GarageNode),
}

/// One upstream plus one proxy, with everything needed to talk to both.
pub struct Harness {
    pub kind: UpstreamKind,
    pub bucket: String,
    pub s3_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub upstream_endpoint: String,
    /// Every request the harness's tenant SDK clients put on the wire (after signing).
    pub sent: Recorder,
    /// The same for the admin client that talks directly to the upstream.
    pub admin_sent: Recorder,
    running: Option<Running>,
    upstream: Upstream,
    admin_access_key: String,
    admin_secret_key: String,
    root_key: [u8; 32],
    db_path: PathBuf,
    config: Config,
    dir: TempDir,
}

impl Harness {
    /// Start with the default configuration. `None` only for Garage when no binary is
    /// installed (the caller prints the skip line).
    pub async fn start(kind: UpstreamKind) -> Option<Self> {
        Self::start_with(kind, |_| {}).await
    }

    /// Start, letting the caller adjust the proxy configuration first.
    pub async fn start_with(kind: UpstreamKind, adjust: impl FnOnce(&mut Config)) -> Option<Self> {
        let dir = tempfile::tempdir().expect("tempdir");
        let (upstream, endpoint, ak, sk) = match kind {
            UpstreamKind::S3sFs => start_fs(dir.path()).await,
            UpstreamKind::Garage => {
                let node = garage::GarageNode::start(&dir.path().join("garage")).await?;
                let endpoint = node.endpoint();
                let (ak, sk) = (node.access_key.clone(), node.secret_key.clone());
                (Upstream::Garage(node), endpoint, ak, sk)
            }
        };
        let root_key: [u8; 32] = rand::random();
        let mut config = proxy_config(dir.path(), &endpoint, &ak, &sk);
        adjust(&mut config);
        let running = stowage::app::start(&config, RootKey::from_bytes(root_key))
            .await
            .expect("the proxy starts");
        let h = Self {
            kind,
            bucket: BUCKET.to_owned(),
            s3_addr: running.s3_addr,
            admin_addr: running.admin_addr,
            upstream_endpoint: endpoint,
            sent: Recorder::default(),
            admin_sent: Recorder::default(),
            running: Some(running),
            upstream,
            admin_access_key: ak,
            admin_secret_key: sk,
            root_key,
            db_path: config.database.path.clone(),
            config,
            dir,
        };
        if kind == UpstreamKind::S3sFs {
            // Garage made its default bucket at start-up.
            h.create_bucket_upstream(BUCKET).await;
        }
        Some(h)
    }

    /// `http://127.0.0.1:PORT` of the proxy's S3 listener.
    pub fn proxy_url(&self) -> String {
        format!("http://{}", self.s3_addr)
    }

    /// The running proxy (store, cache, metrics).
    pub fn running(&self) -> &Running {
        self.running.as_ref().expect("the proxy is running")
    }

    pub fn store(&self) -> &SqliteStore {
        &self.running().store
    }

    /// A second, independent handle on the proxy's SQLite database (as an admin CLI
    /// would open it).
    pub fn second_store(&self) -> SqliteStore {
        SqliteStore::open(&self.db_path, RootKey::from_bytes(self.root_key))
            .expect("second store handle")
    }

    /// The backend admin secret: logs and responses must never show it.
    pub fn admin_secret(&self) -> &str {
        &self.admin_secret_key
    }

    pub fn admin_access_key(&self) -> &str {
        &self.admin_access_key
    }

    pub fn root_key_hex(&self) -> String {
        hex::encode(self.root_key)
    }

    pub fn temp_dir(&self) -> &Path {
        self.dir.path()
    }

    /// Path-style SDK client against the proxy.
    pub fn client(&self, ak: &str, sk: &str) -> Client {
        clients::sdk_client(&self.proxy_url(), ak, sk, true, &self.sent)
    }

    /// Virtual-host SDK client: `http://<bucket>.localhost:PORT`, resolved to 127.0.0.1
    /// by a resolver inside the client (the system resolver does not know `*.localhost`).
    pub fn vhost_client(&self, ak: &str, sk: &str) -> Client {
        let url = format!("http://localhost:{}", self.s3_addr.port());
        clients::sdk_client(&url, ak, sk, false, &self.sent)
    }

    /// SDK client that talks DIRECTLY to the upstream with the backend admin key: what
    /// really landed upstream.
    pub fn admin_client(&self) -> Client {
        clients::sdk_client(
            &self.upstream_endpoint,
            &self.admin_access_key,
            &self.admin_secret_key,
            true,
            &self.admin_sent,
        )
    }

    /// Mint a credential with these scopes and make it visible to the proxy now.
    pub fn credential(&self, scopes: Vec<Scope>) -> (String, String) {
        let (ak, sk) = self
            .store()
            .create_credential(NewCredential {
                backend: BACKEND.to_owned(),
                scopes,
                expires_at: None,
                description: "e2e test credential".to_owned(),
                enabled: true,
            })
            .expect("create credential");
        self.reload();
        (ak, sk.expose().to_owned())
    }

    /// A credential on the harness bucket with `access`.
    pub fn bucket_credential(&self, access: Access) -> (String, String) {
        self.credential(vec![scope(&self.bucket, access)])
    }

    /// Apply the store's current state to the proxy's cache immediately.
    pub fn reload(&self) {
        self.store()
            .reload_into(&self.running().cache)
            .expect("reload credentials");
    }

    /// CreateBucket directly upstream with the admin key.
    pub async fn create_bucket_upstream(&self, name: &str) {
        self.admin_client()
            .create_bucket()
            .bucket(name)
            .send()
            .await
            .unwrap_or_else(|e| panic!("create upstream bucket {name}: {}", clients::describe(&e)));
    }

    /// Whether `bucket/key` exists upstream (HeadObject with the admin key).
    pub async fn exists_upstream(&self, bucket: &str, key: &str) -> bool {
        match self
            .admin_client()
            .head_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
        {
            Ok(_) => true,
            Err(e) if clients::status(&e) == Some(404) => false,
            Err(e) => panic!("upstream HEAD {bucket}/{key}: {}", clients::describe(&e)),
        }
    }

    /// The object's bytes as stored upstream.
    pub async fn read_upstream(&self, bucket: &str, key: &str) -> Vec<u8> {
        let out = self
            .admin_client()
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .unwrap_or_else(|e| panic!("upstream GET {bucket}/{key}: {}", clients::describe(&e)));
        out.body.collect().await.expect("upstream body").to_vec()
    }

    /// Put an object directly upstream.
    pub async fn put_upstream(&self, bucket: &str, key: &str, body: &[u8]) {
        self.admin_client()
            .put_object()
            .bucket(bucket)
            .key(key)
            .body(body.to_vec().into())
            .send()
            .await
            .unwrap_or_else(|e| panic!("upstream PUT {bucket}/{key}: {}", clients::describe(&e)));
    }

    /// Stop the upstream so that the proxy cannot reach it.
    pub fn stop_upstream(&mut self) {
        match &mut self.upstream {
            Upstream::Fs(u) => u.stop(),
            Upstream::Garage(g) => g.kill(),
        }
    }

    /// Start a stopped Garage upstream again on the same address, with its data.
    pub async fn restart_upstream(&mut self) {
        match &mut self.upstream {
            Upstream::Garage(g) => g.restart().await,
            Upstream::Fs(_) => panic!("restart_upstream is for Garage; use tests/common/faulty.rs"),
        }
    }

    /// The proxy's Prometheus text, as served on the admin listener's `/metrics`.
    pub fn metrics_text(&self) -> String {
        let r = self.running();
        r.metrics.render(&r.cache)
    }

    /// The value of one counter sample, e.g. `stowage_s3_requests_total{operation="PutObject",outcome="ok"}`.
    pub fn metric(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        metric_value(&self.metrics_text(), name, labels)
    }

    /// The proxy's SQLite database file.
    pub fn db_path(&self) -> &Path {
        &self.db_path
    }

    /// Start shutting the proxy down in the background (the harness keeps the
    /// upstream); the handle resolves when `Running::shutdown` returns.
    pub fn begin_shutdown(&mut self) -> tokio::task::JoinHandle<()> {
        let r = self.running.take().expect("the proxy is running");
        tokio::spawn(r.shutdown())
    }

    /// Stop the proxy and start it again on the same database and config with the
    /// root key `key` (the upstream keeps running).
    pub async fn restart_with_key(&mut self, key: [u8; 32]) -> anyhow::Result<()> {
        if let Some(r) = self.running.take() {
            r.shutdown().await;
        }
        let running = stowage::app::start(&self.config, RootKey::from_bytes(key)).await?;
        self.root_key = key;
        self.s3_addr = running.s3_addr;
        self.admin_addr = running.admin_addr;
        self.running = Some(running);
        Ok(())
    }

    /// A config file naming the harness database, for the `stowage` binary's commands
    /// (pass the root key as `STOWAGE_SECRET_KEY`).
    pub fn write_cli_config(&self) -> PathBuf {
        let path = self.dir.path().join("cli.toml");
        let text = format!(
            "[database]\npath = {:?}\nsecret_key_file = {:?}\n",
            self.db_path.display().to_string(),
            self.dir.path().join("unused.key").display().to_string()
        );
        std::fs::write(&path, text).expect("write cli config");
        path
    }

    /// Stop the proxy (the upstream stops when the harness drops).
    pub async fn shutdown(mut self) {
        if let Some(r) = self.running.take() {
            tokio::time::timeout(Duration::from_secs(10), r.shutdown())
                .await
                .expect("proxy shuts down within 10 s");
        }
    }
}

/// A scope on `bucket` with no prefix.
pub fn scope(bucket: &str, access: Access) -> Scope {
    Scope {
        bucket: bucket.to_owned(),
        access,
        prefix: None,
    }
}

/// A scope on `bucket` limited to keys under `prefix`.
pub fn prefix_scope(bucket: &str, access: Access, prefix: &str) -> Scope {
    Scope {
        bucket: bucket.to_owned(),
        access,
        prefix: Some(prefix.to_owned()),
    }
}

async fn start_fs(dir: &Path) -> (Upstream, String, String, String) {
    let ak = format!("ADMIN{}", hex::encode_upper(rand::random::<[u8; 6]>()));
    let sk = hex::encode(rand::random::<[u8; 20]>());
    let up = spawn_fs_upstream(
        &dir.join("upstream"),
        "127.0.0.1:0".parse().expect("addr"),
        &ak,
        &sk,
    )
    .await
    .expect("s3s-fs upstream starts");
    let endpoint = up.endpoint();
    (Upstream::Fs(up), endpoint, ak, sk)
}

fn proxy_config(dir: &Path, endpoint: &str, ak: &str, sk: &str) -> Config {
    let mut config = Config::default();
    config.s3_proxy.listen = "127.0.0.1:0".parse().expect("addr");
    config.admin.listen = "127.0.0.1:0".parse().expect("addr");
    config.s3_proxy.host_suffixes = vec!["localhost".to_owned()];
    config.server.shutdown_timeout = Duration::from_secs(2);
    config.server.drain_delay = Duration::ZERO;
    config.database.path = dir.join("stowage.db");
    config.database.secret_key_file = dir.join("stowage.key");
    config.backends = vec![Backend {
        id: BACKEND.to_owned(),
        endpoint: endpoint.parse().expect("endpoint uri"),
        region: REGION.to_owned(),
        access_key_id: ak.to_owned(),
        secret_access_key: SecretKey::new(sk),
    }];
    config
}

/// Read one sample from Prometheus text; 0 when absent.
pub fn metric_value(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .filter(|(series, _)| {
            let (n, rest) = series.split_once('{').unwrap_or((series, ""));
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")))
        })
        .filter_map(|(_, v)| v.parse::<f64>().ok())
        .sum()
}

/// Deterministic test bytes of length `n` (not all equal, so misplaced chunks show).
pub fn pattern(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| {
            (i as u64)
                .wrapping_mul(31)
                .wrapping_add(u64::from(seed))
                .to_le_bytes()[0]
                ^ (i >> 11) as u8
        })
        .collect()
}

/// Generate the `#[tokio::test]` functions of one test binary from the shared cases.
/// `$prelude` decides what a missing upstream means (for Garage: print and return).
#[macro_export]
macro_rules! case_tests {
    ($kind:expr, { $($name:ident => $case:path),* $(,)? }) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let Some(h) = common::Harness::start($kind).await else {
                    eprintln!("GARAGE TIER DID NOT RUN: no garage binary on PATH");
                    return;
                };
                $case(&h).await;
                h.shutdown().await;
            }
        )*
    };
}
