//! Online root-key rotation end to end: `stowage key rotate` (the real binary) while a
//! proxy started with the old key serves aws-sdk-s3 traffic, the restart with the new
//! key, the old key failing closed, and rotations that do not complete.

mod common;

use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use common::{BUCKET, Harness, UpstreamKind, pattern, scope};
use stowage::credentials::Access;
use stowage::credentials::cache::SourceKind;
use stowage::credentials::seal::load_key_file;
use stowage::credentials::sqlite::{
    NewCredential, SqliteStore, StoreError, generate_access_key_id, generate_secret,
};
use stowage::secret::RootKey;

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("capture").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

static CAPTURE: OnceLock<Capture> = OnceLock::new();

fn logs() -> String {
    let c = CAPTURE.get_or_init(|| {
        let c = Capture::default();
        let w = c.clone();
        let _ = tracing_subscriber::fmt()
            .with_env_filter("info")
            .with_ansi(false)
            .with_writer(move || w.clone())
            .try_init();
        c
    });
    String::from_utf8_lossy(&c.0.lock().expect("capture")).into_owned()
}

async fn start() -> Harness {
    logs();
    Harness::start_with(UpstreamKind::S3sFs, |c| {
        c.s3_proxy.credential_poll_interval = Duration::from_millis(100);
    })
    .await
    .expect("harness")
}

fn stowage(args: &[&str], config: &Path, root_hex: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_stowage"))
        .args(args)
        .arg("--config")
        .arg(config)
        .env("STOWAGE_SECRET_KEY", root_hex)
        .output()
        .expect("stowage runs")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// PUT then GET one object with this key pair; the error text on failure.
async fn round_trip(h: &Harness, ak: &str, sk: &str, key: &str) -> Result<(), String> {
    let c = h.client(ak, sk);
    let body = pattern(2048, key.len() as u8);
    c.put_object()
        .bucket(BUCKET)
        .key(key)
        .body(ByteStream::from(body.clone()))
        .send()
        .await
        .map_err(|e| format!("put {key}: {}", common::clients::describe(&e)))?;
    let got = c
        .get_object()
        .bucket(BUCKET)
        .key(key)
        .send()
        .await
        .map_err(|e| format!("get {key}: {}", common::clients::describe(&e)))?;
    let bytes = got
        .body
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_vec();
    if bytes == body {
        Ok(())
    } else {
        Err(format!("{key}: wrong bytes"))
    }
}

/// Three clients doing PUT+GET in a loop until stopped; returns (ok count, failures).
struct Traffic {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicUsize>,
    failures: Arc<Mutex<Vec<String>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Traffic {
    fn start(h: &Arc<Harness>, creds: &[(String, String)]) -> Self {
        let (stop, ok) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicUsize::new(0)),
        );
        let failures = Arc::new(Mutex::new(Vec::new()));
        let tasks = creds
            .iter()
            .enumerate()
            .map(|(t, (ak, sk))| {
                let (h, ak, sk) = (Arc::clone(h), ak.clone(), sk.clone());
                let (stop, ok, failures) = (stop.clone(), ok.clone(), failures.clone());
                tokio::spawn(async move {
                    let mut i = 0;
                    while !stop.load(Ordering::SeqCst) {
                        match round_trip(&h, &ak, &sk, &format!("t{t}/{i}")).await {
                            Ok(()) => ok.fetch_add(1, Ordering::SeqCst),
                            Err(e) => {
                                failures.lock().expect("failures").push(e);
                                0
                            }
                        };
                        i += 1;
                    }
                })
            })
            .collect();
        Self {
            stop,
            ok,
            failures,
            tasks,
        }
    }

    async fn finish(self) -> (usize, Vec<String>) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.tasks {
            t.await.expect("traffic task");
        }
        let failures = self.failures.lock().expect("failures").clone();
        (self.ok.load(Ordering::SeqCst), failures)
    }
}

