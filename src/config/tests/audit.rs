//! `[audit]` and the shutdown keys of `[server]`.

use std::time::Duration;

use super::{env_of, error_of, parse};
use crate::config::from_toml_str;

#[test]
fn audit_defaults_record_everything_but_successful_reads() {
    let c = parse("").expect("defaults");
    assert!(c.audit.enabled);
    assert!(c.audit.sample_success_reads.get().abs() < f64::EPSILON);
    assert_eq!(c.audit.queue_capacity, 8192);
    assert_eq!(c.audit.retention, Duration::from_secs(30 * 24 * 3600));
    assert_eq!(c.server.drain_delay, Duration::from_secs(5));
}

#[test]
fn sample_rate_takes_integers_and_floats_within_zero_to_one() {
    let c = parse("[audit]\nsample_success_reads = 1").expect("integer 1");
    assert!((c.audit.sample_success_reads.get() - 1.0).abs() < f64::EPSILON);
    let c = parse("[audit]\nsample_success_reads = 0.25").expect("0.25");
    assert!((c.audit.sample_success_reads.get() - 0.25).abs() < f64::EPSILON);
    for bad in ["1.5", "-0.1", "nan", "inf"] {
        let err = error_of(&format!("[audit]\nsample_success_reads = {bad}"), &[]);
        assert!(
            err.starts_with("audit.sample_success_reads: "),
            "{bad}: {err}"
        );
    }
}

#[test]
fn audit_queue_and_retention_are_range_checked_naming_the_key() {
    let err = error_of("[audit]\nqueue_capacity = 0", &[]);
    assert!(
        err.starts_with("audit.queue_capacity: 0 is out of range"),
        "{err}"
    );
    let err = error_of("[audit]\nretention = \"10m\"", &[]);
    assert!(
        err.starts_with("audit.retention: must be at least 1h"),
        "{err}"
    );
    let err = error_of("[audit]\nflush = 1", &[]);
    assert!(err.starts_with("audit.flush: unknown field"), "{err}");
}

#[test]
fn drain_delay_is_overridable_from_the_environment_and_bounded() {
    let env = env_of(&[("STOWAGE_SERVER__DRAIN_DELAY", "0s")]);
    let c = from_toml_str("", &env).expect("override");
    assert_eq!(c.server.drain_delay, Duration::ZERO);
    let err = error_of("[server]\ndrain_delay = \"2h\"", &[]);
    assert!(
        err.starts_with("server.drain_delay: must be at most 1h"),
        "{err}"
    );
}
