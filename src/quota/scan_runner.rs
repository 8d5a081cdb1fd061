//! When scans happen: every bucket with an effective limit at boot and then every
//! `quotas.scan_interval`; a bucket as soon as its limit appears (the limit cache's
//! generation moves); and the recounts operators request through the store
//! (`stowage quota recount`), polled every second.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::ledger::Usage;
use super::limits::{BucketKey, LimitCache};
use super::scanner::{ScanSink, Scanner};
use crate::credentials::sqlite::SqliteStore;

/// How often limit changes and recount requests are looked at.
const POLL: Duration = Duration::from_secs(1);
/// A recount whose scan failed is retried after this long, not on every poll.
const RECOUNT_RETRY: Duration = Duration::from_secs(30);

/// The runner's memory between polls.
struct RunnerState {
    scanner: Arc<Scanner>,
    limits: Arc<LimitCache>,
    interval: Duration,
    generation: Option<u64>,
    known: HashSet<BucketKey>,
    next_full: Instant,
    /// Recounts being answered now, or failed and waiting to be retried.
    recounts: Arc<Mutex<HashMap<BucketKey, Option<Instant>>>>,
}

/// Spawn the runner; it stops (and aborts running scans) when `shutdown` turns true.
pub fn spawn_scan_runner(
    scanner: Arc<Scanner>,
    limits: Arc<LimitCache>,
    interval: Duration,
    mut shutdown: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut state = RunnerState {
            scanner,
            limits,
            interval,
            generation: None,
            known: HashSet::new(),
            next_full: Instant::now(),
            recounts: Arc::default(),
        };
        loop {
            state.poll().await;
            tokio::select! {
                _ = tokio::time::sleep(POLL) => {}
                _ = shutdown.changed() => break,
            }
        }
        state.scanner.stop();
    })
}

impl RunnerState {
    async fn poll(&mut self) {
        let now = Instant::now();
        if now >= self.next_full {
            // Boot and every interval: every bucket with a limit.
            self.next_full = now + self.interval;
            self.generation = Some(self.limits.generation());
            self.known = self.configured();
            for key in &self.known {
                self.scanner.request(key);
            }
        } else if self.generation != Some(self.limits.generation()) {
            self.generation = Some(self.limits.generation());
            let configured = self.configured();
            for key in configured.difference(&self.known) {
                self.scanner.request(key);
            }
            self.known = configured;
        }
        self.start_recounts().await;
    }

    fn configured(&self) -> HashSet<BucketKey> {
        self.limits
            .configured()
            .into_iter()
            .map(|(key, _, _)| key)
            .collect()
    }

    /// Start a task for each pending recount that is not running or backing off.
    async fn start_recounts(&mut self) {
        let sink = Arc::clone(self.scanner.sink());
        let Ok(pending) = tokio::task::spawn_blocking(move || sink.pending_recounts()).await else {
            return;
        };
        let now = Instant::now();
        for (key, requested_at) in pending {
            {
                let mut recounts = self.recounts.lock().unwrap_or_else(PoisonError::into_inner);
                match recounts.get(&key) {
                    Some(None) => continue,
                    Some(Some(retry_at)) if *retry_at > now => continue,
                    _ => {}
                }
                recounts.insert(key.clone(), None);
            }
            tokio::spawn(recount(
                Arc::clone(&self.scanner),
                Arc::clone(&self.recounts),
                key,
                requested_at,
            ));
        }
    }
}

/// Answer one recount request with a scan that started after it was made.
async fn recount(
    scanner: Arc<Scanner>,
    recounts: Arc<Mutex<HashMap<BucketKey, Option<Instant>>>>,
    key: BucketKey,
    requested_at: OffsetDateTime,
) {
    let result = scanner.scan_since(&key, requested_at).await;
    let done = match result {
        Ok(scanned) => {
            let sink = Arc::clone(scanner.sink());
            let k = key.clone();
            tokio::task::spawn_blocking(move || {
                sink.recount_done(&k, scanned.used, scanned.started);
            })
            .await
            .is_ok()
        }
        Err(_) => false,
    };
    let mut recounts = recounts.lock().unwrap_or_else(PoisonError::into_inner);
    if done {
        recounts.remove(&key);
    } else {
        recounts.insert(key, Some(Instant::now() + RECOUNT_RETRY));
    }
}

/// The SQLite store as the scanner's sink. A write that fails is logged: the ledger
/// already holds the scanned usage, and the flusher or the next scan writes it again.
impl ScanSink for SqliteStore {
    fn save_usage(&self, key: &BucketKey, used: Usage, scanned_at: OffsetDateTime) {
        if let Err(e) = SqliteStore::save_usage(self, &[(key.clone(), used, scanned_at)]) {
            tracing::warn!(bucket = %key.bucket, error = %e, "cannot persist scanned usage");
        }
    }

    fn pending_recounts(&self) -> Vec<(BucketKey, OffsetDateTime)> {
        SqliteStore::pending_recounts(self).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cannot read quota recount requests");
            Vec::new()
        })
    }

    fn recount_done(&self, key: &BucketKey, used: Usage, scanned_at: OffsetDateTime) {
        if let Err(e) = self.record_recount_done(key, used, scanned_at) {
            tracing::warn!(bucket = %key.bucket, error = %e, "cannot record a finished recount");
        }
    }
}
