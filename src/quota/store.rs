//! Quota persistence in the SQLite store (migration `0002_quotas.sql`): the
//! `bucket_quotas` rows the CLI writes, and the `bucket_usage` rows the proxy writes so a
//! restart resumes from the last known usage, plus the recount request/answer protocol
//! between `stowage quota recount` and a running proxy's scanner.
//!
//! These are inherent methods on [`SqliteStore`], so the CLI and the proxy share one
//! handle (and its WAL, busy timeout and migrations). Times are Unix milliseconds (see
//! the migration for why).

use rusqlite::{Connection, OptionalExtension, Row, params};
use time::OffsetDateTime;

use super::ledger::Usage;
use super::limits::{BucketKey, Limits};
use crate::credentials::sqlite::SqliteStore;

/// Errors of the quota tables. `Invalid` names the offending field.
#[derive(Debug, thiserror::Error)]
pub enum QuotaStoreError {
    #[error("{field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
}

/// One `bucket_quotas` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaRecord {
    pub key: BucketKey,
    pub limits: Limits,
    pub updated_at: OffsetDateTime,
}

/// One `bucket_usage` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageRecord {
    pub key: BucketKey,
    pub usage: Usage,
    /// When the scan this usage derives from began; `None`: never scanned (the row only
    /// carries a recount request) and `usage` means nothing.
    pub scanned_at: Option<OffsetDateTime>,
    pub updated_at: OffsetDateTime,
    pub recount_requested_at: Option<OffsetDateTime>,
}

