//! Rate limits: a global bucket, one bucket per access key, and one per source address
//! for traffic that does not (or cannot) authenticate. A refusal is a 503 `SlowDown`
//! with `Retry-After` and counts in `stowage_rate_limited_total{scope}`.
//!
//! # Where each limit applies (pipeline steps 3 and 5)
//!
//! * **Per source IP** (`s3_proxy.unauthenticated_per_ip_rps`) polices traffic that
//!   reaches no tenant: anonymous requests, malformed or unknown credentials, and bad
//!   signatures. Before authentication, a request that names no access key we know
//!   (parsing only, no cryptography) is charged to its address, and refused without
//!   any signature work when the bucket is empty. A request that names a known key is
//!   verified first and charged only if verification fails; when the address is over
//!   its limit that failure is answered with `SlowDown` instead of 403. So a flood of
//!   bad signatures is throttled whichever key it names, while a correctly signed
//!   client is never charged to its address: it is not punished for a neighbour
//!   behind the same NAT. (A known-key flood still costs one signature check per
//!   request; the signing key is cached, so that is a few hashes.)
//! * **Per access key** (`s3_proxy.per_key_rps`) and **global** (`s3_proxy.global_rps`)
//!   apply after authentication and authorization, per key first: a key that is over
//!   its own limit is refused before it takes a token from the bucket every tenant
//!   shares, so one noisy tenant cannot drain the global budget with requests that
//!   are refused anyway. Traffic refused earlier never spends either budget, so a
//!   bad-signature flood cannot starve the tenants.
//!
//! # Burst
//!
//! Each bucket holds `rps × s3_proxy.rate_burst_seconds` requests (default one second's
//! worth): an idle client may send that many at once, then `rps` a second. A rejected
//! request does not consume a token. `Retry-After` is governor's wait until the next
//! token, rounded up to whole seconds, at least 1.
//!
//! # Bounded memory
//!
//! Keyed buckets live in a [`store::CappedStore`]: at most [`MAX_TRACKED_KEYS`] access
//! keys and [`MAX_TRACKED_IPS`] source addresses are tracked individually; beyond that,
//! new keys share one overflow bucket until [`task::spawn_housekeeping`] evicts idle
//! entries (`retain_recent` + `shrink_to_fit`). IPv6 sources are limited per /64
//! ([`local::ip_key`]), so rotating addresses inside one allocation gains nothing.
//!
//! # More than one replica
//!
//! The pipeline sees only [`RateLimits`], which asks a [`RateLimitStore`]. The
//! in-process [`LocalLimits`] is the default; a store shared between replicas (e.g.
//! Redis) can implement the same trait.

pub mod anonymous;
pub mod gate;
pub mod local;
pub mod store;
pub mod task;

#[cfg(test)]
mod tests;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use prometheus::IntCounterVec;

pub use gate::{claims_known_key, known_claimed_key};
pub use local::LocalLimits;

use crate::config::ProxyConfig;
use crate::error::S3Error;

/// Access keys tracked individually before new keys share the overflow bucket. Keys
/// are authenticated, so this is defence in depth rather than an expected ceiling.
pub const MAX_TRACKED_KEYS: usize = 1_000_000;
/// Source addresses (IPv4, or IPv6 /64) tracked individually.
pub const MAX_TRACKED_IPS: usize = 100_000;
/// How often idle buckets are evicted.
pub const HOUSEKEEPING_INTERVAL: Duration = Duration::from_secs(10);

/// The three limits and their shared burst; a rate of 0 turns that limit off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimitConfig {
    pub global_rps: u32,
    pub per_key_rps: u32,
    pub per_ip_rps: u32,
    pub burst_seconds: u32,
    pub max_tracked_keys: usize,
    pub max_tracked_ips: usize,
}

impl RateLimitConfig {
    /// The limits configured in `[s3_proxy]`, with the built-in map caps.
    #[must_use]
    pub fn from_proxy(p: &ProxyConfig) -> Self {
        Self {
            global_rps: p.global_rps,
            per_key_rps: p.per_key_rps,
            per_ip_rps: p.unauthenticated_per_ip_rps,
            burst_seconds: p.rate_burst_seconds,
            max_tracked_keys: MAX_TRACKED_KEYS,
            max_tracked_ips: MAX_TRACKED_IPS,
        }
    }
}

/// Which limit refused a request (the metric's `scope` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitScope {
    Global,
    Key,
    Ip,
}

impl LimitScope {
    pub const ALL: [Self; 3] = [Self::Global, Self::Key, Self::Ip];

    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Self::Global => "global",
            Self::Key => "key",
            Self::Ip => "ip",
        }
    }
}

/// A refusal: which limit, and how long until it would admit the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttled {
    pub scope: LimitScope,
    pub retry_after: Duration,
}

