//! The usage scanner: measures a bucket's ground truth through the upstream with the
//! admin key (current objects from ListObjectsV2, plus the parts of in-progress
//! multipart uploads where the upstream lists them) and hands it to the ledger.
//!
//! - One scan per bucket at a time: a request for a bucket whose scan is running joins
//!   it (admission waiting for an unknown usage, the periodic pass and a recount all
//!   share one listing).
//! - A scan runs in its own task, so a caller that goes away (a client abort) never
//!   cancels a listing others wait for.
//! - A failed scan changes nothing: the last known usage stays (a failure never opens
//!   the gate wider), the error is logged and counted.
//! - The ledger's scan epochs reconcile writes that land while the listing runs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use futures_util::FutureExt as _;
use futures_util::future::{BoxFuture, Shared};
use prometheus::IntCounter;
use time::OffsetDateTime;
use tokio::sync::Semaphore;
use tokio::task::AbortHandle;

use super::ledger::{Usage, UsageLedger};
use super::limits::BucketKey;
use crate::upstream::admin_ops::{self, AdminOpError};
use crate::upstream::{UpstreamBackend, UpstreamClient};

/// Listings that may run at once (each is a sequential walk of one bucket).
const MAX_PARALLEL_SCANS: usize = 4;

/// Why a scan produced no usage.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScanError {
    #[error("the bucket's backend is not configured")]
    UnknownBackend,
    #[error("listing the bucket failed: {0}")]
    Upstream(#[from] AdminOpError),
    #[error("the scan was stopped")]
    Stopped,
}

/// A finished scan: the usage the ledger settled on, and when the listing began (it
/// reflects every write made before then).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scanned {
    pub used: Usage,
    pub started: OffsetDateTime,
}

/// Where scan results go beyond the ledger (persistence), and where on-demand recount
/// requests come from. Implemented over the SQLite store; called off the async
/// threads (it may block).
pub trait ScanSink: Send + Sync + 'static {
    /// Persist a bucket's usage after a scan (begun at `scanned_at`) settled it.
    fn save_usage(&self, key: &BucketKey, used: Usage, scanned_at: OffsetDateTime);
    /// Recounts operators asked for (`stowage quota recount`), with when they asked.
    fn pending_recounts(&self) -> Vec<(BucketKey, OffsetDateTime)>;
    /// Recounts requested at or before `scanned_at` are answered with `used`.
    fn recount_done(&self, key: &BucketKey, used: Usage, scanned_at: OffsetDateTime);
}

/// A scan others can wait for.
pub type ScanFuture = Shared<BoxFuture<'static, Result<Scanned, ScanError>>>;

struct Running {
    id: u64,
    started: OffsetDateTime,
    done: ScanFuture,
    abort: AbortHandle,
}

/// Runs and coalesces scans (see the module doc).
pub struct Scanner {
    client: UpstreamClient,
    backends: HashMap<String, UpstreamBackend>,
    ledger: Arc<dyn UsageLedger>,
    sink: Arc<dyn ScanSink>,
    errors: IntCounter,
    permits: Semaphore,
    running: Mutex<HashMap<BucketKey, Running>>,
    next_id: std::sync::atomic::AtomicU64,
    /// Per backend: did its last scan list multipart uploads (see [`Self::lists_uploads`]).
    lists_uploads: Mutex<HashMap<String, bool>>,
}

impl Scanner {
    /// `errors` counts failed scans (`stowage_quota_scan_errors_total`).
    #[must_use]
    pub fn new(
        client: UpstreamClient,
        backends: HashMap<String, UpstreamBackend>,
        ledger: Arc<dyn UsageLedger>,
        sink: Arc<dyn ScanSink>,
        errors: IntCounter,
    ) -> Arc<Self> {
        Arc::new(Self {
            client,
            backends,
            ledger,
            sink,
            errors,
            permits: Semaphore::new(MAX_PARALLEL_SCANS),
            running: Mutex::new(HashMap::new()),
            next_id: std::sync::atomic::AtomicU64::new(0),
            lists_uploads: Mutex::new(HashMap::new()),
        })
    }

    pub(crate) fn sink(&self) -> &Arc<dyn ScanSink> {
        &self.sink
    }

    fn running(&self) -> MutexGuard<'_, HashMap<BucketKey, Running>> {
        // Every critical section below leaves the map consistent.
        self.running.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Start a scan of `key`, or join the one already running.
    pub fn scan(self: &Arc<Self>, key: &BucketKey) -> ScanFuture {
        let mut running = self.running();
        if let Some(r) = running.get(key) {
            return r.done.clone();
        }
        let this = Arc::clone(self);
        let k = key.clone();
        let id = self
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // The task removes its own entry (and only its own); it cannot do so before
        // this insert because the lock is held until the end of this function.
        let task = tokio::spawn(async move {
            let result = this.measure_and_apply(&k).await;
            let mut running = this.running();
            if running.get(&k).is_some_and(|r| r.id == id) {
                running.remove(&k);
            }
            result
        });
        let abort = task.abort_handle();
        let done = async move { task.await.unwrap_or(Err(ScanError::Stopped)) }
            .boxed()
            .shared();
        running.insert(
            key.clone(),
            Running {
                id,
                started: OffsetDateTime::now_utc(),
                done: done.clone(),
                abort,
            },
        );
        done
    }

