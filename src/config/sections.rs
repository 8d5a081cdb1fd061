//! The small sections: `[admin]`, `[server]`, `[database]`, `[log]`, `[quotas]`,
//! `[upstream]` and `[audit]`. Every field's default is in its doc comment and in
//! `config.example.toml`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::serde_fmt::{duration, ip_nets, socket_addr};
use crate::secret::SecretKey;

/// `[admin]`: the operator-facing HTTP listener (metrics, health, admin API).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminConfig {
    /// Address the admin listener binds. Default `"0.0.0.0:8080"`.
    #[serde(with = "socket_addr")]
    pub listen: SocketAddr,
    /// Environment variable holding the admin API bearer token. At most one of
    /// `token_env` / `token_file`. Default unset.
    pub token_env: Option<String>,
    /// File holding the admin API bearer token; refused when group or others have any
    /// permission on it. A relative path resolves against the config file's directory.
    /// Default unset.
    pub token_file: Option<PathBuf>,
    /// Whether `/metrics` also requires the admin token. Needs `token_env` or
    /// `token_file`. Default `false`.
    pub protect_metrics: bool,
    /// Whether `/healthz` and `/readyz` also require the admin token (probes must then
    /// send `Authorization: Bearer …`). Needs `token_env` or `token_file`. Default `false`.
    pub protect_probes: bool,
    /// Most concurrent admin connections, 1 to 100000; more are answered `503` and
    /// closed. Default `64`.
    pub max_connections: usize,
    /// Largest admin request head (request line plus headers), 1 KiB to 1 MiB.
    /// Default `16384`.
    pub max_header_bytes: usize,
    /// Most admin request headers, 1 to 10000. Default `100`.
    pub max_headers: usize,
    /// Time allowed for a complete admin request head from its first byte.
    /// Default `"10s"`.
    #[serde(with = "duration")]
    pub header_read_timeout: Duration,
    /// An admin connection with no request in flight this long is closed (probes and
    /// Prometheus reconnect cheaply). Default `"60s"`.
    #[serde(with = "duration")]
    pub idle_timeout: Duration,
    /// The token read from `token_env` or `token_file` while loading; never in the file.
    #[serde(skip)]
    pub token: Option<SecretKey>,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            token_env: None,
            token_file: None,
            protect_metrics: false,
            protect_probes: false,
            max_connections: 64,
            max_header_bytes: 16 * 1024,
            max_headers: 100,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            token: None,
        }
    }
}

/// `[server]`: process-wide network settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Peers whose `X-Forwarded-For` is believed (CIDRs, or bare IPs). The client
    /// address is the right-most hop not in this list. Default `[]` (ignore XFF).
    #[serde(with = "ip_nets")]
    pub trusted_proxies: Vec<IpNet>,
    /// After SIGTERM/SIGINT, how long the listeners keep accepting new connections
    /// while `/readyz` already answers 503, so load balancers stop sending traffic
    /// before connections are refused. Default `"5s"`.
    #[serde(with = "duration")]
    pub drain_delay: Duration,
    /// Time in-flight requests get to finish once the listeners stopped accepting.
    /// Default `"30s"`.
    #[serde(with = "duration")]
    pub shutdown_timeout: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            trusted_proxies: Vec::new(),
            drain_delay: Duration::from_secs(5),
            shutdown_timeout: Duration::from_secs(30),
        }
    }
}

/// `[database]`: the SQLite store and the root key that seals secrets in it.
/// Relative paths resolve against the config file's directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// SQLite database file. Default `"stowage.db"`.
    pub path: PathBuf,
    /// Root key file (created 0600 when missing), used unless `STOWAGE_SECRET_KEY` is
    /// set. Default `"stowage.key"`.
    pub secret_key_file: PathBuf,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            path: PathBuf::from("stowage.db"),
            secret_key_file: PathBuf::from("stowage.key"),
        }
    }
}

/// `[log]`: tracing output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `trace`, `debug`, `info`, `warn`, `error`, or an `EnvFilter` directive such as
    /// `"info,stowage=debug"`. Default `"info"`.
    pub level: String,
    /// `"text"` or `"json"`. Default `"text"`.
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".to_owned(),
            format: LogFormat::Text,
        }
    }
}

/// Log line encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// `[quotas]`: quota accounting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QuotasConfig {
    /// How often bucket usage is rescanned from the upstream to correct drift.
    /// Default `"5m"`.
    #[serde(with = "duration")]
    pub scan_interval: Duration,
}

impl Default for QuotasConfig {
    fn default() -> Self {
        Self {
            scan_interval: Duration::from_secs(5 * 60),
        }
    }
}

/// `[upstream]`: the pooled client that talks to the backends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UpstreamConfig {
    /// TCP connect timeout. Default `"5s"`.
    #[serde(with = "duration")]
    pub connect_timeout: Duration,
    /// Time from sending a request until the upstream's response head arrives.
    /// Default `"60s"`.
    #[serde(with = "duration")]
    pub response_header_timeout: Duration,
    /// Longest silence while reading a backend's response body (between two reads,
    /// not the whole transfer). When it passes, the client's connection is aborted
    /// before its Content-Length is satisfied, which SDKs retry. Default `"60s"`.
    #[serde(with = "duration")]
    pub read_timeout: Duration,
    /// How often each backend is probed with a TCP connect while it answers (the
    /// `/readyz` lines and `stowage_upstream_reachable`); while it does not, probes back
    /// off from 1 s (or this, when shorter) to 30 s. Default `"10s"`.
    #[serde(with = "duration")]
    pub probe_interval: Duration,
    /// Idle pooled connections are closed after this long. Default `"90s"`.
    #[serde(with = "duration")]
    pub pool_idle_timeout: Duration,
    /// Most idle pooled connections kept per upstream host (`0` disables pooling).
    /// Default `256`.
    pub pool_max_idle_per_host: usize,
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            response_header_timeout: Duration::from_secs(60),
            read_timeout: Duration::from_secs(60),
            probe_interval: Duration::from_secs(10),
            pool_idle_timeout: Duration::from_secs(90),
            pool_max_idle_per_host: 256,
        }
    }
}

/// `[audit]`: the audit log in the SQLite database (`audit_events`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditConfig {
    /// Record S3 exchanges. Default `true`.
    pub enabled: bool,
    /// Fraction (0.0 to 1.0) of successful reads (GET, HEAD, listings) recorded; writes,
    /// denials and errors are always recorded. Default `0.0`.
    pub sample_success_reads: SampleRate,
    /// Events waiting to be written; when full, new events are dropped and counted in
    /// `stowage_audit_dropped_total` (requests never wait). Default `8192`.
    pub queue_capacity: usize,
    /// Rows older than this are deleted (checked hourly). Default `"30d"`.
    #[serde(with = "duration")]
    pub retention: Duration,
    /// The audit writer never grows the database file beyond this many bytes (the
    /// file is shared with the credential store, whose writes are not capped). When
    /// it is full, audit rows are dropped and counted in `stowage_audit_dropped_total`
    /// and rows past `retention` are pruned at once. `0` = no cap. Default `0`.
    pub max_db_bytes: u64,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            sample_success_reads: SampleRate::default(),
            queue_capacity: 8192,
            retention: Duration::from_secs(30 * 24 * 3600),
            max_db_bytes: 0,
        }
    }
}

/// A probability in `[0, 1]` (checked by validation; NaN is refused there).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SampleRate(pub f64);

// Validation refuses NaN, the only value for which `==` is not reflexive.
impl Eq for SampleRate {}

impl SampleRate {
    #[must_use]
    pub fn get(self) -> f64 {
        self.0
    }
}
