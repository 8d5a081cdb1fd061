//! The audit log against a real SQLite file: batching, sampling, drops, write errors
//! and retries, pruning, queries and the export formats.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use time::OffsetDateTime;

use super::export::csv_row_for_test;
use super::store;
use super::*;
use crate::credentials::sqlite::SqliteStore;
use crate::secret::RootKey;

/// A migrated database in a temporary directory.
fn database() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stowage.db");
    SqliteStore::open(&path, RootKey::from_bytes([3; 32])).unwrap();
    (dir, path)
}

fn options(batch_size: usize, flush_interval: Duration) -> AuditOptions {
    AuditOptions {
        queue_capacity: 64,
        sample_success_reads: 0.0,
        // The fixed event times below are years old: keep them from being pruned.
        retention: Duration::from_secs(100 * 365 * 24 * 3600),
        batch_size,
        flush_interval,
        prune_interval: Duration::from_secs(3600),
        max_db_bytes: 0,
    }
}

fn event(n: i64) -> AuditEvent {
    AuditEvent {
        time_ms: 1_700_000_000_000 + n,
        request_id: format!("REQ{n}"),
        access_key: Some("SWKEY".into()),
        source: AuditSource::Sqlite,
        operation: "PutObject",
        bucket: Some("photos".into()),
        key: Some(format!("k/{n}")),
        status: 200,
        bytes_in: 5,
        bytes_out: 0,
        client_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        outcome: Outcome::Ok,
        duration_ms: 3,
    }
}

fn count(path: &Path) -> i64 {
    let conn = store::open_reader(path).unwrap();
    conn.query_row("SELECT count(*) FROM audit_events", [], |r| r.get(0))
        .unwrap()
}

async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_full_batch_is_written_at_once_and_a_partial_one_waits_for_the_interval() {
    let (_dir, path) = database();
    let metrics = AuditMetrics::unregistered();
    let log = AuditLog::start(
        &path,
        options(3, Duration::from_secs(3600)),
        metrics.clone(),
    )
    .unwrap();
    for n in 0..4 {
        log.record(event(n));
    }
    eventually("the full batch", || metrics.written.get() == 3).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(count(&path), 3, "the fourth row waits for the interval");
    log.shutdown().await;
    assert_eq!(count(&path), 4, "shutdown flushes the partial batch");
    assert_eq!(metrics.dropped.get(), 0);
}

#[tokio::test]
async fn a_lone_event_is_written_after_the_flush_interval() {
    let (_dir, path) = database();
    let metrics = AuditMetrics::unregistered();
    let log = AuditLog::start(
        &path,
        options(512, Duration::from_millis(50)),
        metrics.clone(),
    )
    .unwrap();
    log.record(event(1));
    eventually("the timed flush", || count(&path) == 1).await;
    log.shutdown().await;
}

#[tokio::test(flavor = "current_thread")]
async fn a_full_queue_counts_drops_and_never_blocks() {
    let (_dir, path) = database();
    let metrics = AuditMetrics::unregistered();
    let mut opts = options(512, Duration::from_secs(3600));
    opts.queue_capacity = 4;
    let log = AuditLog::start(&path, opts, metrics.clone()).unwrap();
    // On a current-thread runtime the writer cannot run until this test yields, so
    // the queue fills after four events.
    let started = Instant::now();
    for n in 0..1000 {
        log.record(event(n));
    }
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "record() waited"
    );
    assert_eq!(metrics.dropped.get(), 996);
    log.shutdown().await;
    assert_eq!(count(&path), 4);
    log.record(event(2000));
    assert_eq!(
        metrics.dropped.get(),
        997,
        "after shutdown events count as dropped"
    );
}

#[tokio::test]
async fn a_failed_batch_is_counted_and_retried_without_losing_rows() {
    let (_dir, path) = database();
    let metrics = AuditMetrics::unregistered();
    let log = AuditLog::start(
        &path,
        options(2, Duration::from_millis(20)),
        metrics.clone(),
    )
    .unwrap();
    let admin = rusqlite::Connection::open(&path).unwrap();
    admin
        .execute_batch("ALTER TABLE audit_events RENAME TO audit_away")
        .unwrap();
    log.record(event(1));
    log.record(event(2));
    eventually("a write error", || metrics.write_errors.get() >= 1).await;
    admin
        .execute_batch("ALTER TABLE audit_away RENAME TO audit_events")
        .unwrap();
    eventually("the retry", || metrics.written.get() == 2).await;
    log.shutdown().await;
    assert_eq!(count(&path), 2);
    assert_eq!(metrics.dropped.get(), 0);
}

