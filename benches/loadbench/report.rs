//! Aggregation over a case's slices and the markdown table printed at the end.

use std::fmt::Write as _;

use super::Settings;
use super::load::SliceResult;
use super::procs::TICK_SECS;

#[derive(Default)]
pub struct Measured {
    pub latencies_us: Vec<u32>,
    pub bytes: u64,
    pub secs: f64,
    pub cpu_ticks: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    pub peak_rss_kib: u64,
}

impl Measured {
    pub fn add(&mut self, r: SliceResult, ticks: u64) {
        self.latencies_us.extend(r.latencies_us);
        self.bytes += r.bytes;
        self.secs += r.elapsed.as_secs_f64();
        self.cpu_ticks += ticks;
        self.errors += r.errors;
        if self.first_error.is_none() {
            self.first_error = r.first_error;
        }
    }

    fn requests(&self) -> usize {
        self.latencies_us.len()
    }

    pub fn rps(&self) -> f64 {
        self.requests() as f64 / self.secs.max(1e-9)
    }

    pub fn mbps(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.secs.max(1e-9)
    }

    fn pct(&mut self, p: usize) -> f64 {
        self.latencies_us.sort_unstable();
        let n = self.latencies_us.len();
        if n == 0 {
            return 0.0;
        }
        f64::from(self.latencies_us[(n * p / 100).min(n - 1)]) / 1000.0
    }

    /// Proxy CPU time per request, µs.
    fn cpu_us(&self) -> f64 {
        self.cpu_ticks as f64 * TICK_SECS * 1e6 / (self.requests().max(1) as f64)
    }
}

pub struct Row {
    pub upstream: &'static str,
    pub case: String,
    pub large: bool,
    /// direct, nginx, stowage.
    pub measured: Vec<Measured>,
}

impl Row {
    fn speed(&self, i: usize) -> f64 {
        if self.large {
            self.measured[i].mbps()
        } else {
            self.measured[i].rps()
        }
    }

    pub fn progress(&self) -> String {
        let unit = if self.large { "MB/s" } else { "req/s" };
        format!(
            "[{}] {}: direct {:.0} / nginx {:.0} / stowage {:.0} {unit} ({} / {} / {} requests)",
            self.upstream,
            self.case,
            self.speed(0),
            self.speed(1),
            self.speed(2),
            self.measured[0].requests(),
            self.measured[1].requests(),
            self.measured[2].requests(),
        )
    }

    /// Every request must have answered as expected: a wrong status or length on any
    /// target fails the run (and the smoke test).
    pub fn assert_clean(&self) {
        for (m, via) in self.measured.iter().zip(["direct", "nginx", "stowage"]) {
            assert!(
                m.errors == 0,
                "[{}] {} via {via}: {} errors, first: {}",
                self.upstream,
                self.case,
                m.errors,
                m.first_error.as_deref().unwrap_or("")
            );
            assert!(
                m.requests() > 0,
                "[{}] {} via {via}: no request completed",
                self.upstream,
                self.case
            );
        }
    }
}

pub fn render(s: &Settings, rows: &[Row], memory: &[String]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n## loadbench ({} run): concurrency {}, {} round(s) of {:.2} s slices per target ({} for large), large = {} MiB\n",
        if s.full { "full" } else { "smoke" },
        s.concurrency,
        s.rounds,
        s.slice.as_secs_f64(),
        s.large_rounds,
        s.large >> 20
    );
    let _ = writeln!(
        out,
        "| upstream | case | direct | nginx | stowage | nginx/direct | stowage/direct | stowage/nginx | p50 ms d / n / s | p99 ms d / n / s | CPU µs/req nginx / stowage | peak RSS MiB nginx / stowage |"
    );
    let _ = writeln!(out, "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
    for r in rows {
        let m = &r.measured;
        let unit = if r.large { " MB/s" } else { "/s" };
        let (d, n, st) = (r.speed(0), r.speed(1), r.speed(2));
        let mut p50 = Vec::new();
        let mut p99 = Vec::new();
        for x in r.measured.iter() {
            let mut c = Measured {
                latencies_us: x.latencies_us.clone(),
                ..Measured::default()
            };
            p50.push(c.pct(50));
            p99.push(c.pct(99));
        }
        let _ = writeln!(
            out,
            "| {} | {} | {d:.0}{unit} | {n:.0}{unit} | {st:.0}{unit} | {:.2} | {:.2} | {:.2} | {:.2} / {:.2} / {:.2} | {:.2} / {:.2} / {:.2} | {:.0} / {:.0} | {:.1} / {:.1} |",
            r.upstream,
            r.case,
            n / d,
            st / d,
            st / n,
            p50[0],
            p50[1],
            p50[2],
            p99[0],
            p99[1],
            p99[2],
            m[1].cpu_us(),
            m[2].cpu_us(),
            m[1].peak_rss_kib as f64 / 1024.0,
            m[2].peak_rss_kib as f64 / 1024.0,
        );
    }
    if !memory.is_empty() {
        let _ = writeln!(out, "\nMemory bound:\n");
        for l in memory {
            let _ = writeln!(out, "- {l}");
        }
    }
    out
}
