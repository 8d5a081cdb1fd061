//! Measurements: the proxy's RSS, threads and open descriptors from `/proc/<pid>/`,
//! the bucket's real usage read directly from Garage with the admin key, and the
//! sampler that records both every few seconds with the quota in force.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use aws_sdk_s3::Client;

use crate::admin::Admin;
use crate::state::Outcome;
use crate::traffic::Ctx;

/// Garage itself, with the backend's admin key: ground truth.
pub struct Direct {
    pub client: Client,
}

impl Direct {
    /// Every object of `bucket` → size, all pages.
    pub async fn list(&self, bucket: &str) -> anyhow::Result<BTreeMap<String, u64>> {
        let mut out = BTreeMap::new();
        let mut token = None;
        loop {
            let page = self
                .client
                .list_objects_v2()
                .bucket(bucket)
                .set_continuation_token(token)
                .send()
                .await
                .map_err(|e| anyhow::anyhow!(crate::s3::failure(&e).text))
                .context("direct ListObjectsV2")?;
            for o in page.contents() {
                let key = o.key().unwrap_or_default().to_owned();
                out.insert(key, u64::try_from(o.size().unwrap_or(0)).unwrap_or(0));
            }
            token = page.next_continuation_token().map(str::to_owned);
            if token.is_none() {
                return Ok(out);
            }
        }
    }

    /// Sum of the object sizes in `bucket`.
    pub async fn usage(&self, bucket: &str) -> anyhow::Result<u64> {
        Ok(self.list(bucket).await?.values().sum())
    }
}

/// One `/proc` reading of the proxy.
#[derive(Debug, Clone, Copy, Default)]
pub struct Proc {
    pub rss_kib: u64,
    pub threads: u64,
    pub fds: u64,
}

pub fn read_proc(pid: u32) -> anyhow::Result<Proc> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("/proc/{pid}/status"))?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))?.count() as u64;
    Ok(Proc {
        rss_kib: field("VmRSS:"),
        threads: field("Threads:"),
        fds,
    })
}

/// One sample row.
#[derive(Debug, Clone)]
pub struct Sample {
    pub secs: f64,
    pub proc: Proc,
    pub ops: u64,
    pub injected: u64,
    pub unexpected: u64,
    pub real_bytes: u64,
    pub ledger_bytes: u64,
    pub hard: u64,
    pub tight: bool,
    /// Real usage above the hard cap in force (0 when the invariant holds).
    pub overshoot: u64,
    /// The ledger (used + reserved) below the real usage: the ledger must count high.
    pub undercount: u64,
}

/// Take one sample. The quota gate is held for writing while the usage is read, so no
/// write lands during the listing and the cap cannot change under it.
pub async fn take(
    ctx: &Ctx,
    admin: &Admin,
    direct: &Direct,
    pid: u32,
    start: Instant,
) -> anyhow::Result<Sample> {
    let proc = read_proc(pid)?;
    let (real, ledger, phase) = {
        let phase = ctx.gate.write().await;
        let real = direct.usage(&ctx.bucket).await?;
        let ledger = admin.usage(&ctx.bucket).await?;
        (real, ledger, *phase)
    };
    let mut sample = Sample {
        secs: start.elapsed().as_secs_f64(),
        proc,
        ops: 0,
        injected: 0,
        unexpected: 0,
        real_bytes: real,
        ledger_bytes: ledger.bytes + ledger.reserved_bytes,
        hard: phase.hard,
        tight: phase.tight,
        overshoot: real.saturating_sub(phase.hard),
        undercount: if ledger.known {
            real.saturating_sub(ledger.bytes + ledger.reserved_bytes)
        } else {
            0
        },
    };
    for (o, n) in ctx.stats.by_outcome() {
        sample.ops += n;
        match o {
            Outcome::Ok => {}
            Outcome::Injected(_) => sample.injected += n,
            Outcome::Unexpected => sample.unexpected += n,
        }
    }
    Ok(sample)
}

