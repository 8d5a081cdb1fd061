//! Proxied vs direct, in one run: the same aws-sdk-s3 client code drives the embedded
//! s3s-fs upstream directly (with the admin key) and through Stowage (with a virtual
//! credential), interleaved case by case, at a fixed concurrency. Prints throughput,
//! p50/p99 and the ratio proxied/direct.
//!
//! Run: `cargo bench --bench proxy_ratio` (`STOWAGE_BENCH_SECS` per case, default 3;
//! `STOWAGE_BENCH_CONCURRENCY`, default 16). In test mode (`cargo test --benches`) it
//! runs each case for a fraction of a second as a smoke test.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_s3::Client;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::primitives::ByteStream;
use stowage::config::{Backend, Config};
use stowage::credentials::model::{Access, Scope};
use stowage::credentials::sqlite::NewCredential;
use stowage::quickstart::upstream::spawn_fs_upstream;
use stowage::secret::{RootKey, SecretKey};

const BUCKET: &str = "bench";
const ADMIN_AK: &str = "BENCHADMINACCESSKEY0";
const ADMIN_SK: &str = "benchadminsecretbenchadminsecretbench000";

fn client(endpoint: &str, ak: &str, sk: &str) -> Client {
    let conf = aws_sdk_s3::config::Builder::new()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(ak, sk, None, None, "bench"))
        .force_path_style(true)
        .build();
    Client::from_conf(conf)
}

#[derive(Clone, Copy)]
enum Case {
    Get1K,
    Put1K,
    Get1M,
    Head,
}

impl Case {
    fn name(self) -> &'static str {
        match self {
            Self::Get1K => "GetObject 1 KiB",
            Self::Put1K => "PutObject 1 KiB",
            Self::Get1M => "GetObject 1 MiB",
            Self::Head => "HeadObject",
        }
    }

    async fn once(self, c: &Client, n: usize) {
        let r = match self {
            Self::Get1K | Self::Get1M => {
                let key = if matches!(self, Self::Get1K) {
                    "k1k"
                } else {
                    "k1m"
                };
                let out = c.get_object().bucket(BUCKET).key(key).send().await;
                match out {
                    Ok(o) => o
                        .body
                        .collect()
                        .await
                        .map(|_| ())
                        .map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                }
            }
            Self::Put1K => c
                .put_object()
                .bucket(BUCKET)
                .key(format!("put/{}", n % 512))
                .body(ByteStream::from(vec![7_u8; 1024]))
                .send()
                .await
                .map(|_| ())
                .map_err(|e| e.to_string()),
            Self::Head => c
                .head_object()
                .bucket(BUCKET)
                .key("k1k")
                .send()
                .await
                .map(|_| ())
                .map_err(|e| e.to_string()),
        };
        if let Err(e) = r {
            panic!("{} failed: {e}", self.name());
        }
    }
}

struct Stats {
    ops_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
}

async fn run(case: Case, c: &Client, concurrency: usize, dur: Duration) -> Stats {
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..concurrency {
        let (c, stop) = (c.clone(), Arc::clone(&stop));
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut n = w;
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                case.once(&c, n).await;
                lat.push(t.elapsed());
                n += concurrency;
            }
            lat
        }));
    }
    tokio::time::sleep(dur).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("worker"));
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    Stats {
        ops_per_sec: all.len() as f64 / elapsed,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
    }
}

#[tokio::main]
async fn main() {
    let smoke = std::env::args().all(|a| a != "--bench");
    let secs: f64 = std::env::var("STOWAGE_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if smoke { 0.2 } else { 3.0 });
    let concurrency: usize = std::env::var("STOWAGE_BENCH_CONCURRENCY")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(16);
    let dur = Duration::from_secs_f64(secs);

    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("objects").join(BUCKET)).expect("bucket");
    let up = spawn_fs_upstream(
        &dir.path().join("objects"),
        "127.0.0.1:0".parse().unwrap(),
        ADMIN_AK,
        ADMIN_SK,
    )
    .await
    .expect("upstream");
    let mut config = Config::default();
    config.s3_proxy.listen = "127.0.0.1:0".parse().unwrap();
    config.admin.listen = "127.0.0.1:0".parse().unwrap();
    config.database.path = dir.path().join("stowage.db");
    config.database.secret_key_file = dir.path().join("stowage.key");
    config.log.level = "warn".into();
    config.server.drain_delay = std::time::Duration::ZERO;
    config.backends = vec![Backend {
        id: "local".into(),
        endpoint: up.endpoint().parse().unwrap(),
        region: "us-east-1".into(),
        access_key_id: ADMIN_AK.into(),
        secret_access_key: SecretKey::new(ADMIN_SK),
    }];
    let running = stowage::app::start(&config, RootKey::from_bytes(rand::random()))
        .await
        .expect("proxy");
    let (ak, sk) = running
        .store
        .create_credential(NewCredential {
            backend: "local".into(),
            scopes: vec![Scope {
                bucket: BUCKET.into(),
                access: Access::ReadWrite,
                prefix: None,
            }],
            expires_at: None,
            description: "bench".into(),
            enabled: true,
        })
        .expect("credential");
    running.store.reload_into(&running.cache).expect("reload");

    let direct = client(&up.endpoint(), ADMIN_AK, ADMIN_SK);
    let proxied = client(&format!("http://{}", running.s3_addr), &ak, sk.expose());
    for (key, size) in [("k1k", 1024), ("k1m", 1024 * 1024)] {
        direct
            .put_object()
            .bucket(BUCKET)
            .key(key)
            .body(ByteStream::from(vec![1_u8; size]))
            .send()
            .await
            .expect("seed");
    }

    println!(
        "concurrency {concurrency}, {secs} s per case, client + proxy + upstream on this machine\n"
    );
    println!(
        "{:<18} {:>12} {:>12} {:>8} {:>10} {:>10} {:>10} {:>10}",
        "case", "direct op/s", "proxy op/s", "ratio", "dir p50", "prx p50", "dir p99", "prx p99"
    );
    for case in [Case::Get1K, Case::Head, Case::Put1K, Case::Get1M] {
        let d = run(case, &direct, concurrency, dur).await;
        let p = run(case, &proxied, concurrency, dur).await;
        println!(
            "{:<18} {:>12.0} {:>12.0} {:>7.2}x {:>8.2}ms {:>8.2}ms {:>8.2}ms {:>8.2}ms",
            case.name(),
            d.ops_per_sec,
            p.ops_per_sec,
            p.ops_per_sec / d.ops_per_sec,
            d.p50_ms,
            p.p50_ms,
            d.p99_ms,
            p.p99_ms
        );
    }
    running.shutdown().await;
}