    /// Start (or join) a scan without waiting for it. Outside a Tokio runtime (a
    /// value dropped during shutdown) there is nothing to run it on: no-op.
    pub fn request(self: &Arc<Self>, key: &BucketKey) {
        if tokio::runtime::Handle::try_current().is_ok() {
            drop(self.scan(key));
        }
    }

    /// Have `key` scanned by a listing that starts from now on: a correction after a
    /// settle must not join a scan already running, which would count the settled
    /// delta on top of a listing that may already include it.
    pub fn request_fresh(self: &Arc<Self>, key: &BucketKey) {
        if tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        let (this, key) = (Arc::clone(self), key.clone());
        let now = OffsetDateTime::now_utc();
        tokio::spawn(async move {
            let _ = this.scan_since(&key, now).await;
        });
    }

    /// Whether scans of `backend` see in-progress multipart parts. Only then does
    /// the ledger hold every part of an upload (otherwise a scan forgets the parts
    /// counted so far), so only then may Complete and Abort subtract the parts.
    /// `false` until a scan has shown it (the safe assumption).
    #[must_use]
    pub fn lists_uploads(&self, backend: &str) -> bool {
        self.lists_uploads
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(backend)
            .copied()
            .unwrap_or(false)
    }

    /// A scan that started at or after `not_before`: joins a running one that is
    /// recent enough, otherwise waits for it and starts another.
    pub async fn scan_since(
        self: &Arc<Self>,
        key: &BucketKey,
        not_before: OffsetDateTime,
    ) -> Result<Scanned, ScanError> {
        let stale = {
            let running = self.running();
            running
                .get(key)
                .filter(|r| r.started < not_before)
                .map(|r| r.done.clone())
        };
        if let Some(old) = stale {
            let _ = old.await;
        }
        self.scan(key).await
    }

    /// Abort every running scan (shutdown). Waiters see [`ScanError::Stopped`].
    pub fn stop(&self) {
        for (_, r) in self.running().drain() {
            r.abort.abort();
        }
    }

    async fn measure_and_apply(&self, key: &BucketKey) -> Result<Scanned, ScanError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| ScanError::Stopped)?;
        let result = self.measure_and_apply_now(key).await;
        match &result {
            Ok(s) => {
                tracing::debug!(backend = %key.backend, bucket = %key.bucket, bytes = s.used.bytes, objects = s.used.objects, "bucket usage scanned");
            }
            Err(e) => {
                self.errors.inc();
                tracing::warn!(backend = %key.backend, bucket = %key.bucket, error = %e, "bucket usage scan failed; keeping the last known usage");
            }
        }
        result
    }

    async fn measure_and_apply_now(&self, key: &BucketKey) -> Result<Scanned, ScanError> {
        let backend = self
            .backends
            .get(&key.backend)
            .ok_or(ScanError::UnknownBackend)?;
        let started = OffsetDateTime::now_utc();
        let epoch = self.ledger.begin_scan(key);
        // On failure the epoch is simply never finished: the ledger keeps `used`.
        let (scanned, listed) = measure(&self.client, backend, &key.bucket).await?;
        self.lists_uploads
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key.backend.clone(), listed);
        self.ledger.finish_scan(key, epoch, scanned, started);
        let used = self.ledger.view(key).map_or(scanned, |v| v.used);
        self.persist(key, used, started).await;
        Ok(Scanned { used, started })
    }

    async fn persist(&self, key: &BucketKey, used: Usage, at: OffsetDateTime) {
        let sink = Arc::clone(&self.sink);
        let k = key.clone();
        let saved = tokio::task::spawn_blocking(move || sink.save_usage(&k, used, at)).await;
        if saved.is_err() {
            tracing::warn!(bucket = %key.bucket, "persisting scanned usage failed");
        }
    }
}

/// Current objects (bytes and count) plus in-progress multipart bytes, and whether
/// the upstream listed multipart uploads at all.
///
/// Uploads are listed before objects: an upload completed between the two listings is
/// then seen twice (its parts, then its object), which counts high until the next
/// scan. Listed the other way round it was seen in neither, and the bucket counted a
/// whole object low (the soak's 5 MB undercount; `tests/e2e_garage_ledger.rs`).
async fn measure(
    client: &UpstreamClient,
    backend: &UpstreamBackend,
    bucket: &str,
) -> Result<(Usage, bool), ScanError> {
    let parts = admin_ops::listed_multipart_bytes(client, backend, bucket).await?;
    let objects = admin_ops::bucket_usage(client, backend, bucket).await?;
    let usage = Usage {
        bytes: objects.bytes.saturating_add(parts.unwrap_or(0)),
        objects: objects.objects,
    };
    Ok((usage, parts.is_some()))
}

/// The counter of failed scans, `stowage_quota_scan_errors_total` (registered by the
/// caller on the proxy's registry).
///
/// # Panics
/// Only if the static metric definition is invalid (caught by the tests).
#[must_use]
pub fn scan_errors_counter() -> IntCounter {
    IntCounter::new(
        "stowage_quota_scan_errors_total",
        "Bucket usage scans that failed (the last known usage was kept)",
    )
    .expect("valid metric")
}

#[cfg(test)]
#[path = "scanner_tests.rs"]
mod tests;
