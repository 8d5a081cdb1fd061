//! Per-binding source-address limits for anonymous requests: a binding may set its
//! own `per_source_ip_rps`. Buckets are keyed by (bucket, address), so alternating
//! between bindings with different rates never resets a client's bucket (the Go
//! proxy's bypass). One keyed limiter per distinct rate; idle entries are evicted by
//! the housekeeping task, and at most [`super::MAX_TRACKED_IPS`] are tracked per rate;
//! beyond that the caller falls back to the shared, capped per-address limiter (whose
//! overflow bucket bounds memory), so a flood of new addresses cannot lock out the
//! clients already tracked.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};

use super::local::ip_key;
use super::{LimitScope, MAX_TRACKED_IPS, Throttled};

/// Rate limiters of anonymous bindings that carry their own per-address rate.
#[derive(Default)]
pub struct BindingLimits {
    by_rate: DashMap<u64, Arc<DefaultKeyedRateLimiter<(String, IpAddr)>>>,
    burst_seconds: u32,
}

impl BindingLimits {
    #[must_use]
    pub fn new(burst_seconds: u32) -> Self {
        Self {
            by_rate: DashMap::new(),
            burst_seconds: burst_seconds.max(1),
        }
    }

    /// Take a token for `ip` on `bucket` at `rps` (> 0; fractions allowed). `Ok(false)`:
    /// this rate's map is full and the address is not charged here (use the shared
    /// limiter instead).
    ///
    /// # Errors
    /// [`Throttled`] (scope `ip`) when the address is over the binding's rate.
    pub fn check(&self, bucket: &str, ip: IpAddr, rps: f64) -> Result<bool, Throttled> {
        let Some(quota) = quota(rps, self.burst_seconds) else {
            return Ok(false);
        };
        let limiter = Arc::clone(
            self.by_rate
                .entry(rps.to_bits())
                .or_insert_with(|| Arc::new(governor::RateLimiter::keyed(quota)))
                .value(),
        );
        let key = (bucket.to_owned(), ip_key(ip));
        if limiter.len() >= MAX_TRACKED_IPS {
            return Ok(false);
        }
        limiter
            .check_key(&key)
            .map(|()| true)
            .map_err(|nu| Throttled {
                scope: LimitScope::Ip,
                retry_after: nu.wait_time_from(DefaultClock::default().now()),
            })
    }

    /// Evict idle entries.
    pub fn housekeep(&self) {
        for l in &self.by_rate {
            l.retain_recent();
            l.shrink_to_fit();
        }
    }
}

fn quota(rps: f64, burst_seconds: u32) -> Option<Quota> {
    if !rps.is_finite() || rps <= 0.0 {
        return None;
    }
    let burst = NonZeroU32::new((rps * f64::from(burst_seconds)).ceil().clamp(1.0, 1e6) as u32)?;
    // Rates below one request a day are treated as one a day (no overflow, no panic).
    let period = Duration::try_from_secs_f64((1.0 / rps).clamp(1e-6, 86_400.0)).ok()?;
    Quota::with_period(period).map(|q| q.allow_burst(burst))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bindings_rate_limits_each_address_per_bucket() {
        let l = BindingLimits::new(1);
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let other: IpAddr = "192.0.2.8".parse().unwrap();
        assert!(l.check("public", ip, 2.0).is_ok());
        assert!(l.check("public", ip, 2.0).is_ok());
        let t = l
            .check("public", ip, 2.0)
            .expect_err("third in the same second");
        assert_eq!(t.scope, LimitScope::Ip);
        assert!(l.check("public", other, 2.0).is_ok(), "another address");
        assert!(l.check("assets", ip, 2.0).is_ok(), "another bucket");
        assert_eq!(l.check("public", ip, 0.0), Ok(false), "0: no override");
        assert!(
            l.check("tiny", ip, 1e-30).is_ok(),
            "a tiny rate never panics"
        );
    }
}
