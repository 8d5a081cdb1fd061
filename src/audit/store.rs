//! The `audit_events` table: batch inserts, retention pruning, filtered queries and
//! the ordered scan behind `stowage audit export`.
//!
//! The audit connections never create or migrate the database: the credential store
//! does that when it opens ([`crate::credentials::sqlite_schema`]). Reading the audit
//! log needs no root key.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::types::Value;
use rusqlite::{Connection, OpenFlags, TransactionBehavior, params};

use super::types::{
    AuditEvent, AuditFilter, AuditRecord, DEFAULT_QUERY_LIMIT, MAX_QUERY_LIMIT, format_ms,
};

const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Pruning deletes this many rows per transaction, so it never holds the write lock
/// long enough to stall credential writes.
const PRUNE_CHUNK: i64 = 5_000;

/// Errors of the audit store. Messages name fields and paths, never row contents.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("invalid audit filter: {field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error(
        "{0} has no audit log yet (its schema predates it); start `stowage serve` with this build once"
    )]
    NoTable(PathBuf),
    #[error("audit database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("audit export: {0}")]
    Io(#[from] std::io::Error),
}

fn connect(path: &Path, flags: OpenFlags) -> Result<Connection, AuditError> {
    let conn = Connection::open_with_flags(path, flags | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    let has_table: bool = conn.query_row(
        "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'audit_events'",
        [],
        |r| r.get(0),
    )?;
    if !has_table {
        return Err(AuditError::NoTable(path.to_path_buf()));
    }
    Ok(conn)
}

/// The writer's connection. `synchronous = NORMAL`: in WAL mode a power cut may lose
/// the last batches but never corrupts the file, and audit rows do not justify an
/// fsync per batch on a disk the credential store shares.
pub(super) fn open_writer(path: &Path) -> Result<Connection, AuditError> {
    let conn = connect(path, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    Ok(conn)
}

/// Cap the database file at `max_bytes` for this connection's writes (whole pages,
/// never below the current size; other connections are not limited).
pub(super) fn cap_size(conn: &Connection, max_bytes: u64) -> Result<(), AuditError> {
    let page_size: i64 = conn.pragma_query_value(None, "page_size", |r| r.get(0))?;
    let pages = to_i64(max_bytes) / page_size.max(512);
    let _: i64 = conn.query_row(&format!("PRAGMA max_page_count = {pages}"), [], |r| {
        r.get(0)
    })?;
    Ok(())
}

/// Whether a write failed because the database (or its disk) is full.
pub(super) fn is_full(e: &rusqlite::Error) -> bool {
    e.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull)
}

/// A read-only connection on an existing database (queries, `stowage audit export`).
///
/// # Errors
/// When the file does not exist, cannot be opened, or has no audit table.
pub fn open_reader(path: &Path) -> Result<Connection, AuditError> {
    // Read-write open with `query_only`: a WAL reader may need to create `-shm`.
    let conn = connect(path, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
    conn.pragma_update(None, "query_only", true)?;
    Ok(conn)
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Insert `events` in one transaction (all or none).
pub(super) fn insert_batch(conn: &mut Connection, events: &[AuditEvent]) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    {
        let mut stmt = tx.prepare_cached(
            "INSERT INTO audit_events (time_ms, request_id, access_key, source, operation, \
             bucket, object_key, status, bytes_in, bytes_out, client_ip, outcome, duration_ms) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
        )?;
        for e in events {
            stmt.execute(params![
                e.time_ms,
                e.request_id,
                e.access_key,
                e.source.as_str(),
                e.operation,
                e.bucket,
                e.key,
                e.status,
                to_i64(e.bytes_in),
                to_i64(e.bytes_out),
                e.client_ip.to_string(),
                e.outcome.as_str(),
                to_i64(e.duration_ms),
            ])?;
        }
    }
    tx.commit()
}

/// Delete rows with `time_ms < cutoff_ms`, a chunk per transaction; returns the count.
pub(super) fn prune_before(conn: &Connection, cutoff_ms: i64) -> rusqlite::Result<usize> {
    let mut total = 0;
    loop {
        let n = conn.execute(
            "DELETE FROM audit_events WHERE id IN \
             (SELECT id FROM audit_events WHERE time_ms < ?1 ORDER BY time_ms LIMIT ?2)",
            params![cutoff_ms, PRUNE_CHUNK],
        )?;
        total += n;
        if i64::try_from(n).unwrap_or(0) < PRUNE_CHUNK {
            return Ok(total);
        }
    }
}

const COLUMNS: &str = "time_ms, request_id, access_key, source, operation, bucket, object_key, \
     status, bytes_in, bytes_out, client_ip, outcome, duration_ms";

fn record(r: &rusqlite::Row<'_>) -> rusqlite::Result<AuditRecord> {
    let time_ms: i64 = r.get(0)?;
    let n =
        |i: usize| -> rusqlite::Result<u64> { Ok(u64::try_from(r.get::<_, i64>(i)?).unwrap_or(0)) };
    Ok(AuditRecord {
        time: format_ms(time_ms),
        time_ms,
        request_id: r.get(1)?,
        access_key: r.get(2)?,
        source: r.get(3)?,
        operation: r.get(4)?,
        bucket: r.get(5)?,
        key: r.get(6)?,
        status: r.get(7)?,
        bytes_in: n(8)?,
        bytes_out: n(9)?,
        client_ip: r.get(10)?,
        outcome: r.get(11)?,
        duration_ms: n(12)?,
    })
}

/// `WHERE …` for a filter, with its parameters in order.
fn where_clause(f: &AuditFilter) -> (String, Vec<Value>) {
    let mut conds = Vec::new();
    let mut values = Vec::new();
    if let Some(t) = f.since {
        conds.push("time_ms >= ?");
        values.push(Value::Integer(super::types::unix_ms(t)));
    }
    if let Some(t) = f.until {
        conds.push("time_ms < ?");
        values.push(Value::Integer(super::types::unix_ms(t)));
    }
    if let Some(ak) = &f.access_key {
        conds.push("access_key = ?");
        values.push(Value::Text(ak.clone()));
    }
    if let Some(b) = &f.bucket {
        conds.push("bucket = ?");
        values.push(Value::Text(b.clone()));
    }
    if let Some(o) = f.outcome {
        conds.push("outcome = ?");
        values.push(Value::Text(o.as_str().to_owned()));
    }
    if conds.is_empty() {
        return (String::new(), values);
    }
    (format!(" WHERE {}", conds.join(" AND ")), values)
}

fn check_filter(f: &AuditFilter) -> Result<usize, AuditError> {
    let limit = f.limit.unwrap_or(DEFAULT_QUERY_LIMIT);
    if limit == 0 || limit > MAX_QUERY_LIMIT {
        return Err(AuditError::Invalid {
            field: "limit",
            reason: format!("{limit} is out of range; use 1 to {MAX_QUERY_LIMIT}"),
        });
    }
    if let (Some(since), Some(until)) = (f.since, f.until)
        && until < since
    {
        return Err(AuditError::Invalid {
            field: "until",
            reason: "must not be before since".into(),
        });
    }
    Ok(limit)
}

/// Rows matching `f`, newest first, at most its limit.
pub(super) fn query(conn: &Connection, f: &AuditFilter) -> Result<Vec<AuditRecord>, AuditError> {
    let limit = check_filter(f)?;
    let (clause, mut values) = where_clause(f);
    values.push(Value::Integer(i64::try_from(limit).unwrap_or(i64::MAX)));
    let sql = format!(
        "SELECT {COLUMNS} FROM audit_events{clause} ORDER BY time_ms DESC, id DESC LIMIT ?"
    );
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map(rusqlite::params_from_iter(values), record)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Every row matching `f` (its limit ignored), oldest first, handed to `each`.
pub(super) fn for_each(
    conn: &Connection,
    f: &AuditFilter,
    mut each: impl FnMut(&AuditRecord) -> Result<(), AuditError>,
) -> Result<u64, AuditError> {
    let (clause, values) = where_clause(f);
    let sql = format!("SELECT {COLUMNS} FROM audit_events{clause} ORDER BY time_ms, id");
    let mut stmt = conn.prepare(&sql)?;
    let mut rows = stmt.query(rusqlite::params_from_iter(values))?;
    let mut n = 0;
    while let Some(row) = rows.next()? {
        each(&record(row)?)?;
        n += 1;
    }
    Ok(n)
}
