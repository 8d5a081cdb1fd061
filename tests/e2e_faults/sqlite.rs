//! The proxy's SQLite database locked by another writer (`BEGIN EXCLUSIVE` held by a
//! second connection, as a long `sqlite3` session or a stuck CLI would) or turned
//! unwritable under it (`chattr +i` on the database and its WAL: root bypasses
//! permission bits but not the immutable flag, and writes through the proxy's already
//! open descriptors fail with EPERM, which SQLite reports as an I/O error). In WAL mode
//! neither fault stops readers, so the S3 path and the credential poller keep working;
//! admin writes get a 503 `database_unavailable` and audit rows wait in the queue.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use rusqlite::Connection;
use serde_json::{Value, json};
use stowage::credentials::model::Access;
use stowage::credentials::sqlite::NewCredential;
use stowage::secret::SecretKey;

use crate::common::{BACKEND, BUCKET, Harness, UpstreamKind, scope};
use crate::support::eventually;

const TOKEN: &str = "faults-admin-token-0c7d2e9a41b6";

async fn harness() -> Harness {
    Harness::start_with(UpstreamKind::S3sFs, |c| {
        c.admin.token = Some(SecretKey::new(TOKEN));
        c.s3_proxy.credential_poll_interval = Duration::from_millis(100);
    })
    .await
    .expect("s3s-fs always starts")
}

/// `POST /api/v1/credentials` on the admin listener: (status, Retry-After, JSON).
async fn admin_create(h: &Harness) -> (StatusCode, Option<String>, Value) {
    let r = reqwest::Client::new()
        .post(format!("http://{}/api/v1/credentials", h.admin_addr))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body(
            json!({"backend": BACKEND, "scopes": [{"bucket": BUCKET, "access": "read-write"}]})
                .to_string(),
        )
        .send()
        .await
        .expect("the admin listener answers");
    let status = r.status();
    let retry = r
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let text = r.text().await.expect("admin body");
    (
        status,
        retry,
        serde_json::from_str(&text).unwrap_or(Value::Null),
    )
}

/// PUT then GET `key` through the proxy with a credential the proxy has cached.
async fn s3_round_trip(h: &Harness, ak: &str, sk: &str, key: &str) {
    let c = h.client(ak, sk);
    c.put_object()
        .bucket(BUCKET)
        .key(key)
        .body(key.as_bytes().to_vec().into())
        .send()
        .await
        .unwrap_or_else(|e| panic!("PUT {key}: {}", crate::common::clients::describe(&e)));
    let got = c
        .get_object()
        .bucket(BUCKET)
        .key(key)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {key}: {}", crate::common::clients::describe(&e)))
        .body
        .collect()
        .await
        .expect("body")
        .to_vec();
    assert_eq!(got, key.as_bytes());
}

/// Audit rows for `key`, read with a connection of our own.
fn audit_rows_for(db: &Path, key: &str) -> i64 {
    let c = Connection::open(db).expect("open the database");
    c.busy_timeout(Duration::from_secs(2))
        .expect("busy timeout");
    c.query_row(
        "SELECT count(*) FROM audit_events WHERE object_key = ?1",
        [key],
        |r| r.get(0),
    )
    .unwrap_or(0)
}

/// The credential `ak` answers through the proxy.
async fn works(h: &Harness, ak: &str, sk: &str) -> bool {
    h.client(ak, sk)
        .list_objects_v2()
        .bucket(BUCKET)
        .send()
        .await
        .is_ok()
}

