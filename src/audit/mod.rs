//! The audit log: one SQLite row per write, denial and error on the S3 listener, plus a
//! configurable sample of successful reads.
//!
//! ```text
//! request ends ──record()──▶ bounded queue ──▶ writer task ──batch, one tx──▶ audit_events
//!               (try_send; full → dropped_total)   (≤ batch_size rows or every flush_interval)
//! ```
//!
//! The request path never waits: [`AuditLog::record`] is a `try_send`, and a full (or
//! closed) queue only increments `stowage_audit_dropped_total`. The writer owns its own
//! connection and does its SQLite work on the blocking pool; a failed batch is counted
//! (`stowage_audit_write_errors_total`), logged at most once a minute, and retried with
//! the next one. Rows older than `audit.retention` are pruned every hour.
//!
//! A full database (`SQLITE_FULL`: the disk, or the `audit.max_db_bytes` cap) is not
//! retried: the batch is dropped and counted in `stowage_audit_dropped_total`, and
//! retention pruning runs at once, so rows past retention make room for new ones.
//!
//! Rows name what happened, never how it was signed: no secret, signature,
//! Authorization header or query string is ever part of an [`AuditEvent`].

mod admin_query;
mod export;
mod store;
mod types;
mod writer;

#[cfg(test)]
mod tests;

use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use prometheus::{IntCounter, Registry};
use rusqlite::Connection;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

pub use export::{ExportFormat, csv_field, export, parse_time_arg};
pub use store::{AuditError, open_reader};
pub use types::{
    AuditEvent, AuditFilter, AuditRecord, AuditSource, DEFAULT_QUERY_LIMIT, MAX_QUERY_LIMIT,
    Outcome, format_ms, unix_ms,
};

use anyhow::Context as _;

use crate::config::{AuditConfig, Config};
use crate::policy::operation::{AccessClass, S3Operation};

/// How the writer batches and prunes (the config gives capacity, sampling, retention;
/// the rest are fixed in production and shortened by tests).
#[derive(Debug, Clone)]
pub struct AuditOptions {
    pub queue_capacity: usize,
    pub sample_success_reads: f64,
    pub retention: Duration,
    /// A batch is written when it holds this many rows…
    pub batch_size: usize,
    /// …or when the oldest queued row has waited this long.
    pub flush_interval: Duration,
    pub prune_interval: Duration,
    /// `audit.max_db_bytes`: the audit writer never grows the database file past this
    /// (`PRAGMA max_page_count` on its connection); 0 = no cap.
    pub max_db_bytes: u64,
}

/// Rows per transaction: large enough to amortise the commit, small enough to keep
/// the write lock short.
pub const BATCH_SIZE: usize = 512;
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(250);
pub const PRUNE_INTERVAL: Duration = Duration::from_secs(3600);

impl AuditOptions {
    #[must_use]
    pub fn from_config(c: &AuditConfig) -> Self {
        Self {
            queue_capacity: c.queue_capacity,
            sample_success_reads: c.sample_success_reads.get(),
            retention: c.retention,
            batch_size: BATCH_SIZE,
            flush_interval: FLUSH_INTERVAL,
            prune_interval: PRUNE_INTERVAL,
            max_db_bytes: c.max_db_bytes,
        }
    }
}

/// `stowage_audit_*` counters.
#[derive(Clone)]
pub struct AuditMetrics {
    pub dropped: IntCounter,
    pub write_errors: IntCounter,
    pub written: IntCounter,
}

impl AuditMetrics {
    /// # Errors
    /// When a metric of the same name is already registered.
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let m = Self::unregistered();
        registry.register(Box::new(m.dropped.clone()))?;
        registry.register(Box::new(m.write_errors.clone()))?;
        registry.register(Box::new(m.written.clone()))?;
        Ok(m)
    }

    /// The counters without a registry (tests).
    ///
    /// # Panics
    /// Never: the definitions are static and valid.
    #[must_use]
    pub fn unregistered() -> Self {
        let c = |name: &str, help: &str| IntCounter::new(name, help).expect("valid metric");
        Self {
            dropped: c(
                "stowage_audit_dropped_total",
                "Audit events dropped because the queue was full or closed",
            ),
            write_errors: c(
                "stowage_audit_write_errors_total",
                "Audit batches that could not be written to SQLite",
            ),
            written: c(
                "stowage_audit_written_total",
                "Audit events written to SQLite",
            ),
        }
    }
}

