//! A fake Kubernetes API server for Secrets in one namespace, speaking the real
//! list/watch protocol over plain HTTP on `127.0.0.1:0` so the real `kube` client
//! (and kube-runtime's watcher) can be driven against it: paginated LISTs with
//! `limit`/`continue`, chunked newline-delimited WATCH events with resourceVersions,
//! BOOKMARKs, selector transitions as ADDED/DELETED, the in-stream 410 that forces a
//! relist, abruptly dropped streams, and an unreachable server.

pub mod selector;
pub mod serve;
pub mod state;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use self::serve::{Shared, handle, lock};
use self::state::State;

/// The label the informer selects on.
pub const ROLE_LABEL: &str = "broker.stowage.io/role";

/// A running fake; dropping it stops the server and every connection.
pub struct FakeApiServer {
    addr: SocketAddr,
    namespace: String,
    shared: Shared,
    /// Bumped to make every live connection drop (set_down, drop).
    kill: watch::Sender<u64>,
    accept: JoinHandle<()>,
}

impl FakeApiServer {
    /// Starts serving Secrets of `namespace` on a fresh local port.
    pub async fn start(namespace: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind fake apiserver");
        let addr = listener.local_addr().expect("local addr");
        let state = State {
            namespace: namespace.to_string(),
            ..State::default()
        };
        let shared: Shared = Arc::new(Mutex::new(state));
        let (kill, _) = watch::channel(0u64);
        let accept = tokio::spawn(accept_loop(listener, shared.clone(), kill.clone()));
        FakeApiServer {
            addr,
            namespace: namespace.to_string(),
            shared,
            kill,
            accept,
        }
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Writes `dir/kubeconfig` (no auth, current context and namespace set).
    pub fn write_kubeconfig(&self, dir: &Path) -> PathBuf {
        let path = dir.join("kubeconfig");
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {url}\n\
             contexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\n    namespace: {ns}\n\
             current-context: fake\nusers:\n- name: fake\n  user: {{}}\n",
            url = self.url(),
            ns = self.namespace,
        );
        std::fs::write(&path, text).expect("write kubeconfig");
        path
    }

    /// Creates or replaces a Secret (ADDED if new, else MODIFIED) at the next
    /// resourceVersion; fills in namespace and uid (kept across updates).
    pub fn upsert(&self, secret: Secret) {
        lock(&self.shared).upsert(secret);
    }

    /// Deletes a Secret (DELETED with its last state); false if it did not exist.
    pub fn delete(&self, name: &str) -> bool {
        lock(&self.shared).delete(name)
    }

    /// Sends a BOOKMARK at the current version to every open watch that allows them.
    pub fn bookmark(&self) {
        lock(&self.shared).bookmark_all();
    }

    /// Abruptly breaks every open watch stream (no bookmark, no clean end).
    pub fn drop_watches(&self) {
        lock(&self.shared).abort_all();
    }

    /// Sends the in-stream 410 Expired to every open watch and ends it; versions
    /// before now become too old for new watches as well.
    pub fn expire_watches(&self) {
        lock(&self.shared).expire_all();
    }

    /// While down, connections are accepted and dropped at once and open watches end.
    pub fn set_down(&self, down: bool) {
        let mut st = lock(&self.shared);
        st.down = down;
        if down {
            st.abort_all();
            self.kill.send_modify(|g| *g += 1);
        }
    }

    /// LIST requests served (each page counts).
    pub fn list_count(&self) -> usize {
        lock(&self.shared).list_count
    }

    /// WATCH requests served.
    pub fn watch_count(&self) -> usize {
        lock(&self.shared).watch_count
    }

    /// Every request URI served (path and query), in order.
    pub fn requests(&self) -> Vec<String> {
        lock(&self.shared).requests.clone()
    }

    /// Secrets stored.
    pub fn len(&self) -> usize {
        lock(&self.shared).secrets.len()
    }

    /// Whether no Secret is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The current resourceVersion (the last change's).
    pub fn resource_version(&self) -> u64 {
        lock(&self.shared).rv
    }
}

impl Drop for FakeApiServer {
    fn drop(&mut self) {
        self.accept.abort();
        lock(&self.shared).abort_all();
        self.kill.send_modify(|g| *g += 1);
    }
}

async fn accept_loop(listener: TcpListener, shared: Shared, kill: watch::Sender<u64>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // Out of file descriptors and the like: don't spin.
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            continue;
        };
        // A real apiserver (Go's net/http) sets TCP_NODELAY; without it small watch
        // events wait on Nagle and delayed ACKs (~40 ms).
        let _ = stream.set_nodelay(true);
        if lock(&shared).down {
            drop(stream);
            continue;
        }
        let shared = shared.clone();
        let mut killed = kill.subscribe();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let reply = handle(&shared, req);
                async move { reply }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .serve_connection(TokioIo::new(stream), svc);
            tokio::select! {
                _ = conn => {}
                _ = killed.changed() => {}
            }
        });
    }
}

/// A Secret labelled `broker.stowage.io/role=role` plus `labels`, with `data`.
pub fn secret(name: &str, role: &str, labels: &[(&str, &str)], data: &[(&str, &str)]) -> Secret {
    let mut l: BTreeMap<String, String> = BTreeMap::new();
    l.insert(ROLE_LABEL.to_string(), role.to_string());
    l.extend(labels.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let data = data
        .iter()
        .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
        .collect();
    Secret {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            labels: Some(l),
            ..ObjectMeta::default()
        },
        data: Some(data),
        type_: Some("Opaque".to_string()),
        ..Secret::default()
    }
}
