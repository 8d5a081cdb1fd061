//! The cost of quota admission under contention: `reserve` + `settle` on the
//! in-memory ledger, with 1 thread and with 64 writer threads on ONE hot bucket (every
//! thread takes the same per-bucket lock), plus 64 threads on 64 buckets to show that
//! different buckets do not contend. Runs at the cap and on a full bucket measure the
//! refusal path.
//!
//! Run: `cargo bench --bench quota_admission` (`STOWAGE_BENCH_SECS` per case, default
//! 2). In test mode (`cargo test --benches`) each case runs briefly as a smoke test.

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use stowage::quota::ledger::{Charge, InMemoryLedger, Usage, UsageLedger, reserve};
use stowage::quota::{BucketKey, Limits};

/// How the bucket relates to its cap during a case.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Far below the cap: every write is admitted and adds 1 KiB and one object.
    Grow,
    /// The cap holds 8 writes in flight: 64 writers fight for them; admitted writes are
    /// same-size overwrites (settle with delta 0), so the cap stays contended.
    Contended,
    /// The bucket is full: every write takes the refusal path.
    Full,
}

#[derive(Clone, Copy)]
struct Case {
    name: &'static str,
    threads: usize,
    /// Each thread writes its own bucket instead of the shared hot one.
    spread: bool,
    mode: Mode,
}

const CASES: [Case; 5] = [
    Case {
        name: "1 writer, one bucket",
        threads: 1,
        spread: false,
        mode: Mode::Grow,
    },
    Case {
        name: "64 writers, one hot bucket",
        threads: 64,
        spread: false,
        mode: Mode::Grow,
    },
    Case {
        name: "64 writers, one hot bucket at its cap",
        threads: 64,
        spread: false,
        mode: Mode::Contended,
    },
    Case {
        name: "64 writers, one full bucket (refused)",
        threads: 64,
        spread: false,
        mode: Mode::Full,
    },
    Case {
        name: "64 writers, 64 buckets",
        threads: 64,
        spread: true,
        mode: Mode::Grow,
    },
];

const KIB: u64 = 1024;
const CHARGE: Charge = Charge {
    bytes: KIB,
    objects: 1,
};
/// Writes between two looks at the stop flag.
const BATCH: u64 = 256;

/// Admissions until `stop`: (attempts, admitted).
fn writer(
    ledger: &Arc<dyn UsageLedger>,
    key: &BucketKey,
    limits: &Limits,
    mode: Mode,
    stop: &AtomicBool,
) -> (u64, u64) {
    let (delta_bytes, delta_objects) = if mode == Mode::Grow {
        (1024, 1)
    } else {
        (0, 0)
    };
    let (mut attempts, mut admitted) = (0u64, 0u64);
    loop {
        for _ in 0..BATCH {
            match reserve(ledger, key, limits, CHARGE) {
                Ok(r) => {
                    black_box(r.settle(delta_bytes, delta_objects, limits));
                    admitted += 1;
                }
                Err(refusal) => {
                    black_box(refusal);
                }
            }
        }
        attempts += BATCH;
        if stop.load(Ordering::Relaxed) {
            return (attempts, admitted);
        }
    }
}

fn limits(mode: Mode) -> Limits {
    Limits {
        hard_bytes: Some(match mode {
            Mode::Grow => u64::MAX / 2,
            Mode::Contended => 8 * KIB,
            Mode::Full => KIB,
        }),
        soft_bytes: Some(4 * KIB),
        max_objects: None,
    }
}

fn run(case: Case, dur: Duration) {
    let ledger: Arc<dyn UsageLedger> = Arc::new(InMemoryLedger::new());
    let keys: Vec<BucketKey> = (0..case.threads)
        .map(|i| {
            BucketKey::new(
                "bench",
                if case.spread {
                    format!("b{i}")
                } else {
                    "hot".into()
                },
            )
        })
        .collect();
    let start_usage = if case.mode == Mode::Full { KIB } else { 0 };
    for k in &keys {
        ledger.restore(
            k,
            Usage {
                bytes: start_usage,
                objects: 0,
            },
            None,
        );
    }
    let limits = limits(case.mode);
    let stop = Arc::new(AtomicBool::new(false));
    let totals = Arc::new((AtomicU64::new(0), AtomicU64::new(0)));
    let start = Instant::now();
    let handles: Vec<_> = keys
        .into_iter()
        .map(|key| {
            let (ledger, stop, totals) =
                (Arc::clone(&ledger), Arc::clone(&stop), Arc::clone(&totals));
            std::thread::spawn(move || {
                let (n, ok) = writer(&ledger, &key, &limits, case.mode, &stop);
                totals.0.fetch_add(n, Ordering::Relaxed);
                totals.1.fetch_add(ok, Ordering::Relaxed);
            })
        })
        .collect();
    std::thread::sleep(dur);
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        h.join().expect("writer thread");
    }
    let elapsed = start.elapsed();
    report(
        case,
        totals.0.load(Ordering::Relaxed),
        totals.1.load(Ordering::Relaxed),
        elapsed,
    );
}

fn report(case: Case, ops: u64, admitted: u64, elapsed: Duration) {
    let secs = elapsed.as_secs_f64();
    #[allow(clippy::cast_precision_loss)] // op counts stay far below 2^52
    let ops_f = ops as f64;
    let per_s = ops_f / secs;
    // Throughput cost: wall time per admission across all threads. Latency: what one
    // writer waits per admission (threads share the cores, so this includes queueing).
    let wall_ns = secs * 1e9 / ops_f;
    #[allow(clippy::cast_precision_loss)]
    let latency_ns = wall_ns * case.threads as f64;
    #[allow(clippy::cast_precision_loss)]
    let admitted_pct = 100.0 * admitted as f64 / ops_f;
    println!(
        "{:<40} {:>12.0} ops/s  {:>8.1} ns/op (wall)  {:>9.1} ns/op (per writer)  {:>5.1}% admitted",
        case.name, per_s, wall_ns, latency_ns, admitted_pct
    );
}

fn main() {
    let smoke = std::env::args().all(|a| a != "--bench");
    let secs: f64 = std::env::var("STOWAGE_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if smoke { 0.05 } else { 2.0 });
    println!(
        "quota admission (reserve + settle; {} cores)",
        std::thread::available_parallelism().map_or(0, usize::from)
    );
    for case in CASES {
        run(case, Duration::from_secs_f64(secs));
    }
}