impl Throttled {
    /// `Retry-After` in whole seconds: the wait rounded up, at least 1.
    #[must_use]
    pub fn retry_after_secs(&self) -> u64 {
        let whole = self.retry_after.as_secs();
        let up = whole.saturating_add(u64::from(self.retry_after.subsec_nanos() > 0));
        up.max(1)
    }
}

impl From<Throttled> for S3Error {
    fn from(t: Throttled) -> Self {
        S3Error::RateLimited {
            retry_after_secs: t.retry_after_secs(),
        }
    }
}

/// What a request is counted against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject<'a> {
    Global,
    AccessKey(&'a str),
    SourceIp(IpAddr),
}

/// Where token buckets live. Implementations must be cheap and never block on I/O for
/// long: `check` runs on every request.
pub trait RateLimitStore: Send + Sync {
    /// Take one token from `subject`'s bucket, or say how long until one is available.
    ///
    /// # Errors
    /// [`Throttled`] when the bucket is empty.
    fn check(&self, subject: Subject<'_>) -> Result<(), Throttled>;
    /// Evict idle per-subject state (bounded memory). Called periodically.
    fn housekeep(&self);
}

/// Whether the source address was charged before authentication.
#[must_use]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpCharge {
    /// The request named no known key: its address already paid.
    Charged,
    /// The request names a known key: its address pays only if verification fails.
    OnFailure,
}

/// The pipeline's view of rate limiting: the order of checks, and the refusal metric.
pub struct RateLimits {
    store: Arc<dyn RateLimitStore>,
    refused: IntCounterVec,
    /// Anonymous bindings' own per-address rates.
    bindings: anonymous::BindingLimits,
}

impl RateLimits {
    /// `refused` is `stowage_rate_limited_total`, labelled by [`LimitScope::label`].
    #[must_use]
    pub fn new(store: Arc<dyn RateLimitStore>, refused: IntCounterVec) -> Self {
        Self {
            store,
            refused,
            bindings: anonymous::BindingLimits::new(1),
        }
    }

    /// An anonymous request on a bound bucket: its address, at the binding's own rate
    /// when it sets one (per bucket and address), else at the shared unauthenticated
    /// rate; then the global bucket.
    ///
    /// # Errors
    /// [`Throttled`] with the scope of the limit that refused.
    pub fn admit_anonymous(
        &self,
        ip: IpAddr,
        bucket: &str,
        binding_rps: Option<f64>,
    ) -> Result<(), Throttled> {
        let tracked = match binding_rps.filter(|r| r.is_finite() && *r > 0.0) {
            Some(rps) => self.bindings.check(bucket, ip, rps).inspect_err(|t| {
                self.refused.with_label_values(&[t.scope.label()]).inc();
            })?,
            None => false,
        };
        if !tracked {
            self.check(Subject::SourceIp(ip))?;
        }
        self.check(Subject::Global)
    }

    /// Before authentication: charge the address unless the request names a known key.
    ///
    /// # Errors
    /// [`Throttled`] (scope `ip`) when the address is over its limit.
    pub fn before_auth(&self, ip: IpAddr, names_known_key: bool) -> Result<IpCharge, Throttled> {
        if names_known_key {
            return Ok(IpCharge::OnFailure);
        }
        self.check(Subject::SourceIp(ip))?;
        Ok(IpCharge::Charged)
    }

    /// Authentication failed. `Some` means the address is over its limit: answer with
    /// the returned refusal instead of the authentication error.
    #[must_use]
    pub fn after_auth_failure(&self, ip: IpAddr, charge: IpCharge) -> Option<Throttled> {
        match charge {
            IpCharge::Charged => None,
            IpCharge::OnFailure => self.check(Subject::SourceIp(ip)).err(),
        }
    }

    /// Step 5, for an authenticated and authorized request: per key, then global.
    ///
    /// # Errors
    /// [`Throttled`] with the scope of the limit that refused.
    pub fn admit(&self, access_key: &str) -> Result<(), Throttled> {
        self.check(Subject::AccessKey(access_key))?;
        self.check(Subject::Global)
    }

    /// One check against any bucket (e.g. an anonymous request: its address, then the
    /// global bucket once it is going to be served). Refusals are counted.
    ///
    /// # Errors
    /// [`Throttled`] when the bucket is empty.
    pub fn check(&self, subject: Subject<'_>) -> Result<(), Throttled> {
        self.store.check(subject).inspect_err(|t| {
            self.refused.with_label_values(&[t.scope.label()]).inc();
        })
    }

    /// Evict idle state (see [`task::spawn_housekeeping`]).
    pub fn housekeep(&self) {
        self.store.housekeep();
        self.bindings.housekeep();
    }
}