fn bulk_credentials(h: &Harness, n: usize) {
    let rows = (0..n).map(|_| {
        let req = NewCredential {
            backend: common::BACKEND.into(),
            scopes: vec![scope(BUCKET, Access::ReadOnly)],
            expires_at: None,
            description: "bulk".into(),
            enabled: true,
        };
        (generate_access_key_id(), generate_secret(), req)
    });
    h.store()
        .insert_many_with_secrets(rows)
        .expect("bulk insert");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_under_traffic_keeps_the_old_key_proxy_serving_and_a_restart_with_the_new_key_works()
 {
    let h = start().await;
    bulk_credentials(&h, 2_000);
    let creds: Vec<_> = (0..3)
        .map(|_| h.bucket_credential(Access::ReadWrite))
        .collect();
    let total = h.running().cache.len(SourceKind::Sqlite);
    assert_eq!(total, 2_003);
    let (old_hex, config) = (h.root_key_hex(), h.write_cli_config());
    let new_key_file = h.temp_dir().join("keys/new.key");
    let h = Arc::new(h);
    let traffic = Traffic::start(&h, &creds);
    tokio::time::sleep(Duration::from_millis(300)).await;

    let out = Command::new(env!("CARGO_BIN_EXE_stowage"))
        .args(["key", "generate", "--out"])
        .arg(&new_key_file)
        .output()
        .expect("generate");
    assert!(out.status.success(), "{}", text(&out));
    let mode = std::fs::metadata(&new_key_file)
        .expect("key file")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let new_key = load_key_file(&new_key_file).expect("new key");
    let out = stowage(
        &[
            "key",
            "rotate",
            "--new-key-file",
            &new_key_file.display().to_string(),
        ],
        &config,
        &old_hex,
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("re-sealed 2003 secret(s)"),
        "{}",
        text(&out)
    );
    // Long enough for the old-key proxy to re-read every re-sealed row (100 ms polls).
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let (ok, failures) = traffic.finish().await;
    assert!(
        failures.is_empty(),
        "requests failed during the rotation: {failures:?}"
    );
    assert!(ok >= 6, "only {ok} round trips");
    let mut h = Arc::into_inner(h).expect("traffic finished");
    assert_eq!(
        h.running().cache.len(SourceKind::Sqlite),
        total,
        "no credential was dropped"
    );

    // Until restarted, the old-key proxy seals nothing, and no new process may start
    // with the old key.
    let err = h
        .store()
        .rotate_secret(&creds[0].0)
        .expect_err("stale key seals nothing");
    assert!(matches!(err, StoreError::StaleRootKey { .. }), "{err}");
    let out = stowage(&["credentials", "list"], &config, &old_hex);
    assert!(!out.status.success());
    assert!(text(&out).contains("rotated away"), "{}", text(&out));

    // Restart with the new key: every credential and every object still works.
    h.restart_with_key(*new_key.expose())
        .await
        .expect("restart with the new key");
    assert_eq!(h.running().cache.len(SourceKind::Sqlite), total);
    for (i, (ak, sk)) in creds.iter().enumerate() {
        round_trip(&h, ak, sk, &format!("after/{i}"))
            .await
            .expect("after restart");
        let got = h
            .client(ak, sk)
            .get_object()
            .bucket(BUCKET)
            .key(format!("t{i}/0"))
            .send()
            .await;
        assert!(
            got.is_ok(),
            "an object written before the rotation is readable"
        );
    }
    // The old key now fails closed with the clear message.
    let out = stowage(&["credentials", "list"], &config, &old_hex);
    assert!(!out.status.success());
    assert!(text(&out).contains("does not match"), "{}", text(&out));
    let err =
        SqliteStore::open(h.db_path(), RootKey::from_bytes([0; 32])).expect_err("a random key");
    assert!(matches!(err, StoreError::RootKeyMismatch { .. }));
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_new_key_process_retires_the_old_key_and_the_old_key_proxy_fails_closed() {
    let mut h = start().await;
    let (ak, sk) = h.bucket_credential(Access::ReadWrite);
    round_trip(&h, &ak, &sk, "before").await.expect("before");
    let new_key = [42u8; 32];
    h.second_store()
        .rotate_root_key(&RootKey::from_bytes(new_key))
        .expect("rotate");
    tokio::time::sleep(Duration::from_millis(500)).await;
    round_trip(&h, &ak, &sk, "between")
        .await
        .expect("the old-key proxy still serves");

    // A new-key process (here: rotate-secret) opens the database and retires the old key.
    let new_process =
        SqliteStore::open(h.db_path(), RootKey::from_bytes(new_key)).expect("new key");
    let fresh = new_process.rotate_secret(&ak).expect("rotate-secret");
    let deadline = Instant::now() + Duration::from_secs(10);
    while h.running().cache.len(SourceKind::Sqlite) > 0 {
        assert!(
            Instant::now() < deadline,
            "the old-key proxy kept serving retired rows"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for secret in [sk.as_str(), fresh.expose()] {
        let err = round_trip(&h, &ak, secret, "after")
            .await
            .expect_err("fails closed");
        assert!(err.contains("InvalidAccessKeyId"), "{err}");
    }
    assert!(
        logs().contains("root key is stale"),
        "the stale key is logged"
    );
    assert!(logs().contains("retired the previous root key"));

    h.restart_with_key(new_key).await.expect("restart");
    round_trip(&h, &ak, fresh.expose(), "restarted")
        .await
        .expect("new secret works");
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_that_fails_midway_changes_nothing_and_the_old_key_keeps_working() {
    let h = start().await;
    bulk_credentials(&h, 50);
    let (ak, sk) = h.bucket_credential(Access::ReadWrite);
    // A row the old key cannot open: the rotation must stop there and roll back.
    let (bad, _) = h.bucket_credential(Access::ReadOnly);
    let conn = rusqlite::Connection::open(h.db_path()).expect("db");
    conn.execute(
        "UPDATE credentials SET secret_sealed = x'0100' WHERE access_key_id = ?1",
        [&bad],
    )
    .expect("corrupt one row");
    let config = h.write_cli_config();
    let key_file = h.temp_dir().join("new.key");
    let mut f = std::fs::File::create(&key_file).expect("key file");
    f.write_all("ab".repeat(32).as_bytes()).expect("write");
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let args = [
        "key",
        "rotate",
        "--new-key-file",
        key_file.to_str().expect("utf-8"),
    ];
    let out = stowage(&args, &config, &h.root_key_hex());
    assert!(!out.status.success(), "a group-readable new key is refused");
    assert!(text(&out).contains("chmod 600"), "{}", text(&out));
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let out = stowage(&args, &config, &h.root_key_hex());
    assert!(!out.status.success());
    let said = text(&out);
    assert!(
        said.contains(&bad) && said.contains("nothing was changed"),
        "{said}"
    );
    round_trip(&h, &ak, &sk, "still")
        .await
        .expect("the old key keeps working");
    let reopened = SqliteStore::open(
        h.db_path(),
        RootKey::from_bytes(
            hex::decode(h.root_key_hex())
                .expect("hex")
                .try_into()
                .expect("32 bytes"),
        ),
    )
    .expect("the old key still opens the database");
    assert_eq!(
        reopened
            .get_credential(&ak)
            .expect("read")
            .expect("row")
            .secret
            .expose(),
        sk
    );
    h.shutdown().await;
}
