//! The audit database is full: `audit.max_db_bytes` makes the audit writer hit
//! `SQLITE_FULL` exactly as a full disk would. Audit rows are then dropped and counted,
//! S3 traffic is untouched, and once rows pass `audit.retention` the writer prunes them
//! and writes again, without a restart.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, params};
use stowage::credentials::model::Access;

use crate::common::{BUCKET, Harness, UpstreamKind, scope};
use crate::support::eventually;

const CAP: u64 = 2 * 1024 * 1024;
const DROPPED: &str = "stowage_audit_dropped_total";
const WRITTEN: &str = "stowage_audit_written_total";

fn now_ms() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock")
            .as_millis(),
    )
    .expect("ms fit")
}

fn open(db: &Path) -> Connection {
    let c = Connection::open(db).expect("open the database");
    c.busy_timeout(Duration::from_secs(5))
        .expect("busy timeout");
    c
}

/// Fill the database up to the audit cap with filler rows stamped `time_ms`, through a
/// connection of our own given the same cap: large rows first, then small ones until
/// SQLite says `SQLITE_FULL`, so the last pages have no room left either.
fn fill_to_cap(db: &Path, time_ms: i64) -> i64 {
    let mut c = open(db);
    let page_size: u64 = c
        .query_row("PRAGMA page_size", [], |r| r.get(0))
        .expect("page size");
    let _: i64 = c
        .query_row(
            &format!("PRAGMA max_page_count = {}", CAP / page_size),
            [],
            |r| r.get(0),
        )
        .expect("cap our connection");
    let mut n = 0;
    // Large rows in batches first, then single small rows, so that we stop right at
    // the brim (SQLITE_FULL rolls back its whole transaction).
    for (size, batch) in [(2000, 50), (200, 10), (20, 1)] {
        let filler = "f".repeat(size);
        loop {
            let tx = c.transaction().expect("filler transaction");
            let mut r = Ok(0);
            for i in 0..batch {
                r = tx.execute(
                    "INSERT INTO audit_events (time_ms, request_id, source, operation, bucket, \
                     status, client_ip, outcome) VALUES (?1, ?2, 'none', 'Filler', 'filler', 200, \
                     '127.0.0.1', 'ok')",
                    params![time_ms, format!("filler-{n}-{i}-{filler}")],
                );
                if r.is_err() {
                    break;
                }
            }
            match r.and_then(|_| tx.commit()) {
                Ok(()) => n += batch,
                Err(e) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull) => break,
                Err(e) => panic!("insert filler: {e}"),
            }
        }
    }
    n
}

fn rows_for(db: &Path, key: &str) -> i64 {
    open(db)
        .query_row(
            "SELECT count(*) FROM audit_events WHERE object_key = ?1",
            [key],
            |r| r.get(0),
        )
        .expect("count rows")
}

async fn put(h: &Harness, ak: &str, sk: &str, key: &str) {
    h.client(ak, sk)
        .put_object()
        .bucket(BUCKET)
        .key(key)
        .body(b"audited".to_vec().into())
        .send()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "PUT {key} while the audit log is full: {}",
                crate::common::clients::describe(&e)
            )
        });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_database_full_drops_and_counts_rows_keeps_s3_flowing_and_recovers_after_retention() {
    let h = Harness::start_with(UpstreamKind::S3sFs, |c| {
        c.audit.max_db_bytes = CAP;
        c.audit.retention = Duration::from_secs(3600);
    })
    .await
    .expect("s3s-fs always starts");
    let (ak, sk) = h.credential(vec![scope(BUCKET, Access::ReadWrite)]);
    let db = h.db_path().to_path_buf();

    // Rows the proxy writes while there is room.
    put(&h, &ak, &sk, "before-full").await;
    eventually(Duration::from_secs(3), "the first row is written", || {
        let db = db.clone();
        async move { rows_for(&db, "before-full") == 1 }
    })
    .await;

    // Full of rows still inside retention: nothing can be pruned.
    let fillers = fill_to_cap(&db, now_ms());
    assert!(fillers > 0);
    let (dropped0, written0) = (h.metric(DROPPED, &[]), h.metric(WRITTEN, &[]));
    for i in 0..5 {
        put(&h, &ak, &sk, &format!("while-full-{i}")).await;
    }
    eventually(
        Duration::from_secs(3),
        "the five rows are dropped and counted",
        || async { h.metric(DROPPED, &[]) - dropped0 >= 5.0 },
    )
    .await;
    assert_eq!(
        h.metric(WRITTEN, &[]),
        written0,
        "nothing was written while full"
    );
    assert_eq!(rows_for(&db, "while-full-0"), 0);
    assert!(h.metric("stowage_audit_write_errors_total", &[]) >= 1.0);
    // Credential writes are not capped (they have their own connection).
    h.credential(vec![scope(BUCKET, Access::ReadOnly)]);

    // Time passes: the filler rows are now past retention.
    let aged = open(&db)
        .execute(
            "UPDATE audit_events SET time_ms = ?1 WHERE operation = 'Filler'",
            [now_ms() - 2 * 3600 * 1000],
        )
        .expect("age the filler rows");
    assert_eq!(i64::try_from(aged).expect("count"), fillers);

    // The next full batch prunes them, and writing resumes.
    let mut i = 0;
    eventually(
        Duration::from_secs(5),
        "rows are written again after pruning",
        || {
            i += 1;
            let key = format!("after-prune-{i}");
            let (h, ak, sk, db) = (&h, ak.clone(), sk.clone(), db.clone());
            async move {
                put(h, &ak, &sk, &key).await;
                tokio::time::sleep(Duration::from_millis(300)).await;
                rows_for(&db, &key) == 1
            }
        },
    )
    .await;
    let left: i64 = open(&db)
        .query_row(
            "SELECT count(*) FROM audit_events WHERE operation = 'Filler'",
            [],
            |r| r.get(0),
        )
        .expect("count fillers");
    assert_eq!(left, 0, "retention pruned the aged rows");
    assert!(h.metric(WRITTEN, &[]) > written0);
    assert_eq!(
        rows_for(&db, "before-full"),
        1,
        "rows inside retention stay"
    );
    h.shutdown().await;
}