/// Another connection holding the write lock until `release` is called.
struct Locker {
    release: mpsc::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl Locker {
    fn hold(db: &Path) -> Self {
        let (locked_tx, locked_rx) = mpsc::channel();
        let (release, release_rx) = mpsc::channel::<()>();
        let db = db.to_path_buf();
        let thread = std::thread::spawn(move || {
            let c = Connection::open(&db).expect("open the database");
            c.busy_timeout(Duration::from_secs(5))
                .expect("busy timeout");
            c.execute_batch("BEGIN EXCLUSIVE")
                .expect("take the write lock");
            locked_tx.send(()).expect("report the lock");
            let _ = release_rx.recv();
            c.execute_batch("COMMIT").expect("release the write lock");
        });
        locked_rx
            .recv_timeout(Duration::from_secs(6))
            .expect("the lock is taken");
        Self { release, thread }
    }

    fn release(self) {
        let _ = self.release.send(());
        self.thread.join().expect("locker thread");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_write_locked_keeps_s3_serving_and_admin_writes_get_503_until_released() {
    let h = harness().await;
    let (ak, sk) = h.credential(vec![scope(BUCKET, Access::ReadWrite)]);
    let lock = Locker::hold(h.db_path());

    // The S3 path never waits on SQLite: cached credentials serve at full speed.
    let t = Instant::now();
    s3_round_trip(&h, &ak, &sk, "during-lock").await;
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "took {:?}",
        t.elapsed()
    );

    // An admin write waits out the busy timeout (5 s), then says so, retryably.
    let t = Instant::now();
    let (status, retry, body) = admin_create(&h).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["code"], "database_unavailable", "{body}");
    assert_eq!(retry.as_deref(), Some("1"));
    let text = body.to_string().to_ascii_lowercase();
    assert!(!text.contains("sqlite") && !text.contains(".db"), "{text}");
    assert!(
        t.elapsed() < Duration::from_secs(8),
        "took {:?}",
        t.elapsed()
    );
    // Still serving while locked.
    assert!(works(&h, &ak, &sk).await);

    lock.release();
    let (status, _, body) = admin_create(&h).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (new_ak, new_sk) = (
        body["access_key_id"]
            .as_str()
            .expect("access key")
            .to_owned(),
        body["secret_access_key"]
            .as_str()
            .expect("secret")
            .to_owned(),
    );
    assert!(
        works(&h, &new_ak, &new_sk).await,
        "the credential made after the lock works"
    );
    // The audit row of the write made during the lock was kept and lands now.
    let db = h.db_path().to_path_buf();
    eventually(
        Duration::from_secs(5),
        "the audit row written after the lock",
        || {
            let db = db.clone();
            async move { audit_rows_for(&db, "during-lock") >= 1 }
        },
    )
    .await;
    h.shutdown().await;
}

/// `chattr +i` on the database and its WAL (never on `-shm`: it is memory-mapped, and
/// an immutable mapping would fault the whole process); undone on drop.
struct Immutable(Vec<PathBuf>);

impl Immutable {
    fn set(db: &Path) -> Option<Self> {
        let wal = PathBuf::from(format!("{}-wal", db.display()));
        let files = vec![db.to_path_buf(), wal];
        let ok = std::process::Command::new("chattr")
            .arg("+i")
            .args(&files)
            .status()
            .is_ok_and(|s| s.success());
        let guard = Self(files);
        if ok { Some(guard) } else { None }
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        let _ = std::process::Command::new("chattr")
            .arg("-i")
            .args(&self.0)
            .status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_unwritable_keeps_s3_serving_and_admin_writes_get_503_until_writable_again() {
    let h = harness().await;
    let (ak, sk) = h.credential(vec![scope(BUCKET, Access::ReadWrite)]);
    let Some(ro) = Immutable::set(h.db_path()) else {
        assert!(
            std::env::var_os("STOWAGE_REQUIRE_ROOT_FAULTS").is_none(),
            "chattr +i failed and STOWAGE_REQUIRE_ROOT_FAULTS is set"
        );
        eprintln!("READ-ONLY SQLITE CASE DID NOT RUN: chattr +i needs root (CAP_LINUX_IMMUTABLE)");
        return;
    };
    // What an operator's CLI would see: the write fails.
    let cli = h.second_store().create_credential(NewCredential {
        backend: BACKEND.to_owned(),
        scopes: vec![scope(BUCKET, Access::ReadOnly)],
        expires_at: None,
        description: "during read-only".to_owned(),
        enabled: true,
    });
    assert!(cli.is_err(), "a write to an immutable database fails");

    s3_round_trip(&h, &ak, &sk, "during-read-only").await;
    let t = Instant::now();
    let (status, retry, body) = admin_create(&h).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["code"], "database_unavailable", "{body}");
    assert_eq!(retry.as_deref(), Some("1"));
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "an I/O error is immediate: {:?}",
        t.elapsed()
    );
    // The poller keeps reading (WAL readers need no write), so nothing is dropped.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(works(&h, &ak, &sk).await, "cached credentials keep serving");

    drop(ro);
    let (status, _, body) = admin_create(&h).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // A CLI write after recovery reaches the running proxy through the change feed.
    let (cli_ak, cli_sk) = h
        .second_store()
        .create_credential(NewCredential {
            backend: BACKEND.to_owned(),
            scopes: vec![scope(BUCKET, Access::ReadOnly)],
            expires_at: None,
            description: "after read-only".to_owned(),
            enabled: true,
        })
        .expect("the database is writable again");
    let sk2 = cli_sk.expose().to_owned();
    eventually(
        Duration::from_secs(3),
        "the poller picks up the CLI credential",
        || {
            let (h, a, s) = (&h, cli_ak.clone(), sk2.clone());
            async move { works(h, &a, &s).await }
        },
    )
    .await;
    let db = h.db_path().to_path_buf();
    eventually(
        Duration::from_secs(5),
        "the audit row kept through the fault",
        || {
            let db = db.clone();
            async move { audit_rows_for(&db, "during-read-only") >= 1 }
        },
    )
    .await;
    h.shutdown().await;
}
