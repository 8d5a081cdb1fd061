//! The soak: Garage and the release `stowage serve` as separate processes, mixed
//! aws-sdk-s3 traffic from a handful of workers, credential churn and quota churn
//! through the admin API, injected bad-signature and out-of-scope requests, and a
//! sample of the proxy's RSS, descriptors and threads every 5 s. At the end every
//! acknowledged write is read back through the proxy and directly from Garage.
//!
//! ```sh
//! scripts/soak --minutes 10          # builds the release binary, then runs this
//! ```
//!
//! Exits non-zero when any check fails: an error outside the injected classes, a quota
//! overshoot, a lost or corrupted acknowledged write, leaked descriptors, growing
//! memory, a secret in the proxy's log, or an unclean shutdown.

mod admin;
mod churn;
mod procs;
mod report;
mod s3;
mod sample;
mod state;
mod traffic;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use aws_sdk_s3::primitives::ByteStream;
use clap::Parser;
use tokio::sync::RwLock;

use crate::admin::Admin;
use crate::churn::{CredChurn, LOOSE_HEADROOM};
use crate::procs::{Garage, Proxy};
use crate::sample::Direct;
use crate::state::{Cred, Phase, Pool, Stats};
use crate::traffic::Ctx;

const BUCKET: &str = "soak";
const OTHER_BUCKET: &str = "soak-other";

#[derive(Parser, Debug)]
#[command(about = "Soak the stowage proxy against Garage with mixed SDK traffic and churn")]
pub struct Args {
    /// How long the traffic runs.
    #[arg(long, default_value_t = 10.0)]
    pub minutes: f64,
    /// Concurrent traffic workers.
    #[arg(long, default_value_t = 12)]
    pub workers: usize,
    /// Seconds between samples.
    #[arg(long, default_value_t = 5)]
    pub sample_secs: u64,
    /// The `stowage` binary (default: target/release/stowage beside this example).
    #[arg(long)]
    pub stowage_bin: Option<PathBuf>,
    /// The `garage` binary (default: `$GARAGE_BIN`, then `garage` on PATH).
    #[arg(long)]
    pub garage_bin: Option<PathBuf>,
    /// Keep the working directory (logs, databases) instead of deleting it.
    #[arg(long)]
    pub keep: bool,
}

fn stowage_bin(args: &Args) -> anyhow::Result<PathBuf> {
    let p = match &args.stowage_bin {
        Some(p) => p.clone(),
        None => {
            let exe = std::env::current_exe()?;
            // target/<profile>/examples/soak → target/release/stowage
            let target = exe
                .parent()
                .and_then(|p| p.parent())
                .and_then(|p| p.parent())
                .context("cannot locate the target directory")?;
            target.join("release").join("stowage")
        }
    };
    if !p.is_file() {
        bail!(
            "{} not found: run `cargo build --release --bin stowage` first (scripts/soak does)",
            p.display()
        );
    }
    Ok(p)
}

fn garage_bin(args: &Args) -> anyhow::Result<PathBuf> {
    if let Some(p) = args
        .garage_bin
        .clone()
        .or_else(|| std::env::var_os("GARAGE_BIN").map(PathBuf::from))
    {
        return Ok(p);
    }
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join("garage"))
                .find(|p| p.is_file())
        })
        .context("the soak needs Garage: no `garage` on PATH (cargo install garage --locked --version 2.5.0)")
}

#[tokio::main(flavor = "multi_thread", worker_threads = 4)]
async fn main() {
    let args = Args::parse();
    match run(&args).await {
        Ok(true) => std::process::exit(0),
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("soak: setup failed: {e:#}");
            std::process::exit(2);
        }
    }
}

/// Everything the run needs once both processes serve.
pub struct Setup {
    pub garage: Garage,
    pub proxy: Proxy,
    pub admin: Arc<Admin>,
    pub direct: Arc<Direct>,
    pub secrets: Arc<Mutex<Vec<String>>>,
}

async fn start(args: &Args, dir: &std::path::Path) -> anyhow::Result<Setup> {
    let garage = Garage::start(&garage_bin(args)?, dir).await?;
    let direct = Arc::new(Direct {
        client: s3::client(
            &garage.endpoint,
            &garage.access_key,
            &garage.secret_key,
            s3::http_client(),
        ),
    });
    for b in [BUCKET, OTHER_BUCKET] {
        direct
            .client
            .create_bucket()
            .bucket(b)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!(s3::failure(&e).text))
            .with_context(|| format!("create bucket {b} on Garage"))?;
    }
    direct
        .client
        .put_object()
        .bucket(OTHER_BUCKET)
        .key("seed")
        .body(ByteStream::from_static(b"another tenant's object"))
        .send()
        .await
        .map_err(|e| anyhow::anyhow!(s3::failure(&e).text))
        .context("seed object")?;
    let proxy = Proxy::start(&stowage_bin(args)?, dir, &garage).await?;
    let admin = Arc::new(Admin::new(&proxy.admin_base, &proxy.token));
    let secrets = Arc::new(Mutex::new(vec![
        garage.secret_key.clone(),
        proxy.token.clone(),
    ]));
    Ok(Setup {
        garage,
        proxy,
        admin,
        direct,
        secrets,
    })
}

