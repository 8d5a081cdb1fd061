//! The end-to-end load harness: direct to the upstream, through a pass-through nginx,
//! and through `stowage serve`, interleaved in one run with the same client code.
//!
//! It starts everything itself: the upstream (a "null" in-memory responder, then
//! Garage from PATH), nginx (installs Debian's nginx-light when missing), the stowage
//! binary as a separate process, and its own hyper load generator. Each case runs in
//! rounds of short slices, direct → nginx → stowage (rotating who goes first), so
//! machine noise hits all three alike. Per case: throughput, p50/p99, the ratios, CPU
//! time per request and peak RSS of both proxies. Then the memory bound: 64
//! concurrent large uploads and downloads through each proxy and its peak RSS.
//!
//! Full run: `cargo bench --bench loadbench` (knobs: see `Settings::from_env`).
//! `cargo test --benches` runs it as a smoke test: a few requests per case and
//! target, every status and length checked, no numbers asserted.

mod body;
mod cases;
mod load;
mod null_upstream;
mod procs;
mod report;
mod sign;

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;

use cases::{Case, Payloads, Target, Via};
use procs::Proc;
use report::{Measured, Row};
use sign::Keys;

/// Knobs, from `STOWAGE_LOADBENCH_*` variables.
pub struct Settings {
    pub full: bool,
    pub concurrency: usize,
    pub slice: Duration,
    pub rounds: usize,
    pub large_rounds: usize,
    pub large: usize,
    pub memory_concurrency: usize,
    pub max_per_worker: usize,
    pub upstreams: Vec<String>,
    pub cases: Option<Vec<String>>,
}

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(format!("STOWAGE_LOADBENCH_{name}"))
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

impl Settings {
    fn from_env(full: bool) -> Self {
        let (conc, slice, rounds, large_mib, mem, max) = if full {
            (16, 1.0, 3, 256, 64, usize::MAX)
        } else {
            (2, 0.05, 1, 8, 4, 3)
        };
        let upstreams: String = env("UPSTREAMS", "null,garage".to_owned());
        let cases: Option<String> = std::env::var("STOWAGE_LOADBENCH_CASES").ok();
        Self {
            full,
            concurrency: env("CONCURRENCY", conc),
            slice: Duration::from_secs_f64(env("SLICE_SECS", slice)),
            rounds: env("ROUNDS", rounds),
            large_rounds: env("LARGE_ROUNDS", 1),
            large: env::<usize>("LARGE_MIB", large_mib) << 20,
            memory_concurrency: env("MEMORY_CONCURRENCY", mem),
            max_per_worker: env("MAX_PER_WORKER", max),
            upstreams: upstreams.split(',').map(str::to_owned).collect(),
            cases: cases.map(|c| c.split(',').map(|s| s.trim().to_owned()).collect()),
        }
    }
}

/// One upstream with nginx and Stowage in front of it.
struct Stack {
    name: &'static str,
    _upstream: Option<Proc>,
    nginx: Proc,
    stowage: Proc,
    targets: Vec<Target>,
}

/// The proxy under test: this build's, or `STOWAGE_LOADBENCH_STOWAGE_BIN` (to measure
/// an earlier build against the same references, for before/after numbers).
fn stowage_bin() -> PathBuf {
    std::env::var_os("STOWAGE_LOADBENCH_STOWAGE_BIN").map_or_else(
        || PathBuf::from(env!("CARGO_BIN_EXE_stowage")),
        PathBuf::from,
    )
}

async fn seed(direct: &Target, payloads: &Payloads) {
    for (key, len) in [
        (cases::K1K, 1024),
        (cases::K1M, 1 << 20),
        (cases::KLARGE, payloads.large),
    ] {
        let p = cases::signed(
            direct,
            http::Method::PUT,
            &format!("/{}/{key}", null_upstream::BUCKET),
            &[],
            sign::UNSIGNED,
            payloads.pattern.slice(..len),
            200,
            None,
        );
        let r = load::run_slice(direct.addr, vec![p], Duration::ZERO, 1).await;
        assert_eq!(r.errors, 0, "seeding {key}: {:?}", r.first_error);
    }
}

