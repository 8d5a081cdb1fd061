//! The audit log end to end: the real aws-sdk-s3 client → the proxy → s3s-fs, then the
//! rows as the admin API (`AuditLog::query`) and `stowage audit export` see them.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use common::{BUCKET, Harness, UpstreamKind, clients, pattern};
use stowage::audit::{AuditFilter, AuditRecord, AuditSource, Outcome};
use stowage::credentials::Access;
use stowage::credentials::sqlite::NewCredential;

/// Every row the proxy has written so far, oldest first, once at least `n` exist.
async fn rows_when(h: &Harness, n: usize) -> Vec<AuditRecord> {
    let audit = h.running().audit.clone().expect("audit is on by default");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut rows = audit.query(&AuditFilter::default()).expect("query");
        if rows.len() >= n {
            rows.reverse();
            return rows;
        }
        assert!(
            Instant::now() < deadline,
            "only {} audit rows: {rows:?}",
            rows.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_a_denial_and_errors_each_leave_one_row_and_reads_leave_none_at_sample_zero() {
    let h = Harness::start(UpstreamKind::S3sFs).await.expect("harness");
    let (rw_ak, rw_sk) = h.bucket_credential(Access::ReadWrite);
    let (ro_ak, ro_sk) = h.bucket_credential(Access::ReadOnly);
    let rw = h.client(&rw_ak, &rw_sk);
    let body = pattern(12_345, 1);
    rw.put_object()
        .bucket(BUCKET)
        .key("dir/audited.bin")
        .body(ByteStream::from(body.clone()))
        .send()
        .await
        .expect("put");
    // Reads at sample 0: never a row.
    let got = rw
        .get_object()
        .bucket(BUCKET)
        .key("dir/audited.bin")
        .send()
        .await
        .expect("get");
    assert_eq!(got.body.collect().await.expect("body").to_vec(), body);
    rw.list_objects_v2()
        .bucket(BUCKET)
        .send()
        .await
        .expect("list");
    // A denial: the read-only key writes.
    let denied = h
        .client(&ro_ak, &ro_sk)
        .put_object()
        .bucket(BUCKET)
        .key("nope")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .expect_err("read-only cannot write");
    assert_eq!(clients::status(&denied), Some(403));
    // A client error: a missing key (a failed read is recorded).
    let missing = rw
        .get_object()
        .bucket(BUCKET)
        .key("missing")
        .send()
        .await
        .expect_err("404");
    assert_eq!(clients::status(&missing), Some(404));
    // A wrong secret for a known key: recorded under that key, unverified.
    let forged = h.client(&rw_ak, "not-the-secret-0000000000000000000000000");
    let bad = forged
        .head_bucket()
        .bucket(BUCKET)
        .send()
        .await
        .expect_err("bad signature");
    assert_eq!(clients::status(&bad), Some(403));

    let rows = rows_when(&h, 4).await;
    assert_eq!(rows.len(), 4, "{rows:#?}");
    let (put, deny, miss, forged_row) = (&rows[0], &rows[1], &rows[2], &rows[3]);
    assert_eq!(put.operation, "PutObject");
    assert_eq!(put.access_key.as_deref(), Some(rw_ak.as_str()));
    assert_eq!(put.source, AuditSource::Sqlite.as_str());
    assert_eq!(
        (put.bucket.as_deref(), put.key.as_deref()),
        (Some(BUCKET), Some("dir/audited.bin"))
    );
    assert_eq!(
        (put.status, put.outcome.as_str()),
        (200, Outcome::Ok.as_str())
    );
    assert_eq!(put.bytes_in, 12_345);
    assert_eq!(put.client_ip, "127.0.0.1");
    assert_eq!(put.request_id.len(), 16);
    assert_eq!(deny.operation, "PutObject");
    assert_eq!(deny.access_key.as_deref(), Some(ro_ak.as_str()));
    assert_eq!((deny.status, deny.outcome.as_str()), (403, "denied"));
    assert_eq!(deny.bytes_in, 0, "a denied body never reaches the upstream");
    assert_eq!((miss.operation.as_str(), miss.status), ("GetObject", 404));
    assert_eq!(miss.outcome, "client_error");
    assert_eq!(forged_row.operation, "HeadBucket");
    assert_eq!(forged_row.access_key.as_deref(), Some(rw_ak.as_str()));
    assert_eq!(
        (forged_row.source.as_str(), forged_row.outcome.as_str()),
        ("none", "denied")
    );

    // A server error: a credential whose backend is not configured (503).
    let (ghost_ak, ghost_sk) = h
        .store()
        .create_credential(NewCredential {
            backend: "ghost".into(),
            scopes: vec![common::scope(BUCKET, Access::ReadWrite)],
            expires_at: None,
            description: String::new(),
            enabled: true,
        })
        .expect("ghost credential");
    h.reload();
    let down = h
        .client(&ghost_ak, ghost_sk.expose())
        .head_object()
        .bucket(BUCKET)
        .key("dir/audited.bin")
        .send()
        .await
        .expect_err("no such backend");
    assert_eq!(clients::status(&down), Some(503));
    let rows = rows_when(&h, 5).await;
    assert_eq!(
        (rows[4].operation.as_str(), rows[4].outcome.as_str()),
        ("HeadObject", "server_error")
    );

    // No row carries a secret or a signature.
    let dump = format!("{rows:?}");
    for secret in [rw_sk.as_str(), ro_sk.as_str(), h.admin_secret()] {
        assert!(!dump.contains(secret));
    }
    assert!(!dump.contains("Signature"), "{dump}");
    assert_eq!(h.metric("stowage_audit_dropped_total", &[]), 0.0);
    assert!(h.metric("stowage_audit_written_total", &[]) >= 5.0);

    // The export CLI, on the same file, while the proxy still runs.
    let config = h.write_cli_config();
    let out = Command::new(env!("CARGO_BIN_EXE_stowage"))
        .args(["audit", "export", "--config"])
        .arg(&config)
        .args(["--since", "1h", "--format", "csv"])
        .env_remove("STOWAGE_SECRET_KEY")
        .output()
        .expect("export runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let csv = String::from_utf8(out.stdout).expect("utf-8");
    let lines: Vec<&str> = csv.split_terminator("\r\n").collect();
    assert_eq!(lines.len(), 6, "{csv}");
    assert!(lines[0].starts_with("time,request_id,access_key,source,operation"));
    assert!(
        lines[1].contains(&format!(
            ",{rw_ak},sqlite,PutObject,{BUCKET},dir/audited.bin,200,12345,"
        )),
        "{}",
        lines[1]
    );
    let jsonl = Command::new(env!("CARGO_BIN_EXE_stowage"))
        .args(["audit", "export", "--config"])
        .arg(&config)
        .args(["--since", "1h", "--format", "jsonl"])
        .output()
        .expect("export runs");
    let text = String::from_utf8(jsonl.stdout).expect("utf-8");
    let first: serde_json::Value =
        serde_json::from_str(text.lines().next().expect("a line")).expect("json");
    assert_eq!(first["operation"], "PutObject");
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_sample_one_successful_reads_are_recorded_with_the_bytes_sent() {
    let h = Harness::start_with(UpstreamKind::S3sFs, |c| {
        c.audit.sample_success_reads = stowage::config::SampleRate(1.0);
    })
    .await
    .expect("harness");
    let (ak, sk) = h.bucket_credential(Access::ReadOnly);
    h.put_upstream(BUCKET, "big", &pattern(300_000, 2)).await;
    let got = h
        .client(&ak, &sk)
        .get_object()
        .bucket(BUCKET)
        .key("big")
        .send()
        .await
        .expect("get");
    assert_eq!(
        got.body.collect().await.expect("body").to_vec().len(),
        300_000
    );
    let rows = rows_when(&h, 1).await;
    let get = rows
        .iter()
        .find(|r| r.operation == "GetObject")
        .expect("the GET row");
    assert_eq!((get.bytes_out, get.outcome.as_str()), (300_000, "ok"));
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_audit_disabled_nothing_is_recorded() {
    let h = Harness::start_with(UpstreamKind::S3sFs, |c| c.audit.enabled = false)
        .await
        .expect("harness");
    assert!(h.running().audit.is_none());
    let (ak, sk) = h.bucket_credential(Access::ReadWrite);
    h.client(&ak, &sk)
        .put_object()
        .bucket(BUCKET)
        .key("k")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .expect("put");
    let conn = rusqlite::Connection::open(h.db_path()).expect("db");
    let n: i64 = conn
        .query_row("SELECT count(*) FROM audit_events", [], |r| r.get(0))
        .expect("count");
    assert_eq!(n, 0);
    h.shutdown().await;
}
