//! The end of a soak: read every acknowledged write back, wait for the proxy's
//! descriptors to drain, scan its log, stop it with SIGTERM, judge every check and
//! print the summary.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::admin::metric_sum;
use crate::sample::{Proc, Sample, mean_rss, read_proc, rss_slope};
use crate::traffic::{Ctx, Ledger, sha};
use crate::{Args, BUCKET, OTHER_BUCKET, Setup, s3};

pub struct Input<'a> {
    pub args: &'a Args,
    pub ctx: Arc<Ctx>,
    pub setup: &'a mut Setup,
    pub ledger: Ledger,
    pub samples: Vec<Sample>,
    pub baseline: Proc,
    pub traffic_secs: f64,
}

/// Extra descriptors tolerated after the drain (a listener's accept in progress, the
/// SQLite WAL/shm pair opened lazily).
const FD_SLACK: u64 = 4;
/// RSS growth tolerated between the two windows: 16 MiB or 15 %, whichever is larger.
const RSS_SLACK_KIB: f64 = 16.0 * 1024.0;
const RSS_SLACK_RATIO: f64 = 0.15;

struct Checks(Vec<(String, bool, String)>);

impl Checks {
    fn add(&mut self, name: &str, ok: bool, detail: String) {
        self.0.push((name.to_owned(), ok, detail));
    }
}

/// Every ledger key read through the proxy and directly; the bucket must hold exactly
/// the ledger's keys, no multipart upload may be left, and the other tenant's bucket
/// must hold only its seed. Returns (verified count, problems).
async fn verify(ctx: &Ctx, setup: &Setup, ledger: &Ledger) -> anyhow::Result<(usize, Vec<String>)> {
    let direct = &setup.direct;
    let mut problems = Vec::new();
    let listed = direct.list(BUCKET).await?;
    let want: std::collections::BTreeMap<String, u64> =
        ledger.iter().map(|(k, e)| (k.clone(), e.size)).collect();
    if listed != want {
        let extra: Vec<_> = listed.keys().filter(|k| !want.contains_key(*k)).collect();
        let missing: Vec<_> = want.keys().filter(|k| !listed.contains_key(*k)).collect();
        problems.push(format!(
            "bucket listing differs from the ledger: extra {extra:?}, missing {missing:?}"
        ));
    }
    let mut verified = 0;
    for (key, entry) in ledger {
        let via_proxy = get(&ctx.victim, key).await;
        let via_garage = get(&direct.client, key).await;
        match (via_proxy, via_garage) {
            (Ok(p), Ok(g)) if sha(&p) == entry.sha && sha(&g) == entry.sha => verified += 1,
            (p, g) => problems.push(format!(
                "{key}: proxy {:?}, direct {:?} (wanted {} bytes)",
                p.map(|b| (b.len(), sha(&b) == entry.sha)),
                g.map(|b| (b.len(), sha(&b) == entry.sha)),
                entry.size
            )),
        }
    }
    let uploads = direct
        .client
        .list_multipart_uploads()
        .bucket(BUCKET)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!(s3::failure(&e).text))?;
    if !uploads.uploads().is_empty() {
        problems.push(format!(
            "{} multipart uploads left behind",
            uploads.uploads().len()
        ));
    }
    let other = direct.list(OTHER_BUCKET).await?;
    if other.keys().ne(["seed".to_owned()].iter()) {
        problems.push(format!("the out-of-scope bucket changed: {other:?}"));
    }
    Ok((verified, problems))
}

async fn get(c: &aws_sdk_s3::Client, key: &str) -> Result<Vec<u8>, String> {
    let out = c
        .get_object()
        .bucket(BUCKET)
        .key(key)
        .send()
        .await
        .map_err(|e| s3::failure(&e).text)?;
    let data = out.body.collect().await.map_err(|e| e.to_string())?;
    Ok(data.into_bytes().to_vec())
}

