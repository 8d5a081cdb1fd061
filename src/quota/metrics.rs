//! Quota metrics. Cardinality is bounded by the buckets that have an effective limit:
//! per-bucket series are (re)set at scrape time from the limit cache and the ledger,
//! and the series of a bucket that lost its limit are removed, so a tenant writing to
//! many unlimited buckets adds nothing.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use prometheus::{IntCounterVec, IntGaugeVec, Opts, Registry};

use super::ledger::{Refusal, UsageLedger};
use super::limits::{BucketKey, LimitCache, Limits};

const BUCKET: &[&str] = &["backend", "bucket"];

/// Every refusal, so a dashboard sees zeros rather than gaps.
const REFUSALS: [Refusal; 3] = [
    Refusal::HardBytes,
    Refusal::MaxObjects,
    Refusal::UsageUnknown,
];

/// The quota series (see the module doc).
pub struct QuotaMetrics {
    used_bytes: IntGaugeVec,
    used_objects: IntGaugeVec,
    limit_bytes: IntGaugeVec,
    limit_objects: IntGaugeVec,
    soft_exceeded: IntCounterVec,
    rejections: IntCounterVec,
    /// Where scrape-time values come from; attached once at start.
    sources: OnceLock<(Arc<LimitCache>, Arc<dyn UsageLedger>)>,
    /// Buckets that may have series, so those of unconfigured buckets can be removed.
    exported: Mutex<HashSet<BucketKey>>,
}

fn gauge(name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric")
}