/// Set the first (loose) quota and wait for the first scan to measure the bucket.
async fn first_quota(admin: &Admin) -> anyhow::Result<Phase> {
    admin
        .put_quota(BUCKET, LOOSE_HEADROOM, LOOSE_HEADROOM / 10 * 9)
        .await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !admin.usage(BUCKET).await?.known {
        if Instant::now() > deadline {
            bail!("the bucket was not scanned within 30 s of its first quota");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(Phase {
        hard: LOOSE_HEADROOM,
        tight: false,
    })
}

/// Garage keeps deleted blocks for a while, so a soak needs room: up to 2 GiB a minute
/// of traffic on an idle 2-core machine. Refuse to start rather than fill a shared disk.
fn check_free_space(dir: &std::path::Path, minutes: f64) -> anyhow::Result<()> {
    let out = std::process::Command::new("df")
        .args(["-Pk"])
        .arg(dir)
        .output()
        .context("run df")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let free_kib: u64 = text
        .lines()
        .nth(1)
        .and_then(|l| l.split_whitespace().nth(3)?.parse().ok())
        .context("cannot read df's answer")?;
    let need_kib = (minutes.max(1.0) * 2.0 * 1024.0 * 1024.0) as u64;
    if free_kib < need_kib {
        bail!(
            "{} has {} MiB free; a {minutes}-minute soak needs about {} MiB (set TMPDIR elsewhere)",
            dir.display(),
            free_kib / 1024,
            need_kib / 1024
        );
    }
    Ok(())
}

async fn run(args: &Args) -> anyhow::Result<bool> {
    let tmp = tempfile::Builder::new().prefix("stowage-soak-").tempdir()?;
    let dir = tmp.path().to_owned();
    if args.keep {
        println!("soak: working directory {} (kept)", dir.display());
    }
    check_free_space(&dir, args.minutes)?;
    let mut setup = start(args, &dir).await?;
    let phase = first_quota(&setup.admin).await?;
    let http = s3::http_client();
    let endpoint = setup.proxy.s3_endpoint.clone();
    let mk = |scope: &str| {
        let admin = Arc::clone(&setup.admin);
        let scope = scope.to_owned();
        async move { admin.create(&[(BUCKET, scope.as_str())]).await }
    };
    let (victim_ak, victim_sk) = mk("read-write").await?;
    let (ro_ak, ro_sk) = mk("read-only").await?;
    setup
        .secrets
        .lock()
        .expect("secrets")
        .extend([victim_sk.clone(), ro_sk.clone()]);
    let ctx = Arc::new(Ctx {
        bucket: BUCKET.into(),
        other_bucket: OTHER_BUCKET.into(),
        pool: Pool::default(),
        gate: Arc::new(RwLock::new(phase)),
        stats: Stats::default(),
        victim: s3::client(&endpoint, &victim_ak, &victim_sk, http.clone()),
        bad_signature: s3::client(&endpoint, &victim_ak, &"x".repeat(40), http.clone()),
        read_only: s3::client(&endpoint, &ro_ak, &ro_sk, http.clone()),
        http: reqwest::Client::new(),
        tmp: dir.clone(),
        stop: AtomicBool::new(false),
    });
    for g in 0..4 {
        let (ak, sk) = mk("read-write").await?;
        setup.secrets.lock().expect("secrets").push(sk.clone());
        let c = s3::client(&endpoint, &ak, &sk, http.clone());
        ctx.pool.push(Cred::new(ak, sk, g, c));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let baseline = sample::read_proc(setup.proxy.pid)?;
    println!(
        "soak: proxy pid {} ready; baseline rss={} KiB fds={} threads={}; {} workers for {} min",
        setup.proxy.pid,
        baseline.rss_kib,
        baseline.fds,
        baseline.threads,
        args.workers,
        args.minutes
    );
    println!(
        "soak: proxy {} admin {} garage {}; baseline descriptors: {}",
        setup.proxy.s3_endpoint,
        setup.proxy.admin_base,
        setup.garage.endpoint,
        sample::describe_fds(setup.proxy.pid)
    );

    let start = Instant::now();
    let workers: Vec<_> = (0..args.workers)
        .map(|i| tokio::spawn(traffic::run(Arc::clone(&ctx), i)))
        .collect();
    let churn = tokio::spawn(
        CredChurn {
            ctx: Arc::clone(&ctx),
            admin: Arc::clone(&setup.admin),
            endpoint: endpoint.clone(),
            http: http.clone(),
            secrets: Arc::clone(&setup.secrets),
            disabled: Vec::new(),
            next_generation: 100,
        }
        .run(),
    );
    let quota = tokio::spawn(churn::quota_churn(
        Arc::clone(&ctx),
        Arc::clone(&setup.admin),
        Arc::clone(&setup.direct),
    ));
    let sampler = tokio::spawn(sample::sampler(
        Arc::clone(&ctx),
        Arc::clone(&setup.admin),
        Arc::clone(&setup.direct),
        setup.proxy.pid,
        start,
        Duration::from_secs(args.sample_secs),
    ));

    tokio::time::sleep(Duration::from_secs_f64(args.minutes * 60.0)).await;
    ctx.stop.store(true, Ordering::SeqCst);
    let mut ledger = traffic::Ledger::new();
    for w in workers {
        ledger.extend(w.await.context("worker panicked")?);
    }
    let churned = churn.await.context("credential churn panicked")?;
    quota.await.context("quota churn panicked")?;
    let mut samples = sampler.await.context("sampler panicked")?;
    let traffic_secs = start.elapsed().as_secs_f64();
    let last = sample::take(&ctx, &setup.admin, &setup.direct, setup.proxy.pid, start).await?;
    sample::print(&last);
    samples.push(last);
    drop(churned);
    drop(http);

    let report = report::finish(report::Input {
        args,
        ctx,
        setup: &mut setup,
        ledger,
        samples,
        baseline,
        traffic_secs,
    })
    .await?;
    if args.keep {
        let _ = tmp.keep();
    }
    Ok(report)
}