pub fn print(s: &Sample) {
    println!(
        "soak: t={:>6.1}s rss={:>7} KiB fds={:>4} threads={:>3} ops={:>7} injected={:>5} \
         unexpected={} usage={:>10} ledger={:>10} hard={:>10} {} overshoot={} undercount={}",
        s.secs,
        s.proc.rss_kib,
        s.proc.fds,
        s.proc.threads,
        s.ops,
        s.injected,
        s.unexpected,
        s.real_bytes,
        s.ledger_bytes,
        s.hard,
        if s.tight { "tight" } else { "loose" },
        s.overshoot,
        s.undercount,
    );
}

/// Sample every `every` until stopped.
pub async fn sampler(
    ctx: Arc<Ctx>,
    admin: Arc<Admin>,
    direct: Arc<Direct>,
    pid: u32,
    start: Instant,
    every: Duration,
) -> Vec<Sample> {
    let mut out = Vec::new();
    while !ctx.stop.load(Ordering::SeqCst) {
        tokio::time::sleep(every).await;
        match take(&ctx, &admin, &direct, pid, start).await {
            Ok(s) => {
                print(&s);
                out.push(s);
            }
            Err(e) => ctx.stats.unexpected("sample", format!("{e:#}")),
        }
    }
    out
}

/// Mean RSS (KiB) of the samples whose time lies in `[from, to)` seconds.
pub fn mean_rss(samples: &[Sample], from: f64, to: f64) -> Option<f64> {
    let v: Vec<f64> = samples
        .iter()
        .filter(|s| s.secs >= from && s.secs < to)
        .map(|s| s.proc.rss_kib as f64)
        .collect();
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

/// Least-squares slope of RSS in KiB per minute over the samples from `from` seconds.
pub fn rss_slope(samples: &[Sample], from: f64) -> f64 {
    let pts: Vec<(f64, f64)> = samples
        .iter()
        .filter(|s| s.secs >= from)
        .map(|s| (s.secs / 60.0, s.proc.rss_kib as f64))
        .collect();
    let n = pts.len() as f64;
    if n < 2.0 {
        return 0.0;
    }
    let mx = pts.iter().map(|p| p.0).sum::<f64>() / n;
    let my = pts.iter().map(|p| p.1).sum::<f64>() / n;
    let sxy: f64 = pts.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let sxx: f64 = pts.iter().map(|p| (p.0 - mx).powi(2)).sum();
    if sxx == 0.0 { 0.0 } else { sxy / sxx }
}

/// What the proxy's descriptors are, for a failed descriptor check: files by path, TCP
/// sockets as `local port → remote port (state)`, the rest by kind.
pub fn describe_fds(pid: u32) -> String {
    let mut tcp = BTreeMap::new();
    for table in ["tcp", "tcp6"] {
        let text = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")).unwrap_or_default();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() > 9 {
                let port = |a: &str| {
                    a.rsplit(':')
                        .next()
                        .and_then(|p| u16::from_str_radix(p, 16).ok())
                        .unwrap_or(0)
                };
                let desc = format!("tcp {}→{} st{}", port(f[1]), port(f[2]), f[3]);
                tcp.insert(f[9].to_owned(), desc);
            }
        }
    }
    let mut kinds: BTreeMap<String, u32> = BTreeMap::new();
    if let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) {
        for e in dir.flatten() {
            let target = std::fs::read_link(e.path())
                .map(|p| p.display().to_string())
                .unwrap_or_else(|_| "?".into());
            let kind = match target.strip_prefix("socket:[") {
                Some(inode) => tcp
                    .get(inode.trim_end_matches(']'))
                    .cloned()
                    .unwrap_or_else(|| "socket (not tcp)".into()),
                None if target.starts_with("anon_inode:") => target,
                None if target.starts_with('/') => target,
                None => "other".into(),
            };
            *kinds.entry(kind).or_default() += 1;
        }
    }
    kinds
        .iter()
        .map(|(k, n)| format!("{n}× {k}"))
        .collect::<Vec<_>>()
        .join(", ")
}
