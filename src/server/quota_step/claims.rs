//! Per-object claims: which object keys have a quota-accounted write or delete in
//! flight through this process.
//!
//! Overwrites and deletes subtract the size the object had when the request was
//! admitted. Two requests racing on one key (a delete and an overwrite, say) could
//! both subtract that same old object, and the ledger would then count less than the
//! bucket holds. So only the request that finds the key unclaimed (exclusive) may
//! rely on the old object; the others treat it as unknown: they subtract nothing and
//! count a new object (an overcount, corrected by the next scan). Nothing waits: the
//! claims only decide how conservative the accounting is.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use crate::quota::BucketKey;

type Map = HashMap<(BucketKey, String), usize>;

/// The claims of one process (entries live only while a request holds them).
#[derive(Default, Clone)]
pub struct KeyClaims(Arc<Mutex<Map>>);

/// One request's claim on one object key; released on drop.
pub struct Claim {
    claims: Arc<Mutex<Map>>,
    key: (BucketKey, String),
    exclusive: bool,
}

impl KeyClaims {
    /// Claim `object` in `bucket`.
    #[must_use]
    pub fn claim(&self, bucket: &BucketKey, object: &str) -> Claim {
        let key = (bucket.clone(), object.to_owned());
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let holders = map.entry(key.clone()).or_insert(0);
        *holders += 1;
        Claim {
            claims: Arc::clone(&self.0),
            exclusive: *holders == 1,
            key,
        }
    }

    /// Keys currently claimed (for tests and debugging).
    #[must_use]
    pub fn len(&self) -> usize {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Claim {
    /// No other accounted request held this key when the claim was taken.
    #[must_use]
    pub fn exclusive(&self) -> bool {
        self.exclusive
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        let mut map = self.claims.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(holders) = map.get_mut(&self.key) {
            *holders -= 1;
            if *holders == 0 {
                map.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_first_concurrent_claim_is_exclusive_and_entries_go_away() {
        let claims = KeyClaims::default();
        let b = BucketKey::new("p", "b");
        let first = claims.claim(&b, "k");
        let second = claims.claim(&b, "k");
        let other = claims.claim(&b, "other");
        assert!(first.exclusive());
        assert!(!second.exclusive());
        assert!(other.exclusive());
        drop(first);
        // Still held by `second`: a newcomer is not exclusive either.
        assert!(!claims.claim(&b, "k").exclusive());
        drop(second);
        drop(other);
        assert!(claims.is_empty());
        assert!(claims.claim(&b, "k").exclusive());
    }
}
