//! Wiring: config → root key → SQLite source → merged cache → servers → readiness →
//! shutdown. `start` binds both listeners and returns their addresses, so the binary,
//! the quickstart and the tests all run the same code.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::admin::{AdminState, Readiness};
use crate::auth::{AuthOptions, SigningKeyCache};
use crate::config::Config;
use crate::credentials::CredentialCache;
use crate::credentials::sqlite::{SqliteStore, spawn_poller};
use crate::metrics::Metrics;
use crate::quota::LimitCache;
use crate::secret::RootKey;
use crate::server::listener::{ListenerLimits, serve};
use crate::server::state::RequestLimits;
use crate::server::{ProxyState, handle};
use crate::upstream::client::ClientOptions;
use crate::upstream::{UpstreamBackend, UpstreamClient};

/// A running proxy: its bound addresses and the handles to stop it.
pub struct Running {
    pub s3_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub cache: Arc<CredentialCache>,
    pub metrics: Arc<Metrics>,
    pub readiness: Arc<Readiness>,
    pub store: Arc<SqliteStore>,
    /// Per-bucket quota limits (SQLite and Kubernetes).
    pub quota_limits: Arc<LimitCache>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Running {
    /// Turn unready, stop accepting, let in-flight exchanges finish (bounded by the
    /// configured shutdown timeout), then return.
    pub async fn shutdown(self) {
        self.readiness.set_ready(false);
        let _ = self.shutdown.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// Resolve the configured backends into signing-ready upstreams.
///
/// # Errors
/// When an endpoint lacks a scheme or host.
pub fn build_backends(config: &Config) -> anyhow::Result<HashMap<String, UpstreamBackend>> {
    config
        .backends
        .iter()
        .map(|b| {
            let up = UpstreamBackend::new(
                &b.id,
                &b.endpoint,
                &b.region,
                &b.access_key_id,
                &b.secret_access_key,
            )
            .with_context(|| format!("backends: `{}` has an unusable endpoint", b.id))?;
            Ok((b.id.clone(), up))
        })
        .collect()
}

/// Open the store, load credentials, bind both listeners and start serving.
///
/// # Errors
/// When the database cannot be opened with this root key, or a listener cannot bind.
pub async fn start(config: &Config, root_key: RootKey) -> anyhow::Result<Running> {
    let metrics = Arc::new(Metrics::new());
    let cache = Arc::new(CredentialCache::new());
    let readiness = Arc::new(Readiness::default());
    let quota_limits = Arc::new(LimitCache::new());

    let store = Arc::new(
        SqliteStore::open(&config.database.path, root_key)
            .with_context(|| format!("database: cannot open {}", config.database.path.display()))?,
    );
    store
        .reload_into(&cache)
        .context("database: cannot load credentials")?;
    let poller = spawn_poller(
        Arc::clone(&store),
        Arc::clone(&cache),
        config.s3_proxy.credential_poll_interval,
    );

    let state = Arc::new(ProxyState {
        cache: Arc::clone(&cache),
        keys: SigningKeyCache::default(),
        auth: AuthOptions {
            max_skew: config.s3_proxy.max_clock_skew,
            max_presign_expiry: config.s3_proxy.max_presign_expiry,
        },
        backends: build_backends(config)?,
        client: UpstreamClient::new(&ClientOptions {
            connect_timeout: config.upstream.connect_timeout,
            response_header_timeout: config.upstream.response_header_timeout,
            pool_idle_timeout: config.upstream.pool_idle_timeout,
            pool_max_idle_per_host: config.upstream.pool_max_idle_per_host,
        }),
        metrics: Arc::clone(&metrics),
        host_suffixes: config.s3_proxy.host_suffixes.clone(),
        limits: RequestLimits {
            max_url_bytes: config.s3_proxy.max_url_bytes,
            max_signed_chunk_bytes: config.s3_proxy.max_signed_chunk_bytes,
        },
        quota_limits: Arc::clone(&quota_limits),
    });

    let s3_listener = TcpListener::bind(config.s3_proxy.listen)
        .await
        .with_context(|| format!("s3_proxy.listen: cannot bind {}", config.s3_proxy.listen))?;
    let admin_listener = TcpListener::bind(config.admin.listen)
        .await
        .with_context(|| format!("admin.listen: cannot bind {}", config.admin.listen))?;
    let s3_addr = s3_listener.local_addr()?;
    let admin_addr = admin_listener.local_addr()?;

    let (shutdown, rx) = watch::channel(false);
    let limits = ListenerLimits {
        max_connections: config.s3_proxy.max_connections,
        max_header_bytes: config.s3_proxy.max_header_bytes,
        max_headers: config.s3_proxy.max_headers,
        header_read_timeout: config.s3_proxy.header_read_timeout,
    };
    let drain = config.server.shutdown_timeout;
    let shed_counter = metrics.shed_connections.clone();
    let s3_task = tokio::spawn(serve(
        s3_listener,
        limits.clone(),
        move |req, peer| handle(Arc::clone(&state), req, peer),
        rx.clone(),
        drain,
        move || shed_counter.inc(),
    ));
    let admin_state = Arc::new(AdminState {
        metrics: Arc::clone(&metrics),
        cache: Arc::clone(&cache),
        readiness: Arc::clone(&readiness),
    });
    let admin_task = tokio::spawn(serve(
        admin_listener,
        ListenerLimits {
            max_connections: 64,
            ..limits
        },
        move |req, peer| crate::admin::handle(Arc::clone(&admin_state), req, peer),
        rx.clone(),
        Duration::from_secs(1),
        || {},
    ));
    let mut stop_poller = rx;
    let poller_task = tokio::spawn(async move {
        let _ = stop_poller.changed().await;
        poller.abort();
    });

    readiness.set_ready(true);
    tracing::info!(%s3_addr, %admin_addr, credentials = cache.len(crate::credentials::cache::SourceKind::Sqlite), "stowage is serving");
    Ok(Running {
        s3_addr,
        admin_addr,
        cache,
        metrics,
        readiness,
        store,
        quota_limits,
        shutdown,
        tasks: vec![s3_task, admin_task, poller_task],
    })
}

/// Wait for Ctrl-C or SIGTERM.
pub async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// Install the tracing subscriber. Signing internals and the embedded upstream's
/// request dumps are always silenced: they would carry signatures.
pub fn init_logging(level: &str, json: bool) {
    let directives =
        format!("{level},aws_sigv4=off,s3s=warn,s3s_fs=warn,hyper=warn,hyper_util=warn");
    let filter = tracing_subscriber::EnvFilter::try_new(&directives)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}