fn build_stack(name: &'static str, dir: &std::path::Path, payloads: &Payloads) -> Stack {
    let (upstream, addr, admin) = if name == "null" {
        let admin = Keys {
            access: "NULLADMINACCESSKEY00".into(),
            secret: "nulladminsecretnulladminsecretnulladmin0".into(),
        };
        let addr = null_upstream::spawn(payloads.pattern.clone(), &[]);
        (None, addr, admin)
    } else {
        let bin = procs::garage_binary().expect("garage binary (on PATH or ~/.cargo/bin)");
        let (p, addr, keys) = procs::start_garage(&bin, &dir.join("garage"), null_upstream::BUCKET);
        (Some(p), addr, keys)
    };
    let (nginx, naddr) = procs::start_nginx(&dir.join(format!("nginx-{name}")), addr);
    let (stowage, saddr, vkeys) = procs::start_stowage(
        &stowage_bin(),
        &dir.join(format!("stowage-{name}")),
        addr,
        &admin,
        null_upstream::BUCKET,
    );
    let targets = vec![
        Target {
            via: Via::Direct,
            addr,
            keys: admin.clone(),
        },
        Target {
            via: Via::Nginx,
            addr: naddr,
            keys: admin,
        },
        Target {
            via: Via::Stowage,
            addr: saddr,
            keys: vkeys,
        },
    ];
    Stack {
        name,
        _upstream: upstream,
        nginx,
        stowage,
        targets,
    }
}

impl Stack {
    fn proxy(&self, via: Via) -> Option<&Proc> {
        match via {
            Via::Direct => None,
            Via::Nginx => Some(&self.nginx),
            Via::Stowage => Some(&self.stowage),
        }
    }

    fn check_alive(&mut self) {
        for p in [&mut self.nginx, &mut self.stowage] {
            if let Some(e) = p.exited() {
                panic!("{e}");
            }
        }
    }
}

/// One case, all three targets, interleaved in rounds.
async fn run_case(s: &Settings, stack: &mut Stack, case: Case, payloads: &Payloads) -> Row {
    let rounds = if case.is_large() {
        s.large_rounds
    } else {
        s.rounds
    };
    let pids: Vec<Vec<u32>> = stack
        .targets
        .iter()
        .map(|t| stack.proxy(t.via).map(Proc::pids).unwrap_or_default())
        .collect();
    for p in &pids {
        procs::reset_peak(p);
    }
    let mut measured: Vec<Measured> = stack.targets.iter().map(|_| Measured::default()).collect();
    for round in 0..rounds {
        for i in 0..3 {
            let ti = (i + round) % 3;
            let t = &stack.targets[ti];
            let reqs = (0..s.concurrency)
                .map(|w| case.prepare(t, w, payloads))
                .collect();
            let before = procs::cpu_ticks(&pids[ti]);
            let r = load::run_slice(t.addr, reqs, s.slice, s.max_per_worker).await;
            let ticks = procs::cpu_ticks(&pids[ti]) - before;
            measured[ti].add(r, ticks);
            stack.check_alive();
        }
    }
    for (m, p) in measured.iter_mut().zip(&pids) {
        m.peak_rss_kib = procs::peak_rss_kib(p);
    }
    Row {
        upstream: stack.name,
        case: case.name(payloads.large),
        large: case.is_large(),
        measured,
    }
}

