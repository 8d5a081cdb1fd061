//! A keyed governor state store with a hard cap on the number of keys.
//!
//! governor's own keyed stores grow with every distinct key until `retain_recent` runs.
//! Keys here come from the network (source addresses) or from tenants, so between two
//! housekeeping passes an address spray could grow the map without bound. This store
//! refuses to create an entry once `cap` keys are tracked: a new key beyond the cap
//! shares one *overflow* bucket with every other such key. Keys already tracked keep
//! their own buckets, so established clients are unaffected, while a spray of fresh
//! addresses is throttled as if it came from one client. Housekeeping drops idle
//! entries, which makes room again.

use std::hash::Hash;

use dashmap::DashMap;
use governor::nanos::Nanos;
use governor::state::keyed::ShrinkableKeyedStateStore;
use governor::state::{InMemoryState, NotKeyed, StateStore};

/// A `DashMap` of GCRA states bounded to `cap` entries plus one shared overflow state.
pub struct CappedStore<K: Hash + Eq> {
    map: DashMap<K, InMemoryState>,
    overflow: InMemoryState,
    cap: usize,
}

impl<K: Hash + Eq + Clone> CappedStore<K> {
    /// A store that tracks at most `cap` keys individually (`cap` 0 sends every key to
    /// the shared overflow bucket).
    #[must_use]
    pub fn new(cap: usize) -> Self {
        Self {
            map: DashMap::new(),
            overflow: InMemoryState::default(),
            cap,
        }
    }

    /// Keys tracked individually (the overflow bucket is not counted).
    #[must_use]
    pub fn tracked(&self) -> usize {
        self.map.len()
    }
}

impl<K: Hash + Eq + Clone> StateStore for CappedStore<K> {
    type Key = K;

    fn measure_and_replace<T, F, E>(&self, key: &K, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        if let Some(state) = self.map.get(key) {
            return state.measure_and_replace(&NotKeyed::NonKey, f);
        }
        // `len` and the insert below are not atomic together: concurrent first requests
        // may overshoot the cap by at most the number of requests in flight, which is
        // itself bounded by the listener's connection limit.
        if self.map.len() >= self.cap {
            return self.overflow.measure_and_replace(&NotKeyed::NonKey, f);
        }
        let state = self.map.entry(key.clone()).or_default();
        state.measure_and_replace(&NotKeyed::NonKey, f)
    }
}

impl<K: Hash + Eq + Clone> ShrinkableKeyedStateStore<K> for CappedStore<K> {
    fn retain_recent(&self, drop_below: Nanos) {
        self.map.retain(|_, state| !is_idle(state, drop_below));
    }

    fn shrink_to_fit(&self) {
        self.map.shrink_to_fit();
    }

    fn len(&self) -> usize {
        self.map.len()
    }

    fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// Whether a state's theoretical arrival time is at or before `drop_below`, i.e. the
/// state is indistinguishable from a fresh one. The state is read through the
/// `StateStore` interface: a closure that reports the value and declines to update.
fn is_idle(state: &InMemoryState, drop_below: Nanos) -> bool {
    let tat = state
        .measure_and_replace(&NotKeyed::NonKey, |tat| {
            Err::<((), Nanos), Nanos>(tat.unwrap_or_default())
        })
        .err()
        .unwrap_or_default();
    tat <= drop_below
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(state: &InMemoryState, tat: u64) {
        let _ = state.measure_and_replace(&NotKeyed::NonKey, |_| {
            Ok::<((), Nanos), ()>(((), Nanos::new(tat)))
        });
    }

    #[test]
    fn keys_beyond_the_cap_share_the_overflow_state() {
        let store = CappedStore::<u32>::new(2);
        for k in 0..10 {
            let _ = store.measure_and_replace(&k, |_| Ok::<((), Nanos), ()>(((), Nanos::new(5))));
        }
        assert_eq!(store.tracked(), 2);
        assert!(!is_idle(&store.overflow, Nanos::new(4)));
    }

    #[test]
    fn retain_recent_drops_only_states_at_or_before_the_cutoff() {
        let store = CappedStore::<u32>::new(10);
        for (k, tat) in [(1, 10), (2, 20), (3, 30)] {
            let _ = store.measure_and_replace(&k, |_| Ok::<((), Nanos), ()>(((), Nanos::new(tat))));
        }
        store.retain_recent(Nanos::new(20));
        assert_eq!(store.tracked(), 1);
        assert!(store.map.contains_key(&3));
    }

    #[test]
    fn a_fresh_state_counts_as_idle() {
        let state = InMemoryState::default();
        assert!(is_idle(&state, Nanos::new(0)));
        set(&state, 7);
        assert!(!is_idle(&state, Nanos::new(6)));
        assert!(is_idle(&state, Nanos::new(7)));
    }
}