fn clamp(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Set a series to `v`, or remove it when there is no value.
fn set_or_remove(g: &IntGaugeVec, labels: &[&str], v: Option<u64>) {
    match v {
        Some(v) => g.with_label_values(labels).set(clamp(v)),
        None => {
            let _ = g.remove_label_values(labels);
        }
    }
}

impl QuotaMetrics {
    /// Build the series (not yet registered).
    ///
    /// # Panics
    /// Only if the static metric definitions are invalid (caught by the tests).
    #[must_use]
    pub fn new() -> Self {
        let counter = |name: &str, help: &str, labels: &[&str]| {
            IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric")
        };
        let rejections = counter(
            "stowage_quota_rejections_total",
            "Writes refused by quota admission, by reason",
            &["reason"],
        );
        for r in REFUSALS {
            rejections.with_label_values(&[r.label()]);
        }
        Self {
            used_bytes: gauge(
                "stowage_quota_used_bytes",
                "Bytes used in a quota-limited bucket",
                BUCKET,
            ),
            used_objects: gauge(
                "stowage_quota_used_objects",
                "Objects in a quota-limited bucket",
                BUCKET,
            ),
            limit_bytes: gauge(
                "stowage_quota_limit_bytes",
                "A bucket's byte cap, by kind (hard or soft)",
                &["backend", "bucket", "kind"],
            ),
            limit_objects: gauge(
                "stowage_quota_limit_objects",
                "A bucket's object-count cap",
                BUCKET,
            ),
            soft_exceeded: counter(
                "stowage_quota_soft_exceeded_total",
                "Times a bucket's usage crossed its soft cap",
                BUCKET,
            ),
            rejections,
            sources: OnceLock::new(),
            exported: Mutex::new(HashSet::new()),
        }
    }

    /// Register every series on `registry`.
    ///
    /// # Errors
    /// A name already registered.
    pub fn register(&self, registry: &Registry) -> prometheus::Result<()> {
        registry.register(Box::new(self.used_bytes.clone()))?;
        registry.register(Box::new(self.used_objects.clone()))?;
        registry.register(Box::new(self.limit_bytes.clone()))?;
        registry.register(Box::new(self.limit_objects.clone()))?;
        registry.register(Box::new(self.soft_exceeded.clone()))?;
        registry.register(Box::new(self.rejections.clone()))
    }

    /// Where scrape-time values come from. Only the first call counts (one proxy per
    /// registry).
    pub fn attach(&self, limits: Arc<LimitCache>, ledger: Arc<dyn UsageLedger>) {
        let _ = self.sources.set((limits, ledger));
    }

    fn exported(&self) -> std::sync::MutexGuard<'_, HashSet<BucketKey>> {
        self.exported.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A write took `key` over its soft cap (the caller logs once per crossing).
    pub fn soft_crossed(&self, key: &BucketKey) {
        self.exported().insert(key.clone());
        self.soft_exceeded
            .with_label_values(&[&key.backend, &key.bucket])
            .inc();
    }

    /// A write was refused.
    pub fn rejected(&self, refusal: Refusal) {
        self.rejections.with_label_values(&[refusal.label()]).inc();
    }

    /// Refresh the per-bucket series from the attached sources (scrape time).
    pub fn refresh(&self) {
        let Some((limits, ledger)) = self.sources.get() else {
            return;
        };
        let configured = limits.configured();
        let now: HashSet<BucketKey> = configured.iter().map(|(k, _, _)| k.clone()).collect();
        let mut exported = self.exported();
        for gone in exported.difference(&now) {
            self.remove(gone);
        }
        for (key, l, _) in &configured {
            self.set_bucket(key, l, ledger.as_ref());
        }
        *exported = now;
    }

    fn set_bucket(&self, key: &BucketKey, l: &Limits, ledger: &dyn UsageLedger) {
        let b = [key.backend.as_str(), key.bucket.as_str()];
        // Unknown usage (never scanned) is a partial sum: export nothing rather than a
        // number that looks measured.
        let used = ledger.view(key).filter(|v| v.known).map(|v| v.used);
        set_or_remove(&self.used_bytes, &b, used.map(|u| u.bytes));
        set_or_remove(&self.used_objects, &b, used.map(|u| u.objects));
        set_or_remove(&self.limit_bytes, &[b[0], b[1], "hard"], l.hard_bytes);
        set_or_remove(&self.limit_bytes, &[b[0], b[1], "soft"], l.soft_bytes);
        set_or_remove(&self.limit_objects, &b, l.max_objects);
    }

    fn remove(&self, key: &BucketKey) {
        let b = [key.backend.as_str(), key.bucket.as_str()];
        for g in [&self.used_bytes, &self.used_objects, &self.limit_objects] {
            let _ = g.remove_label_values(&b);
        }
        for kind in ["hard", "soft"] {
            let _ = self.limit_bytes.remove_label_values(&[b[0], b[1], kind]);
        }
        let _ = self.soft_exceeded.remove_label_values(&b);
    }
}

impl Default for QuotaMetrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use prometheus::{Encoder, TextEncoder};

    use super::*;
    use crate::quota::ledger::{InMemoryLedger, Usage};

    fn render(r: &Registry) -> String {
        let mut buf = Vec::new();
        TextEncoder::new().encode(&r.gather(), &mut buf).unwrap();
        String::from_utf8(buf).unwrap()
    }

    fn setup() -> (Registry, QuotaMetrics, Arc<LimitCache>, Arc<InMemoryLedger>) {
        let registry = Registry::new();
        let m = QuotaMetrics::new();
        m.register(&registry).unwrap();
        let limits = Arc::new(LimitCache::new());
        let ledger = Arc::new(InMemoryLedger::new());
        m.attach(Arc::clone(&limits), ledger.clone());
        (registry, m, limits, ledger)
    }

    #[test]
    fn configured_buckets_export_usage_and_limits() {
        let (r, m, limits, ledger) = setup();
        let key = BucketKey::new("local", "photos");
        let l = Limits {
            hard_bytes: Some(100),
            soft_bytes: Some(80),
            max_objects: Some(5),
        };
        limits.set_sqlite(key.clone(), l);
        ledger.restore(
            &key,
            Usage {
                bytes: 42,
                objects: 2,
            },
            None,
        );
        ledger.adjust(&BucketKey::new("local", "unlimited"), 1, 1);
        m.soft_crossed(&key);
        m.refresh();
        let text = render(&r);
        let labels = "backend=\"local\",bucket=\"photos\"";
        assert!(
            text.contains(&format!("stowage_quota_used_bytes{{{labels}}} 42")),
            "{text}"
        );
        assert!(text.contains(&format!("stowage_quota_used_objects{{{labels}}} 2")));
        assert!(text.contains(&format!(
            "stowage_quota_limit_bytes{{{labels},kind=\"hard\"}} 100"
        )));
        assert!(text.contains(&format!(
            "stowage_quota_limit_bytes{{{labels},kind=\"soft\"}} 80"
        )));
        assert!(text.contains(&format!("stowage_quota_limit_objects{{{labels}}} 5")));
        assert!(text.contains(&format!("stowage_quota_soft_exceeded_total{{{labels}}} 1")));
        assert!(
            !text.contains("unlimited"),
            "an unlimited bucket adds no series"
        );
    }

    #[test]
    fn a_bucket_that_loses_its_limit_loses_its_series() {
        let (r, m, limits, ledger) = setup();
        let key = BucketKey::new("local", "photos");
        limits.set_sqlite(
            key.clone(),
            Limits {
                hard_bytes: Some(100),
                soft_bytes: Some(50),
                ..Limits::default()
            },
        );
        ledger.restore(&key, Usage::default(), None);
        m.soft_crossed(&key);
        m.refresh();
        limits.set_sqlite(
            key.clone(),
            Limits {
                hard_bytes: Some(100),
                ..Limits::default()
            },
        );
        m.refresh();
        assert!(!render(&r).contains("kind=\"soft\""));
        limits.set_sqlite(key, Limits::default());
        m.refresh();
        assert!(!render(&r).contains("photos"));
    }

    #[test]
    fn every_rejection_reason_is_exported_from_the_start() {
        let (r, m, _, _) = setup();
        m.rejected(Refusal::HardBytes);
        let text = render(&r);
        assert!(text.contains("stowage_quota_rejections_total{reason=\"hard_bytes\"} 1"));
        assert!(text.contains("stowage_quota_rejections_total{reason=\"max_objects\"} 0"));
        assert!(text.contains("stowage_quota_rejections_total{reason=\"usage_unknown\"} 0"));
    }

    #[test]
    fn unknown_usage_is_not_exported() {
        let (r, m, limits, ledger) = setup();
        let key = BucketKey::new("local", "photos");
        limits.set_sqlite(
            key.clone(),
            Limits {
                hard_bytes: Some(100),
                ..Limits::default()
            },
        );
        let l: Arc<dyn UsageLedger> = ledger.clone();
        let capped = limits.effective(&key).unwrap().0;
        let refused = crate::quota::ledger::reserve(&l, &key, &capped, Default::default());
        assert!(refused.is_err());
        ledger.adjust(&key, 5, 1);
        assert!(ledger.view(&key).is_some());
        m.refresh();
        let text = render(&r);
        assert!(!text.contains("stowage_quota_used_bytes{"));
        assert!(text.contains("stowage_quota_limit_bytes{"));
    }
}