/// Wait until the proxy's descriptors are back near the baseline (the clients are gone
/// and the upstream pool's idle timeout is 10 s), at most 45 s.
async fn drained_fds(pid: u32, baseline: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(45);
    loop {
        let fds = read_proc(pid).map(|p| p.fds).unwrap_or(u64::MAX);
        if fds <= baseline + FD_SLACK || Instant::now() > deadline {
            return fds;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The RSS windows: minute 2–3 against the last minute (proportional for short runs).
fn windows(total: f64) -> ((f64, f64), (f64, f64)) {
    if total >= 300.0 {
        ((60.0, 180.0), (total - 60.0, total + 1.0))
    } else {
        ((0.2 * total, 0.3 * total), (0.9 * total, total + 1.0))
    }
}

pub async fn finish(input: Input<'_>) -> anyhow::Result<bool> {
    let Input {
        args,
        ctx,
        setup,
        ledger,
        samples,
        baseline,
        traffic_secs,
    } = input;
    let mut checks = Checks(Vec::new());
    let (verified, problems) = verify(&ctx, setup, &ledger).await?;
    // Counted after the read-back, which records nothing (it does not go through Stats).
    let stats = ctx.stats.snapshot();
    let unexpected = ctx.stats.unexpected_list();
    let by_outcome = ctx.stats.by_outcome();

    checks.add(
        "every acknowledged write readable with the right bytes (proxy and direct)",
        problems.is_empty() && verified == ledger.len(),
        format!("{verified}/{} keys; problems: {problems:?}", ledger.len()),
    );

    let max_over = samples.iter().map(|s| s.overshoot).max().unwrap_or(0);
    let over_n = samples.iter().filter(|s| s.overshoot > 0).count();
    checks.add(
        "zero quota overshoot (direct usage ≤ hard cap at every sample)",
        max_over == 0,
        format!(
            "max {max_over} bytes, {over_n}/{} samples over",
            samples.len()
        ),
    );
    let max_under = samples.iter().map(|s| s.undercount).max().unwrap_or(0);
    checks.add(
        "ledger never below the real usage",
        max_under == 0,
        format!("max {max_under} bytes below"),
    );
    let tight = samples.iter().filter(|s| s.tight).count();
    let refused: u64 = stats
        .iter()
        .filter(|((_, o), _)| o.label() == "quota_exceeded")
        .map(|(_, n)| n)
        .sum();

    let metrics = setup.admin.metrics().await.unwrap_or_default();
    let audit_errors = metric_sum(&metrics, "stowage_audit_write_errors_total", "");
    let audit_dropped = metric_sum(&metrics, "stowage_audit_dropped_total", "");
    let audit_written = metric_sum(&metrics, "stowage_audit_written_total", "");
    checks.add(
        "audit log wrote every event",
        audit_errors == 0.0 && audit_dropped == 0.0 && audit_written > 0.0,
        format!("written {audit_written}, dropped {audit_dropped}, write errors {audit_errors}"),
    );

    // Drop every client (and so every connection to the proxy) before the fd check.
    ctx.pool.clear();
    let pid = setup.proxy.pid;
    drop(ctx);
    let fds_end = drained_fds(pid, baseline.fds).await;
    let fds_what = if fds_end > baseline.fds + FD_SLACK {
        format!("; open: {}", crate::sample::describe_fds(pid))
    } else {
        String::new()
    };
    let end = read_proc(pid).unwrap_or_default();
    checks.add(
        "file descriptors back to the baseline once clients leave",
        fds_end <= baseline.fds + FD_SLACK,
        format!(
            "baseline {}, after drain {fds_end} (slack {FD_SLACK}){fds_what}",
            baseline.fds
        ),
    );

    let total = traffic_secs;
    let (a, b) = windows(total);
    let (ma, mb) = (mean_rss(&samples, a.0, a.1), mean_rss(&samples, b.0, b.1));
    let slope = rss_slope(&samples, a.0);
    let flat = match (ma, mb) {
        (Some(ma), Some(mb)) => mb - ma <= RSS_SLACK_KIB.max(ma * RSS_SLACK_RATIO),
        _ => false,
    };
    checks.add(
        "RSS flat (last window against the early window)",
        flat,
        format!(
            "mean {:.0} KiB in [{:.0},{:.0}) s, {:.0} KiB in [{:.0},{:.0}) s; slope {slope:.0} KiB/min",
            ma.unwrap_or(0.0), a.0, a.1, mb.unwrap_or(0.0), b.0, b.1.min(total)
        ),
    );

    let log = std::fs::read_to_string(&setup.proxy.log).unwrap_or_default();
    let leaked = setup
        .secrets
        .lock()
        .expect("secrets")
        .iter()
        .filter(|s| log.contains(s.as_str()))
        .count();
    let panics = log.matches("panicked").count();
    checks.add(
        "proxy log: no secret, no panic",
        leaked == 0 && panics == 0,
        format!(
            "{leaked} secrets found, {panics} panics, {} log bytes",
            log.len()
        ),
    );

    let exit = setup.proxy.terminate(Duration::from_secs(20));
    checks.add(
        "clean shutdown on SIGTERM",
        matches!(&exit, Ok(s) if s.success()),
        format!("{exit:?}"),
    );
    checks.add(
        "no errors beyond the injected classes",
        unexpected.is_empty(),
        format!(
            "{} unexpected; first: {:?}",
            unexpected.len(),
            unexpected.iter().take(10).collect::<Vec<_>>()
        ),
    );

    let rss_peak = samples.iter().map(|s| s.proc.rss_kib).max().unwrap_or(0);
    let threads_peak = samples.iter().map(|s| s.proc.threads).max().unwrap_or(0);
    println!("\n==== soak summary ====");
    println!(
        "duration {:.1} s of traffic ({} min asked), {} workers",
        total, args.minutes, args.workers
    );
    println!("operations (op: outcome = count):");
    for ((op, o), n) in &stats {
        println!("  {op:<18} {:<20} {n}", o.label());
    }
    println!(
        "totals by outcome: {:?}",
        by_outcome
            .iter()
            .map(|(o, n)| (o.label(), *n))
            .collect::<Vec<_>>()
    );
    let ops: u64 = by_outcome.values().sum();
    println!("throughput {:.1} op/s", ops as f64 / total);
    println!(
        "rss KiB: baseline {} peak {rss_peak} end {}; fds: baseline {} peak {} end {fds_end}; threads: baseline {} peak {threads_peak}",
        baseline.rss_kib,
        end.rss_kib,
        baseline.fds,
        samples.iter().map(|s| s.proc.fds).max().unwrap_or(0),
        baseline.threads
    );
    println!(
        "quota: {} samples ({} in tight phases), {refused} writes refused 507, max overshoot {max_over} bytes",
        samples.len(),
        tight
    );
    let drift = samples
        .iter()
        .map(|s| s.ledger_bytes.saturating_sub(s.real_bytes))
        .max()
        .unwrap_or(0);
    println!(
        "ledger above the real usage (counts high by design): at most {drift} bytes at a sample"
    );
    let closest = samples
        .iter()
        .filter(|s| s.tight)
        .map(|s| s.hard.saturating_sub(s.real_bytes))
        .min();
    println!(
        "closest the real usage came to a tight cap: {} bytes below it",
        closest.map_or_else(|| "no tight sample".to_owned(), |b| b.to_string())
    );
    let garage_kib = std::process::Command::new("du")
        .args(["-sk"])
        .arg(&setup.garage.dir)
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .next()?
                .parse::<u64>()
                .ok()
        })
        .unwrap_or(0);
    println!(
        "garage data on disk at the end: {} MiB (deleted blocks are freed later)",
        garage_kib / 1024
    );
    println!("verified {verified} acknowledged objects through the proxy and directly");
    let mut ok = true;
    for (name, pass, detail) in &checks.0 {
        ok &= *pass;
        println!("[{}] {name}: {detail}", if *pass { "PASS" } else { "FAIL" });
    }
    println!("soak {}", if ok { "PASSED" } else { "FAILED" });
    Ok(ok)
}
