//! The two real processes the soak drives: a Garage single node (the upstream) and the
//! release `stowage serve` binary, each a child process with its own log file, so the
//! proxy's RSS, threads and file descriptors can be read from `/proc/<pid>/`.

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

pub const REGION: &str = "us-east-1";
pub const BACKEND: &str = "garage";

/// A port that was free a moment ago; the child binds it itself (both Garage and the
/// proxy take their addresses from a config file). Start-up is retried on a clash.
fn free_port() -> anyhow::Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").context("bind a probe socket")?;
    Ok(l.local_addr()?.port())
}

fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("write {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(())
}

fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let start = text.len().saturating_sub(4000);
    text.get(start..).unwrap_or_default().to_owned()
}

/// A running Garage node with its default key (which may create buckets).
pub struct Garage {
    child: Child,
    pub endpoint: String,
    pub access_key: String,
    pub secret_key: String,
    pub dir: PathBuf,
}

impl Garage {
    pub async fn start(bin: &Path, dir: &Path) -> anyhow::Result<Self> {
        let mut last = String::new();
        for attempt in 0..3 {
            let d = dir.join(format!("garage-{attempt}"));
            let mut node = Self::spawn(bin, &d)?;
            match node.wait_ready().await {
                Ok(()) => return Ok(node),
                Err(e) => last = format!("{e:#}\n{}", tail(&d.join("garage.log"))),
            }
        }
        bail!("garage did not start in three attempts: {last}")
    }

    fn spawn(bin: &Path, dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let (s3, rpc) = (free_port()?, free_port()?);
        let access_key = format!("GK{}", hex::encode(rand::random::<[u8; 12]>()));
        let secret_key = hex::encode(rand::random::<[u8; 32]>());
        let cfg = dir.join("garage.toml");
        let text = format!(
            "metadata_dir = \"{meta}\"\ndata_dir = \"{data}\"\ndb_engine = \"lmdb\"\n\
             replication_factor = 1\nrpc_bind_addr = \"127.0.0.1:{rpc}\"\n\
             rpc_public_addr = \"127.0.0.1:{rpc}\"\nrpc_secret = \"{secret}\"\n\n\
             [s3_api]\ns3_region = \"{REGION}\"\napi_bind_addr = \"127.0.0.1:{s3}\"\n",
            meta = dir.join("meta").display(),
            data = dir.join("data").display(),
            secret = hex::encode(rand::random::<[u8; 32]>()),
        );
        write_private(&cfg, &text)?;
        let log = std::fs::File::create(dir.join("garage.log"))?;
        let child = Command::new(bin)
            .arg("-c")
            .arg(&cfg)
            .args(["server", "--single-node", "--default-bucket"])
            .env("GARAGE_DEFAULT_ACCESS_KEY", &access_key)
            .env("GARAGE_DEFAULT_SECRET_KEY", &secret_key)
            .env("GARAGE_DEFAULT_BUCKET", "garage-default")
            .env("RUST_LOG", "garage=warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("run {}", bin.display()))?;
        Ok(Self {
            child,
            endpoint: format!("http://127.0.0.1:{s3}"),
            access_key,
            secret_key,
            dir: dir.to_owned(),
        })
    }

    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let client = crate::s3::client(
            &self.endpoint,
            &self.access_key,
            &self.secret_key,
            crate::s3::http_client(),
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!("garage exited: {status}");
            }
            if client
                .head_bucket()
                .bucket("garage-default")
                .send()
                .await
                .is_ok()
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("garage did not serve within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Garage {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The proxy: `stowage serve` with a generated config (SQLite credentials, audit on,
/// quotas rescanned every 30 s, an admin token).
pub struct Proxy {
    child: Child,
    pub pid: u32,
    pub s3_endpoint: String,
    pub admin_base: String,
    pub token: String,
    pub log: PathBuf,
}

impl Proxy {
    pub async fn start(bin: &Path, dir: &Path, garage: &Garage) -> anyhow::Result<Self> {
        let mut last = String::new();
        for attempt in 0..3 {
            let d = dir.join(format!("stowage-{attempt}"));
            let mut proxy = Self::spawn(bin, &d, garage)?;
            match proxy.wait_ready().await {
                Ok(()) => return Ok(proxy),
                Err(e) => {
                    last = format!("{e:#}\n{}", tail(&proxy.log));
                    let _ = proxy.child.kill();
                    let _ = proxy.child.wait();
                }
            }
        }
        bail!("stowage serve did not start in three attempts: {last}")
    }

    fn spawn(bin: &Path, dir: &Path, garage: &Garage) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let (s3, admin) = (free_port()?, free_port()?);
        let token = hex::encode(rand::random::<[u8; 32]>());
        write_private(&dir.join("admin-token"), &token)?;
        write_private(&dir.join("backend.secret"), &garage.secret_key)?;
        let config = dir.join("stowage.toml");
        write_private(&config, &config_text(s3, admin, garage))?;
        let log = dir.join("serve.log");
        let child = Command::new(bin)
            .args(["serve", "--config"])
            .arg(&config)
            .env_remove("STOWAGE_SECRET_KEY")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .with_context(|| format!("run {}", bin.display()))?;
        Ok(Self {
            pid: child.id(),
            child,
            s3_endpoint: format!("http://127.0.0.1:{s3}"),
            admin_base: format!("http://127.0.0.1:{admin}"),
            token,
            log,
        })
    }

    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let http = reqwest::Client::new();
        let url = format!("{}/readyz", self.admin_base);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!("stowage serve exited: {status}");
            }
            if let Ok(r) = http.get(&url).send().await
                && r.status() == 200
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("stowage serve was not ready within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGTERM, then wait for the exit (the graceful-shutdown path).
    pub fn terminate(&mut self, within: Duration) -> anyhow::Result<ExitStatus> {
        let sent = Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status()?;
        if !sent.success() {
            bail!("kill -TERM {} failed", self.pid);
        }
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                bail!("stowage serve did not exit within {within:?} of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn config_text(s3: u16, admin: u16, garage: &Garage) -> String {
    format!(
        r#"# Generated by the soak (examples/soak).
[s3_proxy]
listen = "127.0.0.1:{s3}"
credential_poll_interval = "1s"

[admin]
listen = "127.0.0.1:{admin}"
token_file = "admin-token"

[server]
drain_delay = "0s"
shutdown_timeout = "10s"

[database]
path = "stowage.db"
secret_key_file = "stowage.key"

[log]
level = "info"

[quotas]
# Short, so usage rescans run many times under traffic.
scan_interval = "30s"

[upstream]
# Short, so the idle upstream pool drains within the fd check's wait.
pool_idle_timeout = "10s"

[audit]
enabled = true
sample_success_reads = 0.01

[[backends]]
id = "{BACKEND}"
endpoint = "{endpoint}"
region = "{REGION}"
access_key_id = "{ak}"
secret_access_key_file = "backend.secret"
"#,
        endpoint = garage.endpoint,
        ak = garage.access_key,
    )
}
