//! Keeping the SQLite file and a running proxy in step:
//!
//! - at start, the `bucket_quotas` rows fill the limit cache and the persisted usage is
//!   restored into the ledger (so a restart resumes from the last known usage instead
//!   of zero, or of "unknown", which refuses capped writes until the first scan);
//! - the limit poller makes `stowage quota set|clear` (another process) visible within
//!   one poll interval;
//! - the usage flusher writes changed ledger usage every few seconds, and
//!   [`flush_all`] once more at shutdown.
//!
//! A store that cannot be read keeps the limits last loaded: dropping them would open
//! the gate on every capped bucket (fail closed).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use super::ledger::{Usage, UsageLedger};
use super::limits::{BucketKey, LimitCache, Limits};
use super::store::QuotaStoreError;
use crate::credentials::sqlite::SqliteStore;

/// How often changed usage is written to SQLite: a crash loses at most this much
/// accounting (the next scan corrects it anyway).
pub const USAGE_FLUSH_INTERVAL: Duration = Duration::from_secs(5);

type Rows = Vec<(BucketKey, Limits)>;

fn limit_rows(store: &SqliteStore) -> Result<Rows, QuotaStoreError> {
    Ok(store
        .list_limits()?
        .into_iter()
        .map(|r| (r.key, r.limits))
        .collect())
}

/// Replace the SQLite part of `cache` with the stored rows; returns how many.
///
/// # Errors
/// A database error (the cache is left as it was).
pub fn load_limits_into(store: &SqliteStore, cache: &LimitCache) -> Result<usize, QuotaStoreError> {
    let rows = limit_rows(store)?;
    let n = rows.len();
    cache.replace_sqlite(rows);
    Ok(n)
}

/// Restore every persisted, scanned usage row into `ledger`; returns how many. Rows
/// that only carry a recount request hold no usage and are skipped.
///
/// # Errors
/// A database error.
pub fn restore_usage(
    store: &SqliteStore,
    ledger: &dyn UsageLedger,
) -> Result<usize, QuotaStoreError> {
    let mut n = 0;
    for row in store.load_usage()? {
        if let Some(at) = row.scanned_at {
            ledger.restore(&row.key, row.usage, Some(at));
            n += 1;
        }
    }
    Ok(n)
}

/// What the flusher last wrote per bucket.
pub type Flushed = HashMap<BucketKey, (Usage, OffsetDateTime)>;

/// The ledger's known usage that differs from `last` (everything when `last` is empty).
fn changed_usage(
    ledger: &dyn UsageLedger,
    last: &Flushed,
) -> Vec<(BucketKey, Usage, OffsetDateTime)> {
    ledger
        .keys()
        .into_iter()
        .filter_map(|key| {
            let view = ledger.view(&key)?;
            // Unknown usage is a partial sum of deltas: persisting it would later be
            // restored as if it were measured.
            let at = view.scanned_at.filter(|_| view.known)?;
            (last.get(&key) != Some(&(view.used, at))).then_some((key, view.used, at))
        })
        .collect()
}

/// Write the ledger's changed usage; `last` remembers what was written.
///
/// # Errors
/// A database error (`last` is unchanged, so the next flush retries).
pub fn flush_changed(
    store: &SqliteStore,
    ledger: &dyn UsageLedger,
    last: &mut Flushed,
) -> Result<usize, QuotaStoreError> {
    let batch = changed_usage(ledger, last);
    if batch.is_empty() {
        return Ok(0);
    }
    store.save_usage(&batch)?;
    let n = batch.len();
    last.extend(batch.into_iter().map(|(k, u, at)| (k, (u, at))));
    Ok(n)
}

/// Write all of the ledger's known usage (shutdown).
///
/// # Errors
/// A database error.
pub fn flush_all(store: &SqliteStore, ledger: &dyn UsageLedger) -> Result<usize, QuotaStoreError> {
    flush_changed(store, ledger, &mut Flushed::new())
}

/// Run a store call off the async threads.
async fn blocking<T: Send + 'static>(
    store: &Arc<SqliteStore>,
    f: impl FnOnce(&SqliteStore) -> Result<T, QuotaStoreError> + Send + 'static,
) -> Option<Result<T, QuotaStoreError>> {
    let store = Arc::clone(store);
    tokio::task::spawn_blocking(move || f(&store)).await.ok()
}

fn ticker(interval: Duration) -> tokio::time::Interval {
    let mut t = tokio::time::interval(interval.max(Duration::from_millis(10)));
    t.set_missed_tick_behavior(MissedTickBehavior::Delay);
    t
}

/// Follow `bucket_quotas` into `cache`. Each tick costs one `PRAGMA data_version`; the
/// table is re-read only when some connection committed, and the cache replaced only
/// when the rows differ (usage flushes commit too, and must not churn the limits).
pub fn spawn_limit_poller(
    store: Arc<SqliteStore>,
    cache: Arc<LimitCache>,
    interval: Duration,
    mut shutdown: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut poller = LimitPoller {
            store,
            cache,
            version: None,
            rows: None,
        };
        let mut tick = ticker(interval);
        loop {
            tokio::select! {
                _ = tick.tick() => poller.poll().await,
                _ = shutdown.changed() => break,
            }
        }
    })
}

struct LimitPoller {
    store: Arc<SqliteStore>,
    cache: Arc<LimitCache>,
    version: Option<i64>,
    rows: Option<Rows>,
}

impl LimitPoller {
    async fn poll(&mut self) {
        match self.step().await {
            Some(Ok(())) => {}
            Some(Err(e)) => {
                tracing::warn!(error = %e, "cannot reload quota limits; keeping the last loaded ones");
            }
            None => tracing::warn!("quota limit reload task failed"),
        }
    }

    async fn step(&mut self) -> Option<Result<(), QuotaStoreError>> {
        let version = match blocking(&self.store, SqliteStore::data_version).await? {
            Ok(v) => v,
            Err(e) => return Some(Err(e)),
        };
        if self.version == Some(version) {
            return Some(Ok(()));
        }
        let rows = match blocking(&self.store, limit_rows).await? {
            Ok(rows) => rows,
            Err(e) => return Some(Err(e)),
        };
        if self.rows.as_ref() != Some(&rows) {
            tracing::info!(buckets = rows.len(), "quota limits reloaded from SQLite");
            self.cache.replace_sqlite(rows.clone());
            self.rows = Some(rows);
        }
        self.version = Some(version);
        Some(Ok(()))
    }
}

/// Write changed ledger usage every `interval` until shutdown. The final flush is the
/// caller's (after in-flight requests have settled): see [`flush_all`].
pub fn spawn_usage_flusher(
    store: Arc<SqliteStore>,
    ledger: Arc<dyn UsageLedger>,
    interval: Duration,
    mut shutdown: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut last = Some(Flushed::new());
        let mut tick = ticker(interval);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.changed() => break,
            }
            let mut mine = last.take().unwrap_or_default();
            let l = Arc::clone(&ledger);
            let s = Arc::clone(&store);
            let done = tokio::task::spawn_blocking(move || {
                let r = flush_changed(&s, &*l, &mut mine);
                (r, mine)
            })
            .await;
            match done {
                Ok((r, mine)) => {
                    if let Err(e) = r {
                        tracing::warn!(error = %e, "cannot persist quota usage; retrying");
                    }
                    last = Some(mine);
                }
                Err(_) => tracing::warn!("quota usage flush task failed"),
            }
        }
    })
}

#[cfg(test)]
#[path = "persist_tests.rs"]
mod tests;