#[test]
fn successful_reads_are_sampled_and_everything_else_is_kept() {
    use crate::policy::operation::S3Operation as Op;
    for op in [
        Op::GetObject,
        Op::HeadObject,
        Op::ListObjectsV2,
        Op::ListBuckets,
    ] {
        assert!(!wanted(op, Outcome::Ok, 0.0, 0.0), "{op:?} at rate 0");
        assert!(wanted(op, Outcome::Ok, 1.0, 0.999_999), "{op:?} at rate 1");
        assert!(wanted(op, Outcome::Ok, 0.25, 0.2));
        assert!(!wanted(op, Outcome::Ok, 0.25, 0.3));
        for o in [Outcome::Denied, Outcome::ClientError, Outcome::ServerError] {
            assert!(wanted(op, o, 0.0, 0.5), "{op:?} {o:?}");
        }
    }
    for op in [
        Op::PutObject,
        Op::DeleteObject,
        Op::CreateBucket,
        Op::Unknown,
    ] {
        assert!(wanted(op, Outcome::Ok, 0.0, 0.5), "{op:?}");
    }
    let kept = (0..10_000)
        .filter(|i| wanted(Op::GetObject, Outcome::Ok, 0.1, f64::from(*i) / 10_000.0))
        .count();
    assert_eq!(kept, 1000);
}

#[test]
fn pruning_deletes_only_rows_older_than_the_cutoff() {
    let (_dir, path) = database();
    let mut conn = store::open_writer(&path).unwrap();
    let rows: Vec<_> = (0..12_000).map(event).collect();
    store::insert_batch(&mut conn, &rows).unwrap();
    let cutoff = rows[11_000].time_ms;
    assert_eq!(store::prune_before(&conn, cutoff).unwrap(), 11_000);
    assert_eq!(count(&path), 1000);
    assert_eq!(store::prune_before(&conn, cutoff).unwrap(), 0);
}

#[tokio::test]
async fn the_writer_prunes_past_retention_on_its_schedule() {
    let (_dir, path) = database();
    let mut conn = store::open_writer(&path).unwrap();
    let mut old = event(1);
    old.time_ms = unix_ms(OffsetDateTime::now_utc()) - 2 * 3600 * 1000;
    let mut fresh = event(2);
    fresh.time_ms = unix_ms(OffsetDateTime::now_utc());
    store::insert_batch(&mut conn, &[old, fresh]).unwrap();
    let mut opts = options(512, Duration::from_secs(3600));
    opts.retention = Duration::from_secs(3600);
    opts.prune_interval = Duration::from_millis(20);
    let log = AuditLog::start(&path, opts, AuditMetrics::unregistered()).unwrap();
    eventually("the prune", || count(&path) == 1).await;
    log.shutdown().await;
}

#[tokio::test]
async fn queries_filter_by_time_key_bucket_and_outcome_newest_first() {
    let (_dir, path) = database();
    let mut conn = store::open_writer(&path).unwrap();
    let mut rows: Vec<_> = (0..6).map(event).collect();
    rows[1].access_key = Some("OTHER".into());
    rows[2].bucket = Some("logs".into());
    rows[3].outcome = Outcome::Denied;
    rows[3].status = 403;
    store::insert_batch(&mut conn, &rows).unwrap();
    let log = AuditLog::start(
        &path,
        options(8, FLUSH_INTERVAL),
        AuditMetrics::unregistered(),
    )
    .unwrap();
    let ids = |f: AuditFilter| -> Vec<String> {
        log.query(&f)
            .unwrap()
            .into_iter()
            .map(|r| r.request_id)
            .collect()
    };
    assert_eq!(
        ids(AuditFilter::default()),
        ["REQ5", "REQ4", "REQ3", "REQ2", "REQ1", "REQ0"]
    );
    let at = |n: i64| {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(event(n).time_ms) * 1_000_000).unwrap()
    };
    let window = AuditFilter {
        since: Some(at(1)),
        until: Some(at(3)),
        ..AuditFilter::default()
    };
    assert_eq!(ids(window), ["REQ2", "REQ1"]);
    let key = AuditFilter {
        access_key: Some("OTHER".into()),
        ..AuditFilter::default()
    };
    assert_eq!(ids(key), ["REQ1"]);
    let bucket = AuditFilter {
        bucket: Some("logs".into()),
        ..AuditFilter::default()
    };
    assert_eq!(ids(bucket), ["REQ2"]);
    let denied = AuditFilter {
        outcome: Some(Outcome::Denied),
        ..AuditFilter::default()
    };
    let got = log.query(&denied).unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!((got[0].status, got[0].outcome.as_str()), (403, "denied"));
    assert_eq!(
        ids(AuditFilter {
            limit: Some(2),
            ..AuditFilter::default()
        }),
        ["REQ5", "REQ4"]
    );
    for bad in [0, MAX_QUERY_LIMIT + 1] {
        let err = log.query(&AuditFilter {
            limit: Some(bad),
            ..AuditFilter::default()
        });
        assert!(
            matches!(err, Err(AuditError::Invalid { field: "limit", .. })),
            "{bad}"
        );
    }
    log.shutdown().await;
}