/// The handle the proxy holds: the queue's sending side, the sampling rule, a read
/// connection for [`AuditLog::query`], and the writer task to stop at shutdown.
pub struct AuditLog {
    tx: mpsc::Sender<AuditEvent>,
    sample_success_reads: f64,
    metrics: AuditMetrics,
    reader: Mutex<Connection>,
    stop: watch::Sender<bool>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog").finish_non_exhaustive()
    }
}

impl AuditLog {
    /// Open two connections on the (already migrated) database at `path` and start the
    /// writer task. Must run inside a Tokio runtime.
    ///
    /// # Errors
    /// When the database cannot be opened or has no audit table.
    pub fn start(
        path: &Path,
        options: AuditOptions,
        metrics: AuditMetrics,
    ) -> Result<Self, AuditError> {
        let conn = store::open_writer(path)?;
        if options.max_db_bytes > 0 {
            store::cap_size(&conn, options.max_db_bytes)?;
        }
        let reader = store::open_reader(path)?;
        let (tx, rx) = mpsc::channel(options.queue_capacity.max(1));
        let (stop, stop_rx) = watch::channel(false);
        let sample = options.sample_success_reads;
        let task = tokio::spawn(writer::run(conn, rx, options, metrics.clone(), stop_rx));
        Ok(Self {
            tx,
            sample_success_reads: sample,
            metrics,
            reader: Mutex::new(reader),
            stop,
            writer: Mutex::new(Some(task)),
        })
    }

    /// The audit log as `[audit]` configures it (`None` when disabled), on the
    /// database the credential store has already migrated, its counters registered.
    ///
    /// # Errors
    /// When the counters cannot be registered or the database cannot be opened.
    pub fn from_config(config: &Config, registry: &Registry) -> anyhow::Result<Option<Self>> {
        if !config.audit.enabled {
            return Ok(None);
        }
        let metrics = AuditMetrics::register(registry)
            .context("metrics: cannot register the audit counters")?;
        let options = AuditOptions::from_config(&config.audit);
        let log = Self::start(&config.database.path, options, metrics)
            .context("audit: cannot open the audit log")?;
        Ok(Some(log))
    }

    /// Whether an exchange that ended with `outcome` should be recorded: always, except
    /// successful reads, which are sampled at `audit.sample_success_reads`.
    #[must_use]
    pub fn wants(&self, operation: S3Operation, outcome: Outcome) -> bool {
        wanted(
            operation,
            outcome,
            self.sample_success_reads,
            rand::random::<f64>(),
        )
    }

    /// Queue an event without waiting; a full or closed queue drops it and counts it.
    pub fn record(&self, event: AuditEvent) {
        if self.tx.try_send(event).is_err() {
            self.metrics.dropped.inc();
        }
    }

    /// Rows matching `filter`, newest first. Blocking (SQLite): call it from
    /// `spawn_blocking` on an async path.
    ///
    /// # Errors
    /// On an invalid filter (the field is named) or a database error.
    pub fn query(&self, filter: &AuditFilter) -> Result<Vec<AuditRecord>, AuditError> {
        let conn = self
            .reader
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        store::query(&conn, filter)
    }

    /// Stop taking events, write everything already queued, and close the writer's
    /// connection. Later [`AuditLog::record`] calls count as dropped.
    pub async fn shutdown(&self) {
        let _ = self.stop.send(true);
        let task = self
            .writer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(task) = task
            && task.await.is_err()
        {
            tracing::warn!("the audit writer ended abnormally");
        }
    }
}

/// Success reads are sampled (`draw` uniform in `[0, 1)`); everything else is kept.
#[must_use]
pub fn wanted(operation: S3Operation, outcome: Outcome, rate: f64, draw: f64) -> bool {
    if outcome != Outcome::Ok || !is_read(operation) {
        return true;
    }
    draw < rate
}

/// Operations that change nothing: object reads, listings, bucket and service reads.
#[must_use]
pub fn is_read(operation: S3Operation) -> bool {
    matches!(
        operation.access_class(),
        AccessClass::Read
            | AccessClass::List
            | AccessClass::BucketRead
            | AccessClass::BucketConfigRead
            | AccessClass::Service
    )
}
