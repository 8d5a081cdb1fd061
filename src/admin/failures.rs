//! Guessing the admin token: after [`MAX_FAILURES`] failed attempts from one address
//! within [`WINDOW`], that address is refused (429) without its attempt being checked,
//! until the window passes. A correct token never counts. The map is bounded: beyond
//! [`MAX_TRACKED`] addresses, stale entries are dropped first and then all unknown
//! addresses share one entry (fail closed under a distributed guess).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

pub const MAX_FAILURES: u32 = 20;
pub const WINDOW: Duration = Duration::from_secs(60);
pub const MAX_TRACKED: usize = 10_000;

/// The shared entry once [`MAX_TRACKED`] addresses are tracked.
const OVERFLOW: IpAddr = IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED);

#[derive(Debug, Default)]
pub struct FailureGate {
    by_ip: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

impl FailureGate {
    /// Is `ip` refused right now (too many recent failures)?
    #[must_use]
    pub fn blocked(&self, ip: IpAddr, now: Instant) -> bool {
        let map = self.by_ip.lock().unwrap_or_else(PoisonError::into_inner);
        let key = if map.contains_key(&ip) || map.len() < MAX_TRACKED {
            ip
        } else {
            OVERFLOW
        };
        map.get(&key)
            .is_some_and(|(n, since)| *n >= MAX_FAILURES && now.duration_since(*since) < WINDOW)
    }

    /// Count one failed attempt from `ip`.
    pub fn failed(&self, ip: IpAddr, now: Instant) {
        let mut map = self.by_ip.lock().unwrap_or_else(PoisonError::into_inner);
        if !map.contains_key(&ip) && map.len() >= MAX_TRACKED {
            map.retain(|_, (_, since)| now.duration_since(*since) < WINDOW);
        }
        let key = if map.contains_key(&ip) || map.len() < MAX_TRACKED {
            ip
        } else {
            OVERFLOW
        };
        let e = map.entry(key).or_insert((0, now));
        if now.duration_since(e.1) >= WINDOW {
            *e = (0, now);
        }
        e.0 = e.0.saturating_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enough_failures_block_an_address_for_the_window_and_others_are_unaffected() {
        let g = FailureGate::default();
        let (a, b): (IpAddr, IpAddr) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        let t0 = Instant::now();
        for _ in 0..MAX_FAILURES {
            assert!(!g.blocked(a, t0));
            g.failed(a, t0);
        }
        assert!(g.blocked(a, t0), "the next attempt is refused unchecked");
        assert!(!g.blocked(b, t0), "another address is not");
        assert!(!g.blocked(a, t0 + WINDOW), "the window passes");
        g.failed(a, t0 + WINDOW);
        assert!(!g.blocked(a, t0 + WINDOW), "and the count restarts");
    }
}