/// Unix milliseconds, saturating far outside the range of real clocks.
#[must_use]
pub fn to_millis(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// The inverse of [`to_millis`]; out-of-range values (a hand-edited row) clamp to the epoch.
#[must_use]
pub fn from_millis(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// A count as stored: SQLite integers are signed, so clamp (usage only; limits are
/// validated instead).
fn count_to_sql(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn count_from_sql(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn invalid(field: &'static str, reason: impl Into<String>) -> QuotaStoreError {
    QuotaStoreError::Invalid {
        field,
        reason: reason.into(),
    }
}

/// A limit value as stored: positive and representable as an SQLite integer.
fn limit_to_sql(field: &'static str, v: Option<u64>) -> Result<Option<i64>, QuotaStoreError> {
    let Some(v) = v else { return Ok(None) };
    if v == 0 {
        return Err(invalid(
            field,
            "must be greater than 0 (clear the quota to remove it)",
        ));
    }
    i64::try_from(v)
        .map(Some)
        .map_err(|_| invalid(field, format!("must be at most {}", i64::MAX)))
}

/// The rules a stored row obeys: at least one cap, every cap positive and storable,
/// soft not above hard.
///
/// # Errors
/// [`QuotaStoreError::Invalid`] naming the field at fault.
pub fn validate_limits(limits: &Limits) -> Result<(), QuotaStoreError> {
    if limits.is_empty() {
        return Err(invalid(
            "limits",
            "set at least one of hard_bytes, soft_bytes, max_objects",
        ));
    }
    limit_to_sql("hard_bytes", limits.hard_bytes)?;
    limit_to_sql("soft_bytes", limits.soft_bytes)?;
    limit_to_sql("max_objects", limits.max_objects)?;
    if let (Some(soft), Some(hard)) = (limits.soft_bytes, limits.hard_bytes)
        && soft > hard
    {
        return Err(invalid(
            "soft_bytes",
            format!("{soft} is above hard_bytes {hard}"),
        ));
    }
    Ok(())
}

fn opt_count(row: &Row<'_>, i: usize) -> rusqlite::Result<Option<u64>> {
    Ok(row.get::<_, Option<i64>>(i)?.map(count_from_sql))
}

fn quota_from_row(row: &Row<'_>) -> rusqlite::Result<QuotaRecord> {
    Ok(QuotaRecord {
        key: BucketKey::new(row.get::<_, String>(0)?, row.get::<_, String>(1)?),
        limits: Limits {
            hard_bytes: opt_count(row, 2)?,
            soft_bytes: opt_count(row, 3)?,
            max_objects: opt_count(row, 4)?,
        },
        updated_at: from_millis(row.get(5)?),
    })
}

const SELECT_USAGE: &str = "SELECT backend, bucket, bytes, objects, scanned_at, updated_at, \
     recount_requested_at FROM bucket_usage";

fn usage_from_row(row: &Row<'_>) -> rusqlite::Result<UsageRecord> {
    Ok(UsageRecord {
        key: BucketKey::new(row.get::<_, String>(0)?, row.get::<_, String>(1)?),
        usage: Usage {
            bytes: count_from_sql(row.get(2)?),
            objects: count_from_sql(row.get(3)?),
        },
        scanned_at: row.get::<_, Option<i64>>(4)?.map(from_millis),
        updated_at: from_millis(row.get(5)?),
        recount_requested_at: row.get::<_, Option<i64>>(6)?.map(from_millis),
    })
}

fn now_ms() -> i64 {
    to_millis(OffsetDateTime::now_utc())
}

/// Upsert usage, never moving `scanned_at` backwards: a flush that read the ledger just
/// before a recount answered must not undo the answer the CLI is waiting for.
fn upsert_usage(conn: &Connection, key: &BucketKey, u: Usage, at: i64) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO bucket_usage (backend, bucket, bytes, objects, scanned_at, updated_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
         ON CONFLICT (backend, bucket) DO UPDATE SET bytes = excluded.bytes, \
           objects = excluded.objects, scanned_at = excluded.scanned_at, \
           updated_at = excluded.updated_at \
         WHERE bucket_usage.scanned_at IS NULL OR bucket_usage.scanned_at <= excluded.scanned_at",
        params![
            key.backend,
            key.bucket,
            count_to_sql(u.bytes),
            count_to_sql(u.objects),
            at,
            now_ms()
        ],
    )?;
    Ok(())
}

impl SqliteStore {
    /// Set (replace) one bucket's limits.
    ///
    /// # Errors
    /// `Invalid` (see [`validate_limits`]) or a database error.
    pub fn set_limits(&self, key: &BucketKey, limits: Limits) -> Result<(), QuotaStoreError> {
        validate_limits(&limits)?;
        let hard = limit_to_sql("hard_bytes", limits.hard_bytes)?;
        let soft = limit_to_sql("soft_bytes", limits.soft_bytes)?;
        let objects = limit_to_sql("max_objects", limits.max_objects)?;
        self.writer().execute(
            "INSERT INTO bucket_quotas (backend, bucket, hard_bytes, soft_bytes, max_objects, \
             updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
             ON CONFLICT (backend, bucket) DO UPDATE SET hard_bytes = excluded.hard_bytes, \
               soft_bytes = excluded.soft_bytes, max_objects = excluded.max_objects, \
               updated_at = excluded.updated_at",
            params![key.backend, key.bucket, hard, soft, objects, now_ms()],
        )?;
        Ok(())
    }

    /// Remove one bucket's limits; `false` when it had none.
    ///
    /// # Errors
    /// A database error.
    pub fn clear_limits(&self, key: &BucketKey) -> Result<bool, QuotaStoreError> {
        let n = self.writer().execute(
            "DELETE FROM bucket_quotas WHERE backend = ?1 AND bucket = ?2",
            params![key.backend, key.bucket],
        )?;
        Ok(n > 0)
    }

    /// Every `bucket_quotas` row, sorted by (backend, bucket).
    ///
    /// # Errors
    /// A database error.
    pub fn list_limits(&self) -> Result<Vec<QuotaRecord>, QuotaStoreError> {
        let conn = self.reader();
        let mut stmt = conn.prepare(
            "SELECT backend, bucket, hard_bytes, soft_bytes, max_objects, updated_at \
             FROM bucket_quotas ORDER BY backend, bucket",
        )?;
        let rows = stmt.query_map([], quota_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Every `bucket_usage` row (including rows that only carry a recount request),
    /// sorted by (backend, bucket).
    ///
    /// # Errors
    /// A database error.
    pub fn load_usage(&self) -> Result<Vec<UsageRecord>, QuotaStoreError> {
        let conn = self.reader();
        let mut stmt = conn.prepare(&format!("{SELECT_USAGE} ORDER BY backend, bucket"))?;
        let rows = stmt.query_map([], usage_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// One bucket's usage row.
    ///
    /// # Errors
    /// A database error.
    pub fn usage_of(&self, key: &BucketKey) -> Result<Option<UsageRecord>, QuotaStoreError> {
        let conn = self.reader();
        let sql = format!("{SELECT_USAGE} WHERE backend = ?1 AND bucket = ?2");
        Ok(conn
            .query_row(&sql, params![key.backend, key.bucket], usage_from_row)
            .optional()?)
    }

    /// Persist a batch of (bucket, usage, `scanned_at`) in one transaction. A row whose
    /// stored `scanned_at` is newer is left alone.
    ///
    /// # Errors
    /// A database error (nothing of the batch is written).
    pub fn save_usage(
        &self,
        batch: &[(BucketKey, Usage, OffsetDateTime)],
    ) -> Result<(), QuotaStoreError> {
        let mut conn = self.writer();
        let tx = conn.transaction()?;
        for (key, usage, at) in batch {
            upsert_usage(&tx, key, *usage, to_millis(*at))?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Ask running proxies to rescan `key`; returns the request time the answer's
    /// `scanned_at` must reach.
    ///
    /// # Errors
    /// A database error.
    pub fn request_recount(&self, key: &BucketKey) -> Result<OffsetDateTime, QuotaStoreError> {
        let now = now_ms();
        self.writer().execute(
            "INSERT INTO bucket_usage (backend, bucket, updated_at, recount_requested_at) \
             VALUES (?1, ?2, ?3, ?3) \
             ON CONFLICT (backend, bucket) DO UPDATE SET \
               recount_requested_at = excluded.recount_requested_at",
            params![key.backend, key.bucket, now],
        )?;
        Ok(from_millis(now))
    }

    /// Buckets with an unanswered recount request, oldest first.
    ///
    /// # Errors
    /// A database error.
    pub fn pending_recounts(&self) -> Result<Vec<(BucketKey, OffsetDateTime)>, QuotaStoreError> {
        let conn = self.reader();
        let mut stmt = conn.prepare(
            "SELECT backend, bucket, recount_requested_at FROM bucket_usage \
             WHERE recount_requested_at IS NOT NULL ORDER BY recount_requested_at",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                BucketKey::new(r.get::<_, String>(0)?, r.get::<_, String>(1)?),
                from_millis(r.get(2)?),
            ))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Record a finished scan of `key`. `at` is when the scan BEGAN (its listing
    /// reflects every write before it): a request made after `at` stays pending, since
    /// this listing may have missed what prompted it.
    ///
    /// # Errors
    /// A database error.
    pub fn record_recount_done(
        &self,
        key: &BucketKey,
        usage: Usage,
        at: OffsetDateTime,
    ) -> Result<(), QuotaStoreError> {
        let at = to_millis(at);
        let mut conn = self.writer();
        let tx = conn.transaction()?;
        upsert_usage(&tx, key, usage, at)?;
        tx.execute(
            "UPDATE bucket_usage SET recount_requested_at = NULL \
             WHERE backend = ?1 AND bucket = ?2 AND recount_requested_at <= ?3",
            params![key.backend, key.bucket, at],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// A number that changes whenever another connection (the CLI, another process, or
    /// this process's writer) commits to the file: a cheap "anything new?" probe.
    ///
    /// # Errors
    /// A database error.
    pub fn data_version(&self) -> Result<i64, QuotaStoreError> {
        Ok(self
            .reader()
            .pragma_query_value(None, "data_version", |r| r.get(0))?)
    }
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
