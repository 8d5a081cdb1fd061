//! The limits on governor's fake clock: refill, burst, independence, ordering,
//! eviction and the bound on tracked addresses.

use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;
use std::time::Duration;

use governor::clock::FakeRelativeClock;
use prometheus::{IntCounterVec, Opts};

use super::*;

fn cfg(global: u32, key: u32, ip: u32, burst: u32) -> RateLimitConfig {
    RateLimitConfig {
        global_rps: global,
        per_key_rps: key,
        per_ip_rps: ip,
        burst_seconds: burst,
        max_tracked_keys: 1000,
        max_tracked_ips: 1000,
    }
}

fn counter() -> IntCounterVec {
    IntCounterVec::new(Opts::new("t", "t"), &["scope"]).expect("metric")
}

/// Limits on a fake clock, the clock, and the refusal counter.
fn limits(
    c: &RateLimitConfig,
) -> (
    RateLimits,
    Arc<LocalLimits<FakeRelativeClock>>,
    FakeRelativeClock,
    IntCounterVec,
) {
    let clock = FakeRelativeClock::default();
    let local = Arc::new(LocalLimits::with_clock(c, &clock));
    let refused = counter();
    let limits = RateLimits::new(local.clone(), refused.clone());
    (limits, local, clock, refused)
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

/// How many of `n` immediate checks pass.
fn admitted(limits: &RateLimits, subject: Subject<'_>, n: usize) -> usize {
    (0..n).filter(|_| limits.check(subject).is_ok()).count()
}

#[test]
fn a_bucket_admits_one_second_of_burst_then_refuses() {
    let (l, _, _, _) = limits(&cfg(0, 5, 0, 1));
    assert_eq!(admitted(&l, Subject::AccessKey("AK"), 20), 5);
}

#[test]
fn burst_seconds_scale_the_bucket() {
    let (l, _, _, _) = limits(&cfg(0, 5, 0, 3));
    assert_eq!(admitted(&l, Subject::AccessKey("AK"), 40), 15);
}

#[test]
fn tokens_refill_at_the_configured_rate() {
    let (l, _, clock, _) = limits(&cfg(4, 0, 0, 1));
    assert_eq!(admitted(&l, Subject::Global, 10), 4);
    clock.advance(Duration::from_millis(250));
    assert_eq!(admitted(&l, Subject::Global, 10), 1);
    clock.advance(Duration::from_secs(10));
    // Refill never exceeds the bucket.
    assert_eq!(admitted(&l, Subject::Global, 10), 4);
}

#[test]
fn a_refusal_reports_the_wait_until_the_next_token() {
    let (l, _, clock, _) = limits(&cfg(0, 2, 0, 1));
    assert_eq!(admitted(&l, Subject::AccessKey("AK"), 2), 2);
    let t = l.check(Subject::AccessKey("AK")).expect_err("empty bucket");
    assert_eq!(t.scope, LimitScope::Key);
    assert_eq!(t.retry_after, Duration::from_millis(500));
    clock.advance(Duration::from_millis(200));
    let t = l.check(Subject::AccessKey("AK")).expect_err("still empty");
    assert_eq!(t.retry_after, Duration::from_millis(300));
    assert_eq!(t.retry_after_secs(), 1);
}

#[test]
fn retry_after_rounds_up_to_whole_seconds_and_is_at_least_one() {
    let t = |ms| Throttled {
        scope: LimitScope::Ip,
        retry_after: Duration::from_millis(ms),
    };
    assert_eq!(t(0).retry_after_secs(), 1);
    assert_eq!(t(1).retry_after_secs(), 1);
    assert_eq!(t(1000).retry_after_secs(), 1);
    assert_eq!(t(1001).retry_after_secs(), 2);
    assert_eq!(t(2500).retry_after_secs(), 3);
    let err = S3Error::from(t(2500));
    assert_eq!(err.retry_after_secs(), Some(3));
    assert_eq!(err.code(), "SlowDown");
}

#[test]
fn keys_and_addresses_have_independent_buckets() {
    let (l, _, _, _) = limits(&cfg(0, 2, 2, 1));
    assert_eq!(admitted(&l, Subject::AccessKey("A"), 5), 2);
    assert_eq!(admitted(&l, Subject::AccessKey("B"), 5), 2);
    assert_eq!(admitted(&l, Subject::SourceIp(ip("192.0.2.1")), 5), 2);
    assert_eq!(admitted(&l, Subject::SourceIp(ip("192.0.2.2")), 5), 2);
}

#[test]
fn ipv6_addresses_share_a_bucket_per_64_and_mapped_ipv4_is_ipv4() {
    let (l, _, _, _) = limits(&cfg(0, 0, 2, 1));
    assert_eq!(admitted(&l, Subject::SourceIp(ip("2001:db8:0:1::1")), 1), 1);
    assert_eq!(
        admitted(&l, Subject::SourceIp(ip("2001:db8:0:1::ffff")), 5),
        1
    );
    assert_eq!(admitted(&l, Subject::SourceIp(ip("2001:db8:0:2::1")), 5), 2);
    assert_eq!(admitted(&l, Subject::SourceIp(ip("192.0.2.9")), 1), 1);
    assert_eq!(
        admitted(&l, Subject::SourceIp(ip("::ffff:192.0.2.9")), 5),
        1
    );
}

#[test]
fn a_zero_rate_turns_a_limit_off() {
    let (l, local, _, _) = limits(&cfg(0, 0, 0, 1));
    assert_eq!(admitted(&l, Subject::Global, 1000), 1000);
    assert_eq!(admitted(&l, Subject::AccessKey("A"), 1000), 1000);
    assert_eq!(admitted(&l, Subject::SourceIp(ip("192.0.2.1")), 1000), 1000);
    assert_eq!(local.tracked(), (0, 0));
}

#[test]
fn a_key_over_its_limit_spends_no_global_token() {
    let (l, _, _, refused) = limits(&cfg(3, 1, 0, 1));
    assert!(l.admit("noisy").is_ok());
    for _ in 0..10 {
        assert_eq!(l.admit("noisy").map_err(|t| t.scope), Err(LimitScope::Key));
    }
    // The global bucket still has the two tokens the noisy key did not take.
    assert!(l.admit("quiet-1").is_ok());
    assert!(l.admit("quiet-2").is_ok());
    assert_eq!(
        l.admit("quiet-3").map_err(|t| t.scope),
        Err(LimitScope::Global)
    );
    assert_eq!(refused.with_label_values(&["key"]).get(), 10);
    assert_eq!(refused.with_label_values(&["global"]).get(), 1);
}

#[test]
fn unknown_key_traffic_is_charged_before_authentication() {
    let (l, _, _, refused) = limits(&cfg(0, 0, 2, 1));
    let attacker = ip("198.51.100.1");
    assert_eq!(l.before_auth(attacker, false), Ok(IpCharge::Charged));
    assert_eq!(l.after_auth_failure(attacker, IpCharge::Charged), None);
    assert_eq!(l.before_auth(attacker, false), Ok(IpCharge::Charged));
    let t = l.before_auth(attacker, false).expect_err("over the limit");
    assert_eq!(t.scope, LimitScope::Ip);
    assert_eq!(refused.with_label_values(&["ip"]).get(), 1);
    // Another address is unaffected.
    assert_eq!(
        l.before_auth(ip("198.51.100.2"), false),
        Ok(IpCharge::Charged)
    );
}

#[test]
fn known_key_traffic_pays_only_when_verification_fails() {
    let (l, _, _, _) = limits(&cfg(0, 0, 2, 1));
    let nat = ip("198.51.100.1");
    // Two failures exhaust the address ...
    for _ in 0..2 {
        let charge = l.before_auth(nat, true).expect("no charge up front");
        assert_eq!(l.after_auth_failure(nat, charge), None);
    }
    // ... the next failure is refused as SlowDown, and unknown-key traffic before auth,
    let charge = l.before_auth(nat, true).expect("no charge up front");
    assert_eq!(
        l.after_auth_failure(nat, charge).map(|t| t.scope),
        Some(LimitScope::Ip)
    );
    assert!(l.before_auth(nat, false).is_err());
    // ... while a correctly signed client behind the same address is never charged.
    for _ in 0..100 {
        assert_eq!(l.before_auth(nat, true), Ok(IpCharge::OnFailure));
        assert!(l.admit("good").is_ok());
    }
}

#[test]
fn housekeeping_evicts_idle_entries_only() {
    let (l, local, clock, _) = limits(&cfg(0, 10, 10, 1));
    for i in 0..50u8 {
        let _ = l.check(Subject::SourceIp(IpAddr::from([192, 0, 2, i])));
        let _ = l.check(Subject::AccessKey(&format!("AK{i}")));
    }
    assert_eq!(local.tracked(), (50, 50));
    l.housekeep();
    assert_eq!(local.tracked(), (50, 50), "entries in use stay");
    clock.advance(Duration::from_secs(5));
    let _ = l.check(Subject::SourceIp(ip("192.0.2.7")));
    l.housekeep();
    assert_eq!(
        local.tracked(),
        (0, 1),
        "idle entries go, the active one stays"
    );
}

#[test]
fn an_ipv6_spray_never_tracks_more_than_the_cap() {
    let mut c = cfg(0, 0, 5, 1);
    c.max_tracked_ips = 256;
    let (l, local, _, _) = limits(&c);
    let mut refused = 0;
    for i in 0..20_000u128 {
        // A distinct /64 every time: the worst case for a per-/64 key.
        let addr = Ipv6Addr::from((0x2001_0db8u128 << 96) | (i << 64) | 1);
        refused += usize::from(l.check(Subject::SourceIp(IpAddr::V6(addr))).is_err());
    }
    assert!(local.tracked().1 <= 256, "tracked {}", local.tracked().1);
    // Beyond the cap the spray shares one bucket: almost everything is refused.
    assert!(refused >= 20_000 - 256 - 5, "refused {refused}");
}

#[test]
fn addresses_tracked_before_a_spray_keep_their_own_bucket() {
    let mut c = cfg(0, 0, 3, 1);
    c.max_tracked_ips = 4;
    let (l, _, _, _) = limits(&c);
    let regular = ip("192.0.2.1");
    assert!(l.check(Subject::SourceIp(regular)).is_ok());
    for i in 0..100u8 {
        let _ = l.check(Subject::SourceIp(IpAddr::from([203, 0, 113, i])));
    }
    assert_eq!(admitted(&l, Subject::SourceIp(regular), 5), 2);
}
