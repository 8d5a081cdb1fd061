//! The watch loop: kube-runtime's `watcher` on the labelled Secrets of one namespace
//! (list, then watch from the list's resourceVersion; relist on 410 or a lost
//! version), with kube-runtime's default backoff between failures, feeding
//! [`SourceState`]. An unreachable apiserver never fails start-up: the loop keeps
//! retrying while SQLite credentials are served, and readiness waits for the first full
//! list only up to `s3_proxy.kubernetes.ready_timeout`.

use std::path::PathBuf;
use std::pin::pin;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt as _;
use kube::Api;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::WatchStreamExt as _;
use kube::runtime::watcher::{self, Event};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::Instrument as _;

use super::LABEL_SELECTOR;
use super::metrics::InformerMetrics;
use super::resource::WatchedSecret;
use super::state::{Sinks, SourceState};
use crate::admin::Readiness;
use crate::config::KubernetesConfig;

/// Why the Kubernetes client could not be configured (a configuration problem, not an
/// unreachable apiserver: that is retried forever).
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot load kubeconfig {}: {source}", path.display())]
    Kubeconfig {
        path: PathBuf,
        #[source]
        source: kube::config::KubeconfigError,
    },
    #[error("no kubeconfig is set and no in-cluster configuration was found: {0}")]
    Infer(#[source] kube::config::InferConfigError),
    #[error("cannot build the Kubernetes client: {0}")]
    Client(#[source] kube::Error),
}

/// The client configuration: the kubeconfig file when set, else inferred (in-cluster,
/// then `$KUBECONFIG`).
///
/// # Errors
/// When the kubeconfig cannot be read or nothing can be inferred.
pub async fn client_config(cfg: &KubernetesConfig) -> Result<kube::Config, ClientError> {
    match &cfg.kubeconfig {
        Some(path) => {
            let err = |source| ClientError::Kubeconfig {
                path: path.clone(),
                source,
            };
            let kc = Kubeconfig::read_from(path).map_err(err)?;
            kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
                .await
                .map_err(err)
        }
        None => kube::Config::infer().await.map_err(ClientError::Infer),
    }
}

/// A client for `cfg` (no request is made yet).
///
/// # Errors
/// See [`client_config`].
pub async fn client(cfg: &KubernetesConfig) -> Result<kube::Client, ClientError> {
    kube::Client::try_from(client_config(cfg).await?).map_err(ClientError::Client)
}

/// The running informer.
pub struct InformerHandle {
    /// Turns `true` once the first full list has been applied.
    pub synced: watch::Receiver<bool>,
    pub task: JoinHandle<()>,
}

/// Start watching `namespace`; the task ends when `shutdown` turns `true`.
#[must_use]
pub fn spawn(
    client: kube::Client,
    namespace: &str,
    sinks: Sinks,
    metrics: InformerMetrics,
    shutdown: watch::Receiver<bool>,
) -> InformerHandle {
    let (synced_tx, synced) = watch::channel(false);
    let api: Api<WatchedSecret> = Api::namespaced(client, namespace);
    let stream =
        watcher::watcher(api, watcher::Config::default().labels(LABEL_SELECTOR)).default_backoff();
    let informer = Informer {
        state: SourceState::new(sinks),
        metrics,
        synced: synced_tx,
        failing: false,
        list_started: None,
    };
    let namespace = namespace.to_owned();
    // The caller's span (the apiserver's address, see `app.rs`) tags every line the
    // informer logs.
    let task = tokio::spawn(
        async move {
            tracing::info!(%namespace, selector = LABEL_SELECTOR, "informer started");
            informer.run(stream, shutdown).await;
            tracing::info!(%namespace, "informer stopped");
        }
        .instrument(tracing::Span::current()),
    );
    InformerHandle { synced, task }
}

/// Release `readiness` once the informer has its first full list, or after `timeout`
/// (then SQLite credentials are served alone while the informer keeps retrying).
/// Returns without releasing it if the proxy shuts down first.
pub async fn ready_gate(
    mut synced: watch::Receiver<bool>,
    timeout: Duration,
    readiness: Arc<Readiness>,
    mut shutdown: watch::Receiver<bool>,
) {
    tokio::select! {
        r = tokio::time::timeout(timeout, synced.wait_for(|s| *s)) => match r {
            Ok(Ok(_)) => {}
            // The informer ended: only at shutdown.
            Ok(Err(_)) => return,
            Err(_) => tracing::warn!(
                ?timeout,
                "the Kubernetes informer has not completed a first list; ready with SQLite \
                 credentials only, the informer keeps retrying"
            ),
        },
        _ = shutdown.wait_for(|s| *s) => return,
    }
    readiness.set_ready(true);
}

struct Informer {
    state: SourceState,
    metrics: InformerMetrics,
    synced: watch::Sender<bool>,
    /// Set by an error, cleared (with a log line) by the next successful event.
    failing: bool,
    list_started: Option<Instant>,
}

impl Informer {
    async fn run<S>(mut self, stream: S, mut shutdown: watch::Receiver<bool>)
    where
        S: futures_util::Stream<Item = Result<Event<WatchedSecret>, watcher::Error>>,
    {
        let mut stream = pin!(stream);
        loop {
            tokio::select! {
                biased;
                _ = shutdown.wait_for(|s| *s) => return,
                item = stream.next() => match item {
                    Some(Ok(event)) => self.on_event(event),
                    Some(Err(e)) => self.on_error(&e),
                    None => return,
                },
            }
        }
    }

    fn on_event(&mut self, event: Event<WatchedSecret>) {
        if std::mem::take(&mut self.failing) {
            tracing::info!("informer reconnected");
        }
        match event {
            Event::Init => {
                self.state.begin_relist();
                self.list_started = Some(Instant::now());
            }
            Event::InitApply(s) => {
                self.state.relist_apply(&s);
                self.count("listed");
            }
            Event::InitDone => self.on_list_done(),
            Event::Apply(s) => {
                let change = self.state.apply(&s);
                self.count(change.label());
            }
            Event::Delete(s) => {
                let change = self.state.delete(&s);
                self.count(change.label());
            }
        }
        self.metrics
            .invalid
            .set(i64::try_from(self.state.invalid_count()).unwrap_or(i64::MAX));
        self.metrics.last_event.set(unix_now());
    }

    fn on_list_done(&mut self) {
        let s = self.state.finish_relist();
        let elapsed = self.list_started.take().map(|t| t.elapsed());
        self.metrics.relists.inc();
        self.metrics.synced.set(1);
        tracing::info!(
            secrets = s.secrets,
            credentials = s.credentials,
            bindings = s.bindings,
            invalid = s.invalid,
            removed = s.removed,
            ?elapsed,
            "informer listed the watched Secrets"
        );
        self.synced.send_replace(true);
    }

    fn count(&self, kind: &str) {
        self.metrics.events.with_label_values(&[kind]).inc();
    }

    fn on_error(&mut self, e: &watcher::Error) {
        let (kind, detail) = describe(e);
        self.metrics.errors.with_label_values(&[kind]).inc();
        if kind == "expired" {
            // Routine: the apiserver compacted past our version; the watcher relists.
            tracing::info!("watch resourceVersion expired (410 Gone); relisting");
            return;
        }
        self.failing = true;
        tracing::warn!(kind, error = %detail, "informer disconnected, reconnecting");
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// A bounded kind label and a log-safe description. Decoding errors are summarised:
/// serde's text can quote a piece of the body, and the body holds Secret data.
fn describe(e: &watcher::Error) -> (&'static str, String) {
    match e {
        watcher::Error::InitialListFailed(c) => ("list", describe_client(c)),
        watcher::Error::WatchStartFailed(c) => ("watch_start", describe_client(c)),
        watcher::Error::WatchFailed(c) => ("watch", describe_client(c)),
        watcher::Error::WatchError(s) if s.code == 410 => ("expired", status_text(s)),
        watcher::Error::WatchError(s) => ("status", status_text(s)),
        watcher::Error::NoResourceVersion => (
            "no_resource_version",
            "a watch or list result had no resourceVersion".to_owned(),
        ),
    }
}

fn describe_client(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => status_text(s),
        kube::Error::SerdeError(_) => {
            "the apiserver sent a response that could not be decoded".to_owned()
        }
        other => other.to_string(),
    }
}

fn status_text(s: &kube::core::Status) -> String {
    format!("apiserver status {} {}: {}", s.code, s.reason, s.message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoding_errors_are_described_without_their_text() {
        let serde = serde_json::from_str::<u32>("\"s3cr3t-value\"").unwrap_err();
        assert!(
            serde.to_string().contains("s3cr3t-value"),
            "serde quotes the input"
        );
        let e = watcher::Error::WatchFailed(kube::Error::SerdeError(serde));
        let (kind, text) = describe(&e);
        assert_eq!(kind, "watch");
        assert!(!text.contains("s3cr3t"), "{text}");
    }

    #[test]
    fn an_in_stream_410_is_classified_as_expired() {
        let status =
            kube::core::Status::failure("too old resource version", "Expired").with_code(410);
        let (kind, _) = describe(&watcher::Error::WatchError(Box::new(status)));
        assert_eq!(kind, "expired");
    }
}