#[test]
fn csv_fields_that_a_spreadsheet_would_run_as_formulas_are_defused() {
    assert_eq!(csv_field("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
    assert_eq!(csv_field("+1"), "'+1");
    assert_eq!(csv_field("@sum"), "'@sum");
    assert_eq!(csv_field("a=b"), "a=b");
}

#[test]
fn csv_fields_are_quoted_only_when_needed_with_quotes_doubled() {
    assert_eq!(csv_field("plain/key.txt"), "plain/key.txt");
    assert_eq!(csv_field("a,b"), "\"a,b\"");
    assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
    assert_eq!(csv_field("line\nbreak"), "\"line\nbreak\"");
    assert_eq!(csv_field("cr\rhere"), "\"cr\rhere\"");
    assert_eq!(csv_field(""), "");
}

#[test]
fn export_writes_csv_with_a_header_and_jsonl_that_round_trips() {
    let (_dir, path) = database();
    let mut conn = store::open_writer(&path).unwrap();
    let mut e = event(7);
    e.key = Some("we\"ird,key\nname".into());
    e.access_key = None;
    e.source = AuditSource::None;
    store::insert_batch(&mut conn, &[e.clone(), event(8)]).unwrap();
    let mut csv = Vec::new();
    let n = export(&path, &AuditFilter::default(), ExportFormat::Csv, &mut csv).unwrap();
    assert_eq!(n, 2);
    let text = String::from_utf8(csv).unwrap();
    let mut lines = text.split("\r\n");
    assert_eq!(
        lines.next().unwrap(),
        "time,request_id,access_key,source,operation,bucket,key,status,bytes_in,bytes_out,client_ip,outcome,duration_ms"
    );
    assert_eq!(
        lines.next().unwrap(),
        "2023-11-14T22:13:20.007Z,REQ7,,none,PutObject,photos,\"we\"\"ird,key\nname\",200,5,0,127.0.0.1,ok,3"
    );
    let mut jsonl = Vec::new();
    export(
        &path,
        &AuditFilter::default(),
        ExportFormat::Jsonl,
        &mut jsonl,
    )
    .unwrap();
    let first: serde_json::Value =
        serde_json::from_str(String::from_utf8(jsonl).unwrap().lines().next().unwrap()).unwrap();
    assert_eq!(first["key"], "we\"ird,key\nname");
    assert!(first["access_key"].is_null());
    assert_eq!(first["time_ms"], 1_700_000_000_007_i64);
    let rec = store::query(&store::open_reader(&path).unwrap(), &AuditFilter::default()).unwrap();
    assert!(csv_row_for_test(&rec[1]).starts_with("2023-11-14T22:13:20.007Z,REQ7,"));
}

#[test]
fn time_arguments_take_rfc3339_or_a_duration_before_now() {
    let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
    let t = parse_time_arg("2026-01-02T03:04:05Z", now).unwrap();
    assert_eq!(t.unix_timestamp(), 1_767_323_045);
    assert_eq!(
        parse_time_arg("24h", now).unwrap(),
        now - time::Duration::hours(24)
    );
    assert_eq!(
        parse_time_arg("7d", now).unwrap(),
        now - time::Duration::days(7)
    );
    assert!(
        parse_time_arg("yesterday", now)
            .unwrap_err()
            .contains("RFC 3339")
    );
}

#[test]
fn a_database_without_the_audit_table_is_named_in_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch("CREATE TABLE t (x)")
        .unwrap();
    let err = open_reader(&path).unwrap_err();
    assert!(matches!(err, AuditError::NoTable(_)), "{err}");
    assert!(err.to_string().contains("old.db"));
}