/// `memory_concurrency` simultaneous large PUTs, then GETs, through each proxy.
async fn memory_bound(s: &Settings, stack: &mut Stack, payloads: &Payloads) -> Vec<String> {
    let mut lines = Vec::new();
    for ti in 1..3 {
        let via = stack.targets[ti].via;
        let pids = stack.proxy(via).map(Proc::pids).unwrap_or_default();
        procs::reset_peak(&pids);
        let base = procs::peak_rss_kib(&pids);
        let mut errors = 0;
        let mut secs = Vec::new();
        for case in [Case::PutLarge, Case::GetLarge] {
            let t = &stack.targets[ti];
            let reqs = (0..s.memory_concurrency)
                .map(|w| case.prepare(t, w, payloads))
                .collect();
            let r = load::run_slice(t.addr, reqs, Duration::ZERO, 1).await;
            if let Some(e) = &r.first_error {
                eprintln!("memory bound {}: {e}", via.name());
            }
            errors += r.errors;
            secs.push(r.elapsed.as_secs_f64());
            stack.check_alive();
        }
        let peak = procs::peak_rss_kib(&pids);
        lines.push(format!(
            "{} via {}: {} concurrent {} MiB PUTs ({:.1} s) then GETs ({:.1} s): RSS before {:.1} MiB, peak {:.1} MiB, {} errors",
            stack.name,
            via.name(),
            s.memory_concurrency,
            payloads.large >> 20,
            secs[0],
            secs[1],
            base as f64 / 1024.0,
            peak as f64 / 1024.0,
            errors
        ));
        assert_eq!(errors, 0, "memory bound through {} had errors", via.name());
    }
    lines
}

fn pattern(len: usize) -> Bytes {
    let v: Vec<u8> = (0..len).map(|i| (i.wrapping_mul(31) >> 3) as u8).collect();
    Bytes::from(v)
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_default()
}

async fn run(s: Settings) {
    let load_start = loadavg();
    let dir = tempfile::tempdir().expect("tempdir");
    let pat = pattern(s.large.max(1 << 20));
    let payloads = Payloads {
        put1k_sha: sign::sha256_hex(&pat[..1024]),
        pattern: pat,
        large: s.large,
    };
    let selected: Vec<Case> = cases::ALL
        .into_iter()
        .filter(|c| {
            s.cases.as_ref().is_none_or(|names| {
                names
                    .iter()
                    .any(|n| format!("{c:?}").eq_ignore_ascii_case(n))
            })
        })
        .collect();
    let mut rows = Vec::new();
    let mut memory = Vec::new();
    for up in &s.upstreams {
        let name: &'static str = match up.as_str() {
            "null" => "null",
            "garage" if procs::garage_binary().is_none() && !s.full => {
                assert!(
                    std::env::var_os("STOWAGE_REQUIRE_GARAGE").is_none(),
                    "STOWAGE_REQUIRE_GARAGE is set but no garage binary was found"
                );
                eprintln!("loadbench: no garage binary; the Garage upstream DID NOT RUN");
                continue;
            }
            "garage" => "garage",
            other => panic!("unknown upstream {other:?} (null, garage)"),
        };
        let mut stack = build_stack(name, dir.path(), &payloads);
        seed(&stack.targets[0], &payloads).await;
        for case in &selected {
            let row = run_case(&s, &mut stack, *case, &payloads).await;
            eprintln!("{}", row.progress());
            row.assert_clean();
            rows.push(row);
        }
        if name == "null" && s.memory_concurrency > 0 {
            memory.extend(memory_bound(&s, &mut stack, &payloads).await);
        }
    }
    let mut text = report::render(&s, &rows, &memory);
    text.push_str(&format!(
        "\nMachine: {} × {}; load average at start {load_start}, at end {}.\n",
        std::thread::available_parallelism().map_or(0, usize::from),
        cpu_model(),
        loadavg()
    ));
    println!("{text}");
    if s.full {
        // Also kept beside the build output, for the README's table.
        let out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/loadbench-last.md");
        if std::fs::write(&out, &text).is_ok() {
            eprintln!("loadbench: results written to {}", out.display());
        }
    }
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let settings = Settings::from_env(full);
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(run(settings));
}
