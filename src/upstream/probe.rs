//! Backend reachability, probed in the background so that start-up never waits on an
//! upstream: a TCP connect to each backend's endpoint, every `upstream.probe_interval`
//! (default [`PROBE_EVERY`]) while it answers and with exponential backoff (1 s, or the
//! interval when shorter, … [`MAX_BACKOFF`]) while it does not.
//! Transitions are logged once each; `/readyz` shows the current state and the gauge
//! `stowage_upstream_reachable{backend}` exports it. Reachability never changes the
//! readiness verdict: every replica shares the backends, so turning unready would only
//! take the whole service down with them.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

use prometheus::{IntGaugeVec, Opts, Registry};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::UpstreamBackend;

pub const PROBE_EVERY: Duration = Duration::from_secs(10);
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);
const FIRST_BACKOFF: Duration = Duration::from_secs(1);

/// What the last probe of one backend found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reachability {
    /// Not probed yet.
    Unknown,
    Reachable,
    Unreachable,
}

impl Reachability {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unknown => "not probed yet",
            Self::Reachable => "reachable",
            Self::Unreachable => "unreachable",
        }
    }
}

/// The reachability of every backend, by id.
#[derive(Debug)]
pub struct UpstreamHealth {
    state: Mutex<BTreeMap<String, Reachability>>,
    gauge: IntGaugeVec,
}

impl UpstreamHealth {
    /// # Errors
    /// When the gauge is already registered.
    pub fn register<'a>(
        ids: impl IntoIterator<Item = &'a str>,
        registry: &Registry,
    ) -> prometheus::Result<Self> {
        let gauge = IntGaugeVec::new(
            Opts::new(
                "stowage_upstream_reachable",
                "1 when the backend's endpoint accepted a TCP connection at the last probe",
            ),
            &["backend"],
        )?;
        registry.register(Box::new(gauge.clone()))?;
        let state = ids
            .into_iter()
            .map(|id| (id.to_owned(), Reachability::Unknown))
            .collect();
        Ok(Self {
            state: Mutex::new(state),
            gauge,
        })
    }

    #[must_use]
    pub fn get(&self, id: &str) -> Reachability {
        self.lock()
            .get(id)
            .copied()
            .unwrap_or(Reachability::Unknown)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Reachability>> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Record a probe result; returns the previous state.
    fn set(&self, id: &str, now: Reachability) -> Reachability {
        self.gauge
            .with_label_values(&[id])
            .set(i64::from(now == Reachability::Reachable));
        self.lock()
            .insert(id.to_owned(), now)
            .unwrap_or(Reachability::Unknown)
    }

    /// One line per backend, `backend <id>: <state>`, for the `/readyz` body.
    #[must_use]
    pub fn describe(&self) -> String {
        let mut out = String::new();
        for (id, r) in self.lock().iter() {
            let _ = writeln!(out, "backend {id}: {}", r.as_str());
        }
        out
    }
}

/// Where to probe one backend (no credentials: the probe never signs anything).
#[derive(Debug, Clone)]
pub struct ProbeTarget {
    pub id: String,
    pub scheme: http::uri::Scheme,
    pub authority: http::uri::Authority,
}

impl From<&UpstreamBackend> for ProbeTarget {
    fn from(b: &UpstreamBackend) -> Self {
        Self {
            id: b.id.clone(),
            scheme: b.scheme.clone(),
            authority: b.authority.clone(),
        }
    }
}

/// Probe every backend until `shutdown` flips.
pub fn spawn_probes(
    backends: Vec<ProbeTarget>,
    health: std::sync::Arc<UpstreamHealth>,
    connect_timeout: Duration,
    every: Duration,
    shutdown: watch::Receiver<bool>,
) -> Vec<JoinHandle<()>> {
    let first_backoff = FIRST_BACKOFF.min(every);
    backends
        .into_iter()
        .map(|b| {
            let health = std::sync::Arc::clone(&health);
            let mut stop = shutdown.clone();
            tokio::spawn(async move {
                let mut backoff = first_backoff;
                loop {
                    let ok = probe(&b, connect_timeout).await;
                    let next = if ok {
                        backoff = first_backoff;
                        every
                    } else {
                        let wait = backoff;
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                        wait
                    };
                    report(&health, &b.id, ok, next);
                    tokio::select! {
                        () = tokio::time::sleep(next) => {}
                        _ = stop.changed() => return,
                    }
                }
            })
        })
        .collect()
}

fn report(health: &UpstreamHealth, id: &str, ok: bool, next: Duration) {
    let now = if ok {
        Reachability::Reachable
    } else {
        Reachability::Unreachable
    };
    match (health.set(id, now), now) {
        (Reachability::Reachable, Reachability::Reachable)
        | (Reachability::Unreachable, Reachability::Unreachable) => {}
        (_, Reachability::Reachable) => tracing::info!(backend = id, "backend is reachable"),
        (_, _) => tracing::warn!(
            backend = id,
            retry_in = ?next,
            "backend is unreachable; requests to it fail with 503 until it answers"
        ),
    }
}

/// Whether the backend's endpoint accepts a TCP connection within `timeout`.
async fn probe(b: &ProbeTarget, timeout: Duration) -> bool {
    let default_port = if b.scheme == http::uri::Scheme::HTTPS {
        443
    } else {
        80
    };
    let port = b.authority.port_u16().unwrap_or(default_port);
    let host = b
        .authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    matches!(
        tokio::time::timeout(timeout, tokio::net::TcpStream::connect((host, port))).await,
        Ok(Ok(_))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transitions_update_the_gauge_and_the_readyz_lines() {
        let registry = Registry::new();
        let h = UpstreamHealth::register(["a", "b"], &registry).unwrap();
        assert_eq!(
            h.describe(),
            "backend a: not probed yet\nbackend b: not probed yet\n"
        );
        report(&h, "a", false, MAX_BACKOFF);
        report(&h, "b", true, PROBE_EVERY);
        assert_eq!(h.get("a"), Reachability::Unreachable);
        assert_eq!(
            h.describe(),
            "backend a: unreachable\nbackend b: reachable\n"
        );
        assert_eq!(h.gauge.with_label_values(&["a"]).get(), 0);
        assert_eq!(h.gauge.with_label_values(&["b"]).get(), 1);
    }
}
