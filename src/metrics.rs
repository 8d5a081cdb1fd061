//! Prometheus metrics. Every label is bounded: operations come from the
//! `S3Operation` enum, outcomes and reasons from fixed sets, sources from `SourceKind`.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use crate::credentials::cache::{CredentialCache, SourceKind};

/// Latency buckets from 1 ms to 30 minutes: small requests and long transfers both land
/// in a meaningful bucket.
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    120.0, 300.0, 600.0, 1800.0,
];

/// All of the proxy's metrics, registered in one registry.
pub struct Metrics {
    pub registry: Registry,
    pub requests: IntCounterVec,
    pub duration: HistogramVec,
    pub bytes_in: IntCounterVec,
    pub bytes_out: IntCounterVec,
    pub auth_failures: IntCounterVec,
    pub upstream_errors: IntCounterVec,
    pub inflight: IntGauge,
    pub shed_connections: IntCounter,
    pub credential_cache_size: IntGaugeVec,
    /// `stowage_rate_limited_total{scope="global"|"key"|"ip"}`: requests refused by a
    /// rate limit.
    pub rate_limited: IntCounterVec,
    /// `stowage_quota_*`: per-bucket usage and limits (set at scrape time), soft-cap
    /// crossings and admission refusals.
    pub quota: crate::quota::metrics::QuotaMetrics,
}

impl Metrics {
    /// Build and register every metric.
    ///
    /// # Panics
    /// Only if the static metric definitions are invalid (a programming error caught
    /// by the unit test below).
    #[must_use]
    pub fn new() -> Self {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "stowage_s3_requests_total",
                "S3 requests by operation and outcome",
            ),
            &["operation", "outcome"],
        )
        .expect("valid metric");
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "stowage_s3_request_duration_seconds",
                "Time from request head to the end of the response body",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["operation"],
        )
        .expect("valid metric");
        let bytes_in = IntCounterVec::new(
            Opts::new(
                "stowage_s3_bytes_in_total",
                "Request body bytes forwarded upstream",
            ),
            &["operation"],
        )
        .expect("valid metric");
        let bytes_out = IntCounterVec::new(
            Opts::new(
                "stowage_s3_bytes_out_total",
                "Response body bytes sent to clients",
            ),
            &["operation"],
        )
        .expect("valid metric");
        let auth_failures = IntCounterVec::new(
            Opts::new(
                "stowage_s3_auth_failures_total",
                "Rejected authentications by reason",
            ),
            &["reason"],
        )
        .expect("valid metric");
        let upstream_errors = IntCounterVec::new(
            Opts::new(
                "stowage_s3_upstream_errors_total",
                "Upstream failures by kind",
            ),
            &["kind"],
        )
        .expect("valid metric");
        let inflight =
            IntGauge::new("stowage_s3_inflight_requests", "Requests in flight").expect("valid");
        let shed_connections = IntCounter::new(
            "stowage_s3_shed_connections_total",
            "Connections refused because max_connections was reached",
        )
        .expect("valid metric");
        let credential_cache_size = IntGaugeVec::new(
            Opts::new(
                "stowage_s3_credential_cache_size",
                "Credentials held in the merged cache, by source",
            ),
            &["source"],
        )
        .expect("valid metric");
        let rate_limited = IntCounterVec::new(
            Opts::new(
                "stowage_rate_limited_total",
                "Requests refused by a rate limit, by the limit's scope",
            ),
            &["scope"],
        )
        .expect("valid metric");
        // Every scope is exported from the start, so a dashboard sees zeros, not gaps.
        for scope in crate::ratelimit::LimitScope::ALL {
            rate_limited.with_label_values(&[scope.label()]);
        }
        for c in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(duration.clone()),
            Box::new(bytes_in.clone()),
            Box::new(bytes_out.clone()),
            Box::new(auth_failures.clone()),
            Box::new(upstream_errors.clone()),
            Box::new(inflight.clone()),
            Box::new(shed_connections.clone()),
            Box::new(credential_cache_size.clone()),
            Box::new(rate_limited.clone()),
        ] {
            registry.register(c).expect("unique metric names");
        }
        let quota = crate::quota::metrics::QuotaMetrics::new();
        quota.register(&registry).expect("unique metric names");
        Self {
            registry,
            requests,
            duration,
            bytes_in,
            bytes_out,
            auth_failures,
            upstream_errors,
            inflight,
            shed_connections,
            credential_cache_size,
            rate_limited,
            quota,
        }
    }

    /// Render the text exposition, refreshing gauges that are read at scrape time.
    #[must_use]
    pub fn render(&self, cache: &CredentialCache) -> String {
        for kind in SourceKind::ALL {
            let n = i64::try_from(cache.len(kind)).unwrap_or(i64::MAX);
            self.credential_cache_size
                .with_label_values(&[kind.label()])
                .set(n);
        }
        self.quota.refresh();
        let mut buf = Vec::new();
        if TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .is_err()
        {
            return String::new();
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_size_gauge_reports_each_source_at_scrape_time() {
        let m = Metrics::new();
        let cache = CredentialCache::new();
        let text = m.render(&cache);
        assert!(text.contains("stowage_s3_credential_cache_size{source=\"sqlite\"} 0"));
        assert!(text.contains("stowage_s3_credential_cache_size{source=\"kubernetes\"} 0"));
    }
}
