//! Graceful shutdown, in phases, each logged:
//!
//! 1. `/readyz` answers 503 at once (the latch never reopens);
//! 2. for `server.drain_delay` both listeners keep accepting, so load balancers see
//!    the 503 and move traffic before anything is refused;
//! 3. the listeners stop accepting (new connections are refused) and in-flight
//!    exchanges get `server.shutdown_timeout` to finish; idle keep-alive connections
//!    are closed;
//! 4. the audit queue is written out, quota usage persisted, and the SQLite WAL
//!    checkpointed before the store's connections close.

use std::sync::Arc;

use super::Running;
use crate::quota::persist;

impl Running {
    /// Run every phase of the shutdown (see the module doc) and return when done.
    pub async fn shutdown(self) {
        self.readiness.close();
        tracing::info!(
            drain_delay = ?self.drain_delay,
            "shutdown: /readyz is unready; still accepting connections during the drain delay"
        );
        tokio::time::sleep(self.drain_delay).await;
        let _ = self.shutdown.send(true);
        tracing::info!(
            in_flight = self.metrics.inflight.get(),
            timeout = ?self.shutdown_timeout,
            "shutdown: listeners closed; waiting for in-flight requests"
        );
        for t in self.tasks {
            let _ = t.await;
        }
        for t in self.kubernetes_tasks {
            let _ = t.await;
        }
        tracing::info!(
            still_in_flight = self.metrics.inflight.get(),
            "shutdown: connections drained"
        );
        // After the listeners drained, so every finished exchange has queued its row
        // and every in-flight write has settled its quota.
        if let Some(audit) = &self.audit {
            audit.shutdown().await;
        }
        let (store, ledger) = (Arc::clone(&self.store), self.ledger);
        match tokio::task::spawn_blocking(move || persist::flush_all(&store, ledger.as_ref())).await
        {
            Ok(Ok(n)) => tracing::debug!(buckets = n, "quota usage persisted"),
            Ok(Err(e)) => tracing::warn!(error = %e, "cannot persist quota usage at shutdown"),
            Err(_) => tracing::warn!("quota usage flush at shutdown failed"),
        }
        let store = self.store;
        match tokio::task::spawn_blocking(move || store.checkpoint()).await {
            Ok(Ok(())) => tracing::info!("shutdown complete: database checkpointed"),
            Ok(Err(e)) => tracing::warn!(error = %e, "shutdown: cannot checkpoint the database"),
            Err(_) => tracing::warn!("shutdown: the database checkpoint failed"),
        }
    }
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
