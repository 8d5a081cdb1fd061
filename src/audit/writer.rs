//! The writer task: drains the queue into batches, writes each batch in one
//! transaction on the blocking pool, prunes old rows, and flushes what is queued when
//! asked to stop.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rusqlite::Connection;
use time::OffsetDateTime;
use tokio::sync::{mpsc, watch};
use tokio::time::MissedTickBehavior;

use super::store::{insert_batch, is_full, prune_before};
use super::types::{AuditEvent, unix_ms};
use super::{AuditMetrics, AuditOptions};

/// At most one write-error log line per this interval (the counter has the rest).
const ERROR_LOG_EVERY: Duration = Duration::from_secs(60);

struct Writer {
    conn: Arc<Mutex<Connection>>,
    options: AuditOptions,
    metrics: AuditMetrics,
    /// Queued rows not yet written (a failed batch stays here and is retried).
    pending: Vec<AuditEvent>,
    last_error_log: Option<Instant>,
    suppressed_errors: u64,
}

pub(super) async fn run(
    conn: Connection,
    mut rx: mpsc::Receiver<AuditEvent>,
    options: AuditOptions,
    metrics: AuditMetrics,
    mut stop: watch::Receiver<bool>,
) {
    let every = options.flush_interval.max(Duration::from_millis(1));
    let mut flush_tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    flush_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    // The first prune runs at start-up: a proxy restarted more often than hourly
    // would otherwise never prune.
    let mut prune_tick =
        tokio::time::interval(options.prune_interval.max(Duration::from_millis(1)));
    prune_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut w = Writer {
        conn: Arc::new(Mutex::new(conn)),
        pending: Vec::with_capacity(options.batch_size),
        options,
        metrics,
        last_error_log: None,
        suppressed_errors: 0,
    };
    loop {
        tokio::select! {
            event = rx.recv() => match event {
                Some(e) => {
                    w.pending.push(e);
                    if w.pending.len() >= w.options.batch_size {
                        w.flush().await;
                    }
                }
                None => break,
            },
            _ = flush_tick.tick() => w.flush().await,
            _ = prune_tick.tick() => w.prune().await,
            _ = stop.changed() => break,
        }
    }
    // Shutdown: nothing new gets in; what is already queued is written.
    rx.close();
    while let Some(e) = rx.recv().await {
        w.pending.push(e);
        if w.pending.len() >= w.options.batch_size {
            w.flush().await;
        }
    }
    w.flush().await;
    if !w.pending.is_empty() {
        tracing::warn!(
            rows = w.pending.len(),
            "audit rows could not be written before shutdown"
        );
    }
    tracing::info!("audit log flushed and closed");
}

impl Writer {
    async fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        // Batches stay within batch_size even when a retry accumulated more.
        while !self.pending.is_empty() {
            let n = self.pending.len().min(self.options.batch_size);
            let batch: Vec<AuditEvent> = self.pending.drain(..n).collect();
            let conn = Arc::clone(&self.conn);
            let result = tokio::task::spawn_blocking(move || {
                let mut c = conn.lock().unwrap_or_else(PoisonError::into_inner);
                insert_batch(&mut c, &batch)
                    .map(|()| batch.len())
                    .map_err(|e| (e, batch))
            })
            .await;
            match result {
                Ok(Ok(written)) => self.metrics.written.inc_by(written as u64),
                Ok(Err((e, batch))) if is_full(&e) => {
                    // Retrying cannot help until space is freed: drop, count, and
                    // let retention make room now instead of within the hour.
                    self.metrics.dropped.inc_by(batch.len() as u64);
                    self.failed("the audit database is full (audit.max_db_bytes or disk)");
                    self.prune().await;
                    return;
                }
                Ok(Err((e, batch))) => {
                    self.failed(&e.to_string());
                    self.keep_for_retry(batch);
                    return;
                }
                Err(e) => {
                    self.failed(&e.to_string());
                    return;
                }
            }
        }
    }

    /// Put a failed batch back in front, bounded: beyond the queue's capacity the
    /// oldest rows are dropped (and counted) rather than grow without limit.
    fn keep_for_retry(&mut self, mut batch: Vec<AuditEvent>) {
        batch.append(&mut self.pending);
        let cap = self.options.queue_capacity.max(self.options.batch_size);
        if batch.len() > cap {
            let excess = batch.len() - cap;
            batch.drain(..excess);
            self.metrics.dropped.inc_by(excess as u64);
        }
        self.pending = batch;
    }

    fn failed(&mut self, error: &str) {
        self.metrics.write_errors.inc();
        let due = self
            .last_error_log
            .is_none_or(|t| t.elapsed() >= ERROR_LOG_EVERY);
        if due {
            tracing::warn!(
                error,
                suppressed = self.suppressed_errors,
                pending = self.pending.len(),
                "cannot write audit rows; retrying with the next batch"
            );
            self.last_error_log = Some(Instant::now());
            self.suppressed_errors = 0;
        } else {
            self.suppressed_errors += 1;
        }
    }

    async fn prune(&mut self) {
        let Ok(retention) = time::Duration::try_from(self.options.retention) else {
            return;
        };
        let cutoff = unix_ms(OffsetDateTime::now_utc() - retention);
        let conn = Arc::clone(&self.conn);
        let result = tokio::task::spawn_blocking(move || {
            let c = conn.lock().unwrap_or_else(PoisonError::into_inner);
            prune_before(&c, cutoff)
        })
        .await;
        match result {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => tracing::info!(rows = n, "pruned audit rows past retention"),
            Ok(Err(e)) => self.failed(&e.to_string()),
            Err(e) => self.failed(&e.to_string()),
        }
    }
}
