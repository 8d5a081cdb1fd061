//! The signing-key cache: derived SigV4 keys keyed by (access key, date, region,
//! service), each bound to a fingerprint of the secret it came from, so a rotated
//! secret re-derives on its next use without an explicit flush.
//!
//! Only keys that have just verified a signature are remembered
//! ([`SigningKeyCache::remember`]): a client that knows an access key id but not its
//! secret cannot fill the map with made-up regions or dates.
//!
//! Bounded: past `max_entries` the whole map is cleared before the next insert. The
//! legitimate working set is about (active keys × one or two days × regions in use);
//! when it exceeds the cap, re-deriving costs four HMACs per request, while exact LRU
//! bookkeeping would add a write on every hit of this read-mostly hot path. A clear is
//! O(n) once per `max_entries` inserts.

use std::fmt;

use dashmap::DashMap;

use super::sigv4::derive_signing_key;
use crate::secret::{SecretKey, SigningKey};

/// A derived key and the fingerprint of the secret it was derived from.
struct Entry {
    fingerprint: [u8; 32],
    key: SigningKey,
}

/// Derived signing keys, reused across the requests of one day.
pub struct SigningKeyCache {
    map: DashMap<String, Entry>,
    max_entries: usize,
}

/// A signing key for one request: from the cache, or freshly derived (then hand it to
/// [`SigningKeyCache::remember`] once its signature verified).
pub struct KeyLookup {
    cache_key: String,
    fingerprint: [u8; 32],
    pub key: SigningKey,
    /// Whether the key came from the cache.
    pub cached: bool,
}

impl SigningKeyCache {
    /// Default bound on cached keys.
    pub const DEFAULT_MAX_ENTRIES: usize = 100_000;

    #[must_use]
    pub fn new() -> Self {
        Self::with_max_entries(Self::DEFAULT_MAX_ENTRIES)
    }

    #[must_use]
    pub fn with_max_entries(max_entries: usize) -> Self {
        Self {
            map: DashMap::new(),
            max_entries: max_entries.max(1),
        }
    }

    /// The key for `(access_key_id, date, region, service)` under `secret`: the cached
    /// one when its fingerprint matches the current secret, else a fresh derivation.
    #[must_use]
    pub fn get_or_derive(
        &self,
        access_key_id: &str,
        secret: &SecretKey,
        date: &str,
        region: &str,
        service: &str,
    ) -> KeyLookup {
        // The parts never contain '/' (the credential scope is split on it), so this
        // joined form is unambiguous.
        let cache_key = format!("{access_key_id}/{date}/{region}/{service}");
        let fingerprint = secret.fingerprint();
        if let Some(entry) = self.map.get(&cache_key)
            && entry.fingerprint == fingerprint
        {
            let key = entry.key.clone();
            return KeyLookup {
                cache_key,
                fingerprint,
                key,
                cached: true,
            };
        }
        let key = derive_signing_key(secret, date, region, service);
        KeyLookup {
            cache_key,
            fingerprint,
            key,
            cached: false,
        }
    }

    /// Remember a freshly derived key whose signature just verified.
    pub fn remember(&self, lookup: &KeyLookup) {
        if lookup.cached {
            return;
        }
        if self.map.len() >= self.max_entries && !self.map.contains_key(&lookup.cache_key) {
            self.map.clear();
        }
        let entry = Entry {
            fingerprint: lookup.fingerprint,
            key: lookup.key.clone(),
        };
        self.map.insert(lookup.cache_key.clone(), entry);
    }

    /// Number of cached keys.
    #[must_use]
    pub fn len(&self) -> usize {
        self.map.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Drop every cached key.
    pub fn clear(&self) {
        self.map.clear();
    }
}

impl Default for SigningKeyCache {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for SigningKeyCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKeyCache")
            .field("len", &self.map.len())
            .field("max_entries", &self.max_entries)
            .finish()
    }
}

impl fmt::Debug for KeyLookup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyLookup")
            .field("key", &self.key)
            .field("cached", &self.cached)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(cache: &SigningKeyCache, secret: &str, region: &str) -> KeyLookup {
        cache.get_or_derive("AK", &SecretKey::new(secret), "20130524", region, "s3")
    }

    #[test]
    fn a_remembered_key_is_served_from_the_cache() {
        let cache = SigningKeyCache::new();
        let first = lookup(&cache, "s1", "us-east-1");
        assert!(!first.cached);
        cache.remember(&first);
        let second = lookup(&cache, "s1", "us-east-1");
        assert!(second.cached);
        assert_eq!(first.key.expose(), second.key.expose());
        assert_eq!(
            second.key.expose(),
            derive_signing_key(&SecretKey::new("s1"), "20130524", "us-east-1", "s3").expose()
        );
    }

    #[test]
    fn lookups_alone_do_not_fill_the_cache() {
        let cache = SigningKeyCache::new();
        for region in ["a", "b", "c"] {
            let _ = lookup(&cache, "s1", region);
        }
        assert!(cache.is_empty());
    }

    #[test]
    fn a_rotated_secret_rederives_and_replaces_the_entry() {
        let cache = SigningKeyCache::new();
        let old = lookup(&cache, "old", "r");
        cache.remember(&old);
        let new = lookup(&cache, "new", "r");
        assert!(
            !new.cached,
            "a stale key must not be served for a new secret"
        );
        assert_ne!(old.key.expose(), new.key.expose());
        cache.remember(&new);
        assert!(lookup(&cache, "new", "r").cached);
        assert!(!lookup(&cache, "old", "r").cached);
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn the_cache_is_cleared_when_it_reaches_its_bound() {
        let cache = SigningKeyCache::with_max_entries(2);
        for region in ["a", "b"] {
            cache.remember(&lookup(&cache, "s", region));
        }
        assert_eq!(cache.len(), 2);
        cache.remember(&lookup(&cache, "s", "c"));
        assert_eq!(cache.len(), 1);
        assert!(lookup(&cache, "s", "c").cached);
    }

    #[test]
    fn debug_output_never_shows_key_bytes() {
        let cache = SigningKeyCache::new();
        let l = lookup(&cache, "s", "r");
        let text = format!("{l:?} {cache:?}");
        assert!(!text.contains(&hex::encode(l.key.expose())));
        assert!(text.contains("<redacted>"));
    }
}
