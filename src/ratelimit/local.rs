//! The in-process [`RateLimitStore`]: governor GCRA limiters, generic over the clock so
//! tests drive time with `governor::clock::FakeRelativeClock`.

use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{NotUntil, Quota, RateLimiter};

use super::store::CappedStore;
use super::{LimitScope, RateLimitConfig, RateLimitStore, Subject, Throttled};

type Direct<C> = RateLimiter<NotKeyed, InMemoryState, C, NoOpMiddleware<<C as Clock>::Instant>>;
type Keyed<K, C> = RateLimiter<K, CappedStore<K>, C, NoOpMiddleware<<C as Clock>::Instant>>;

/// Highest rate accepted in code; configuration validates a far lower bound. Above a
/// billion a second governor's one-cell interval would round to zero nanoseconds.
const MAX_RPS: u32 = 1_000_000_000;

/// Token buckets held in this process. A limit whose rate is 0 is absent (off).
pub struct LocalLimits<C: Clock = DefaultClock> {
    global: Option<Direct<C>>,
    per_key: Option<Keyed<String, C>>,
    per_ip: Option<Keyed<IpAddr, C>>,
}

impl LocalLimits<DefaultClock> {
    /// Limits on the real monotonic clock.
    #[must_use]
    pub fn new(cfg: &RateLimitConfig) -> Self {
        Self::with_clock(cfg, &DefaultClock::default())
    }
}

impl<C: Clock + Clone> LocalLimits<C> {
    /// Limits on `clock` (every limiter gets a clone; clones of governor's fake clock
    /// share one time).
    #[must_use]
    pub fn with_clock(cfg: &RateLimitConfig, clock: &C) -> Self {
        let quota = |rps| quota(rps, cfg.burst_seconds);
        Self {
            global: quota(cfg.global_rps).map(|q| RateLimiter::direct_with_clock(q, clock.clone())),
            per_key: quota(cfg.per_key_rps).map(|q| {
                RateLimiter::new(q, CappedStore::new(cfg.max_tracked_keys), clock.clone())
            }),
            per_ip: quota(cfg.per_ip_rps)
                .map(|q| RateLimiter::new(q, CappedStore::new(cfg.max_tracked_ips), clock.clone())),
        }
    }

    /// Keys and source addresses currently tracked individually: `(keys, ips)`.
    #[must_use]
    pub fn tracked(&self) -> (usize, usize) {
        (
            self.per_key.as_ref().map_or(0, RateLimiter::len),
            self.per_ip.as_ref().map_or(0, RateLimiter::len),
        )
    }
}

impl<C> RateLimitStore for LocalLimits<C>
where
    C: Clock + Clone + Send + Sync,
    C::Instant: Send + Sync,
{
    fn check(&self, subject: Subject<'_>) -> Result<(), Throttled> {
        match subject {
            Subject::Global => match &self.global {
                Some(l) => l
                    .check()
                    .map_err(|n| throttled(LimitScope::Global, &n, l.clock())),
                None => Ok(()),
            },
            Subject::AccessKey(key) => match &self.per_key {
                // governor takes `&K`; one short allocation per authenticated request.
                Some(l) => l
                    .check_key(&key.to_owned())
                    .map_err(|n| throttled(LimitScope::Key, &n, l.clock())),
                None => Ok(()),
            },
            Subject::SourceIp(ip) => match &self.per_ip {
                Some(l) => l
                    .check_key(&ip_key(ip))
                    .map_err(|n| throttled(LimitScope::Ip, &n, l.clock())),
                None => Ok(()),
            },
        }
    }

    fn housekeep(&self) {
        if let Some(l) = &self.per_key {
            l.retain_recent();
            l.shrink_to_fit();
        }
        if let Some(l) = &self.per_ip {
            l.retain_recent();
            l.shrink_to_fit();
        }
    }
}

/// `rps` requests a second with a bucket of `rps × burst_seconds`; `None` when off.
fn quota(rps: u32, burst_seconds: u32) -> Option<Quota> {
    let rps = NonZeroU32::new(rps.min(MAX_RPS))?;
    let burst = NonZeroU32::new(rps.get().saturating_mul(burst_seconds.max(1)))?;
    Some(Quota::per_second(rps).allow_burst(burst))
}

fn throttled<C: Clock>(
    scope: LimitScope,
    not_until: &NotUntil<C::Instant>,
    clock: &C,
) -> Throttled {
    Throttled {
        scope,
        retry_after: not_until.wait_time_from(clock.now()),
    }
}

/// The identity a source address is limited under. IPv4-mapped IPv6 addresses are the
/// IPv4 address; a native IPv6 address is its /64, because one subscriber or host
/// usually holds a whole /64 and could otherwise rotate addresses to reset its bucket.
#[must_use]
pub fn ip_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(Ipv6Addr::from(bits))
        }
    }
}
