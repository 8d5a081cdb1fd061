//! The informer's health metrics. Registered on the proxy's registry only when the
//! Kubernetes source is enabled. Labels are bounded: event types and error kinds come
//! from fixed sets.

use prometheus::{Gauge, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

/// Values of the `type` label of the events counter.
pub const EVENT_TYPES: [&str; 4] = ["added", "modified", "deleted", "listed"];
/// Values of the `kind` label of the errors counter.
pub const ERROR_KINDS: [&str; 6] = [
    "list",
    "watch_start",
    "watch",
    "expired",
    "status",
    "no_resource_version",
];

/// Counters and gauges the informer updates.
#[derive(Clone)]
pub struct InformerMetrics {
    /// `stowage_kubernetes_watch_events_total{type}`: added | modified | deleted | listed.
    pub events: IntCounterVec,
    /// `stowage_kubernetes_relists_total`: completed full lists (the first one included).
    pub relists: IntCounter,
    /// `stowage_kubernetes_watch_errors_total{kind}`: list | watch_start | watch |
    /// expired | status | no_resource_version.
    pub errors: IntCounterVec,
    /// `stowage_kubernetes_last_event_timestamp_seconds`: Unix time of the last event.
    pub last_event: Gauge,
    /// `stowage_kubernetes_invalid_secrets`: watched Secrets refused as invalid.
    pub invalid: IntGauge,
    /// `stowage_kubernetes_synced`: 1 once a full list has been applied.
    pub synced: IntGauge,
}

impl InformerMetrics {
    /// Build the metrics and register them on `registry`.
    ///
    /// # Errors
    /// When a metric of the same name is already registered.
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let m = Self::unregistered()?;
        for c in [
            Box::new(m.events.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(m.relists.clone()),
            Box::new(m.errors.clone()),
            Box::new(m.last_event.clone()),
            Box::new(m.invalid.clone()),
            Box::new(m.synced.clone()),
        ] {
            registry.register(c)?;
        }
        Ok(m)
    }

    /// The metrics without a registry (unit tests, benches).
    ///
    /// # Errors
    /// Only if a static definition is invalid.
    pub fn unregistered() -> Result<Self, prometheus::Error> {
        let m = Self::build()?;
        // Every series exists from the start (at 0), so rates and alerts work before
        // the first event or error of a kind.
        for t in EVENT_TYPES {
            m.events.with_label_values(&[t]);
        }
        for k in ERROR_KINDS {
            m.errors.with_label_values(&[k]);
        }
        Ok(m)
    }

    fn build() -> Result<Self, prometheus::Error> {
        Ok(Self {
            events: IntCounterVec::new(
                Opts::new(
                    "stowage_kubernetes_watch_events_total",
                    "Secret events applied by the Kubernetes informer, by type",
                ),
                &["type"],
            )?,
            relists: IntCounter::new(
                "stowage_kubernetes_relists_total",
                "Full lists of the watched Secrets applied (the first one included)",
            )?,
            errors: IntCounterVec::new(
                Opts::new(
                    "stowage_kubernetes_watch_errors_total",
                    "List and watch failures of the Kubernetes informer, by kind",
                ),
                &["kind"],
            )?,
            last_event: Gauge::new(
                "stowage_kubernetes_last_event_timestamp_seconds",
                "Unix time of the last event or list the informer applied",
            )?,
            invalid: IntGauge::new(
                "stowage_kubernetes_invalid_secrets",
                "Watched Secrets refused as invalid (they contribute nothing)",
            )?,
            synced: IntGauge::new(
                "stowage_kubernetes_synced",
                "1 once the informer has applied a full list of the watched Secrets",
            )?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_registers_once_and_renders() {
        let registry = Registry::new();
        InformerMetrics::register(&registry).unwrap();
        let text = {
            let mut buf = Vec::new();
            prometheus::Encoder::encode(
                &prometheus::TextEncoder::new(),
                &registry.gather(),
                &mut buf,
            )
            .unwrap();
            String::from_utf8(buf).unwrap()
        };
        assert!(
            text.contains("stowage_kubernetes_watch_errors_total{kind=\"expired\"} 0"),
            "{text}"
        );
        assert!(
            text.contains("stowage_kubernetes_watch_events_total{type=\"deleted\"} 0"),
            "{text}"
        );
        let names: Vec<String> = registry
            .gather()
            .iter()
            .map(|f| f.get_name().to_owned())
            .collect();
        for n in [
            "stowage_kubernetes_watch_events_total",
            "stowage_kubernetes_relists_total",
            "stowage_kubernetes_watch_errors_total",
            "stowage_kubernetes_last_event_timestamp_seconds",
            "stowage_kubernetes_invalid_secrets",
            "stowage_kubernetes_synced",
        ] {
            assert!(names.iter().any(|x| x == n), "{n} missing from {names:?}");
        }
        assert!(
            InformerMetrics::register(&registry).is_err(),
            "duplicates are refused"
        );
    }
}
