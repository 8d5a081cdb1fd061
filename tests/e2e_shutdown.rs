//! Graceful shutdown and start-up that waits on nothing external: an in-flight
//! download completing through `Running::shutdown`, `/readyz` turning 503 at once, new
//! connections refused after the drain delay, the audit row flushed; and the real
//! `stowage serve` binary starting with an unreachable backend and Kubernetes API,
//! then exiting cleanly on SIGTERM.

mod common;

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{BUCKET, Harness, UpstreamKind, pattern};
use stowage::config::SampleRate;
use stowage::credentials::Access;

async fn get(url: &str) -> (u16, String) {
    match reqwest::get(url).await {
        Ok(r) => {
            let status = r.status().as_u16();
            (status, r.text().await.unwrap_or_default())
        }
        Err(_) => (0, String::new()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_in_flight_at_shutdown_completes_and_its_audit_row_is_written() {
    const SIZE: usize = 24 * 1024 * 1024;
    const DRAIN: Duration = Duration::from_millis(1_000);
    let mut h = Harness::start_with(UpstreamKind::S3sFs, |c| {
        c.server.drain_delay = DRAIN;
        c.server.shutdown_timeout = Duration::from_secs(30);
        c.audit.sample_success_reads = SampleRate(1.0);
    })
    .await
    .expect("harness");
    let (ak, sk) = h.bucket_credential(Access::ReadOnly);
    let body = pattern(SIZE, 9);
    h.put_upstream(BUCKET, "big", &body).await;
    let resp = h
        .client(&ak, &sk)
        .get_object()
        .bucket(BUCKET)
        .key("big")
        .send()
        .await
        .expect("get");
    let mut stream = resp.body;
    let mut got = Vec::with_capacity(SIZE);
    got.extend_from_slice(&stream.next().await.expect("a first chunk").expect("chunk"));

    let (admin, s3, metrics) = (h.admin_addr, h.s3_addr, h.running().metrics.clone());
    let shutdown = h.begin_shutdown();
    let started = Instant::now();
    let readyz = format!("http://{admin}/readyz");
    loop {
        let (status, _) = get(&readyz).await;
        if status == 503 {
            break;
        }
        assert!(
            started.elapsed() < DRAIN / 4,
            "/readyz still {status} after shutdown began"
        );
    }
    // During the drain delay a new connection is still accepted and served.
    let fresh = h
        .client(&ak, &sk)
        .head_object()
        .bucket(BUCKET)
        .key("big")
        .send()
        .await;
    assert!(
        fresh.is_ok(),
        "a new connection during the drain delay is served"
    );
    assert!(
        started.elapsed() < DRAIN,
        "the drain check ran too late to mean anything"
    );

    // Read the rest slowly (about 3 s in all), checking once past the drain delay that
    // new connections are refused while this transfer is still in flight.
    let mut refused_checked = false;
    while let Some(chunk) = stream.next().await {
        got.extend_from_slice(&chunk.expect("the transfer is not cut"));
        let due = started + Duration::from_secs_f64(3.0 * got.len() as f64 / SIZE as f64);
        tokio::time::sleep_until(due.into()).await;
        if !refused_checked && started.elapsed() > DRAIN + Duration::from_millis(300) {
            let err = std::net::TcpStream::connect(s3).expect_err("the listener is closed");
            assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
            assert!(
                metrics.inflight.get() >= 1,
                "the download is still in flight"
            );
            refused_checked = true;
        }
    }
    assert!(refused_checked, "the transfer ended before the drain delay");
    assert_eq!(got.len(), SIZE);
    assert!(got == body, "the bytes arrived intact");
    tokio::time::timeout(Duration::from_secs(20), shutdown)
        .await
        .expect("shutdown finishes")
        .expect("shutdown task");

    let conn = stowage::audit::open_reader(h.db_path()).expect("audit reader");
    let (bytes_out, outcome): (i64, String) = conn
        .query_row(
            "SELECT bytes_out, outcome FROM audit_events WHERE operation = 'GetObject' \
             AND object_key = 'big' ORDER BY time_ms LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("the in-flight transfer's row was flushed at shutdown");
    assert_eq!((bytes_out, outcome.as_str()), (SIZE as i64, "ok"));
}

/// A loopback port with nothing listening on it.
fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a port")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_starts_with_backend_and_kubernetes_unreachable_and_exits_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (s3, admin, backend, kube) = (closed_port(), closed_port(), closed_port(), closed_port());
    std::fs::write(
        dir.path().join("kubeconfig"),
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: down\n  cluster:\n    server: http://127.0.0.1:{kube}\n\
             contexts:\n- name: down\n  context:\n    cluster: down\n    user: down\n\
             current-context: down\nusers:\n- name: down\n  user: {{}}\n"
        ),
    )
    .expect("kubeconfig");
    let secret = dir.path().join("backend.secret");
    std::fs::write(&secret, "backend-secret").expect("secret");
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let config = dir.path().join("stowage.toml");
    std::fs::write(
        &config,
        format!(
            "[s3_proxy]\nlisten = \"127.0.0.1:{s3}\"\n\n[s3_proxy.kubernetes]\nenabled = true\n\
             kubeconfig = \"kubeconfig\"\nready_timeout = \"60s\"\n\n\
             [admin]\nlisten = \"127.0.0.1:{admin}\"\n\n\
             [server]\ndrain_delay = \"300ms\"\nshutdown_timeout = \"5s\"\n\n\
             [[backends]]\nid = \"primary\"\nendpoint = \"http://127.0.0.1:{backend}\"\n\
             access_key_id = \"admin\"\nsecret_access_key_file = \"backend.secret\"\n"
        ),
    )
    .expect("config");
    let log = dir.path().join("serve.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_stowage"))
        .args(["serve", "--config"])
        .arg(&config)
        .env_remove("STOWAGE_SECRET_KEY")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("serve starts");

    let deadline = Instant::now() + Duration::from_secs(20);
    let (health, ready) = loop {
        let health = get(&format!("http://127.0.0.1:{admin}/healthz")).await;
        let ready = get(&format!("http://127.0.0.1:{admin}/readyz")).await;
        if health.0 == 200 && ready.1.contains("backend primary: unreachable") {
            break (health, ready);
        }
        if let Some(status) = child.try_wait().expect("wait") {
            panic!(
                "serve exited early ({status}): {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        assert!(
            Instant::now() < deadline,
            "no /healthz: {health:?} {ready:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(health.1, "ok\n");
    assert_eq!(
        ready.0, 503,
        "the Kubernetes source has not listed: {}",
        ready.1
    );
    // The S3 listener answers too (an unsigned request is refused, not dropped).
    let (status, _) = get(&format!("http://127.0.0.1:{s3}/{BUCKET}/k")).await;
    assert_eq!(status, 403);

    let sent = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(sent.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "serve did not exit after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let logs = std::fs::read_to_string(&log).expect("log");
    assert!(status.success(), "exit {status}: {logs}");
    for phase in [
        "backend is unreachable",
        "shutdown: /readyz is unready",
        "shutdown: listeners closed",
        "shutdown: connections drained",
        "audit log flushed and closed",
        "shutdown complete",
    ] {
        assert!(logs.contains(phase), "missing {phase:?} in {logs}");
    }
}
