//! The bucket-limit cache. Each source keeps its own map; a Kubernetes entry shadows the
//! whole SQLite row for the same (backend, bucket).
//!
//! Kubernetes limits arrive per Secret ("owner"): several live Secrets may carry limits
//! for one bucket (a rotation overlap, two claims on one bucket). Contributions are kept
//! per owner, so removing one Secret never drops a limit another live Secret still
//! carries; when owners disagree, the strictest value of each field applies (fail
//! closed: a raise takes effect once the older Secret is gone).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use dashmap::DashMap;

/// A bucket on a backend: the unit quotas are set and counted on.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BucketKey {
    pub backend: String,
    pub bucket: String,
}

impl BucketKey {
    #[must_use]
    pub fn new(backend: impl Into<String>, bucket: impl Into<String>) -> Self {
        Self {
            backend: backend.into(),
            bucket: bucket.into(),
        }
    }
}

/// One bucket's caps. `None` means "no cap of that kind".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    /// Writes that would take usage past this are refused (507).
    pub hard_bytes: Option<u64>,
    /// Crossing this warns (header, metric, log) but succeeds.
    pub soft_bytes: Option<u64>,
    /// Writes that would take the object count past this are refused (507).
    pub max_objects: Option<u64>,
}

impl Limits {
    /// No cap of any kind: equivalent to having no quota.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.hard_bytes.is_none() && self.soft_bytes.is_none() && self.max_objects.is_none()
    }

    /// The strictest of two limit sets, field by field.
    #[must_use]
    pub fn strictest(self, other: Self) -> Self {
        fn min(a: Option<u64>, b: Option<u64>) -> Option<u64> {
            match (a, b) {
                (Some(x), Some(y)) => Some(x.min(y)),
                (x, None) => x,
                (None, y) => y,
            }
        }
        Self {
            hard_bytes: min(self.hard_bytes, other.hard_bytes),
            soft_bytes: min(self.soft_bytes, other.soft_bytes),
            max_objects: min(self.max_objects, other.max_objects),
        }
    }
}

/// Which source an effective limit came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitSource {
    Kubernetes,
    Sqlite,
}

impl LimitSource {
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Self::Kubernetes => "kubernetes",
            Self::Sqlite => "sqlite",
        }
    }
}

type Map = HashMap<BucketKey, Limits>;

/// Kubernetes contributions, indexed both ways so one Secret's event touches only its
/// own buckets: O(buckets of that Secret), whatever the number of Secrets.
#[derive(Default)]
struct Contributions {
    /// Owner (Secret namespace/name) → the buckets it carries limits for.
    by_owner: HashMap<String, Vec<BucketKey>>,
    /// Bucket → each owner's limits for it.
    by_bucket: HashMap<BucketKey, BTreeMap<String, Limits>>,
}

impl Contributions {
    /// Replace one owner's contributions; returns every bucket whose merge may change.
    fn set(&mut self, owner: &str, limits: Vec<(BucketKey, Limits)>) -> Vec<BucketKey> {
        let mut touched = self.by_owner.remove(owner).unwrap_or_default();
        for key in &touched {
            if let Some(m) = self.by_bucket.get_mut(key) {
                m.remove(owner);
                if m.is_empty() {
                    self.by_bucket.remove(key);
                }
            }
        }
        let limits: Vec<_> = limits.into_iter().filter(|(_, l)| !l.is_empty()).collect();
        if !limits.is_empty() {
            let keys = limits.iter().map(|(k, _)| k.clone()).collect();
            for (key, l) in limits {
                self.by_bucket
                    .entry(key.clone())
                    .or_default()
                    .entry(owner.to_owned())
                    .and_modify(|x| *x = x.strictest(l))
                    .or_insert(l);
                touched.push(key);
            }
            self.by_owner.insert(owner.to_owned(), keys);
        }
        touched
    }

    /// The strictest of every owner's limits for one bucket.
    fn merged(&self, key: &BucketKey) -> Option<Limits> {
        self.by_bucket
            .get(key)?
            .values()
            .copied()
            .reduce(Limits::strictest)
    }
}

/// The merged limit view. Reads (every write request) are one lock-free load and a hash
/// probe; a watch event updates only the buckets its Secret touches.
#[derive(Default)]
pub struct LimitCache {
    sqlite: ArcSwap<Map>,
    contributions: Mutex<Contributions>,
    kubernetes: ArcSwap<DashMap<BucketKey, Limits>>,
    /// Bumped on every change, so watchers (scanner, metrics) can notice new buckets.
    generation: std::sync::atomic::AtomicU64,
}

impl LimitCache {
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The effective limits of a bucket and where they come from.
    #[must_use]
    pub fn effective(&self, key: &BucketKey) -> Option<(Limits, LimitSource)> {
        if let Some(l) = self.kubernetes.load().get(key) {
            return Some((*l, LimitSource::Kubernetes));
        }
        self.sqlite
            .load()
            .get(key)
            .map(|l| (*l, LimitSource::Sqlite))
    }

    /// The SQLite row of a bucket, ignoring any Kubernetes shadow (for admin views).
    #[must_use]
    pub fn sqlite_limits(&self, key: &BucketKey) -> Option<Limits> {
        self.sqlite.load().get(key).copied()
    }

    /// Every bucket with an effective limit, sorted.
    #[must_use]
    pub fn configured(&self) -> Vec<(BucketKey, Limits, LimitSource)> {
        let k8s = self.kubernetes.load();
        let mut out: Vec<_> = k8s
            .iter()
            .map(|e| (e.key().clone(), *e.value(), LimitSource::Kubernetes))
            .collect();
        out.extend(
            self.sqlite
                .load()
                .iter()
                .filter(|(k, _)| !k8s.contains_key(*k))
                .map(|(k, l)| (k.clone(), *l, LimitSource::Sqlite)),
        );
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// A counter that changes whenever any limit changes.
    #[must_use]
    pub fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::Acquire)
    }

    fn bump(&self) {
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }

    /// Set (or, with empty limits, clear) one bucket's SQLite row.
    pub fn set_sqlite(&self, key: BucketKey, limits: Limits) {
        let mut next = Map::clone(&self.sqlite.load());
        if limits.is_empty() {
            next.remove(&key);
        } else {
            next.insert(key, limits);
        }
        self.sqlite.store(Arc::new(next));
        self.bump();
    }

    /// Replace every SQLite row (a reload).
    pub fn replace_sqlite(&self, rows: impl IntoIterator<Item = (BucketKey, Limits)>) {
        let map: Map = rows.into_iter().filter(|(_, l)| !l.is_empty()).collect();
        self.sqlite.store(Arc::new(map));
        self.bump();
    }

    fn contributions(&self) -> std::sync::MutexGuard<'_, Contributions> {
        self.contributions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Replace what one Kubernetes Secret contributes (empty: it contributes nothing).
    pub fn set_kubernetes_owner(&self, owner: &str, limits: Vec<(BucketKey, Limits)>) {
        let mut c = self.contributions();
        let touched = c.set(owner, limits);
        let published = self.kubernetes.load();
        for key in touched {
            match c.merged(&key) {
                Some(l) => published.insert(key, l),
                None => published.remove(&key).map(|(_, l)| l),
            };
        }
        self.bump();
    }

    /// Forget one Kubernetes Secret's contributions.
    pub fn remove_kubernetes_owner(&self, owner: &str) {
        self.set_kubernetes_owner(owner, Vec::new());
    }

    /// Replace every Kubernetes contribution (a relist), atomically for readers.
    pub fn replace_kubernetes(
        &self,
        all: impl IntoIterator<Item = (String, Vec<(BucketKey, Limits)>)>,
    ) {
        let mut c = self.contributions();
        let mut next = Contributions::default();
        for (owner, limits) in all {
            next.set(&owner, limits);
        }
        let merged: DashMap<BucketKey, Limits> = next
            .by_bucket
            .keys()
            .filter_map(|k| next.merged(k).map(|l| (k.clone(), l)))
            .collect();
        *c = next;
        self.kubernetes.store(Arc::new(merged));
        self.bump();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hard(n: u64) -> Limits {
        Limits {
            hard_bytes: Some(n),
            ..Limits::default()
        }
    }

    fn key(b: &str) -> BucketKey {
        BucketKey::new("local", b)
    }

    #[test]
    fn kubernetes_limit_shadows_the_whole_sqlite_row() {
        let c = LimitCache::new();
        c.set_sqlite(
            key("a"),
            Limits {
                hard_bytes: Some(100),
                max_objects: Some(5),
                ..Limits::default()
            },
        );
        c.set_kubernetes_owner(
            "ns/vc-1",
            vec![(
                key("a"),
                Limits {
                    soft_bytes: Some(10),
                    ..Limits::default()
                },
            )],
        );
        let (l, src) = c.effective(&key("a")).unwrap();
        assert_eq!(src, LimitSource::Kubernetes);
        assert_eq!(l.hard_bytes, None);
        assert_eq!(l.max_objects, None);
        c.remove_kubernetes_owner("ns/vc-1");
        assert_eq!(c.effective(&key("a")).unwrap().1, LimitSource::Sqlite);
    }

    #[test]
    fn removing_one_secret_keeps_the_limit_another_live_secret_carries() {
        let c = LimitCache::new();
        c.set_kubernetes_owner("ns/old", vec![(key("a"), hard(100))]);
        c.set_kubernetes_owner("ns/new", vec![(key("a"), hard(100))]);
        c.remove_kubernetes_owner("ns/old");
        assert_eq!(c.effective(&key("a")).unwrap().0, hard(100));
    }

    #[test]
    fn disagreeing_secrets_yield_the_strictest_limit() {
        let c = LimitCache::new();
        c.set_kubernetes_owner("ns/old", vec![(key("a"), hard(100))]);
        c.set_kubernetes_owner("ns/new", vec![(key("a"), hard(300))]);
        assert_eq!(c.effective(&key("a")).unwrap().0, hard(100));
        c.remove_kubernetes_owner("ns/old");
        assert_eq!(c.effective(&key("a")).unwrap().0, hard(300));
    }

    #[test]
    fn an_edit_that_drops_a_scope_drops_its_limit() {
        let c = LimitCache::new();
        c.set_kubernetes_owner("ns/vc", vec![(key("a"), hard(1)), (key("b"), hard(2))]);
        c.set_kubernetes_owner("ns/vc", vec![(key("b"), hard(2))]);
        assert!(c.effective(&key("a")).is_none());
        assert!(c.effective(&key("b")).is_some());
    }

    #[test]
    fn relist_replaces_every_kubernetes_contribution() {
        let c = LimitCache::new();
        c.set_kubernetes_owner("ns/gone", vec![(key("a"), hard(1))]);
        let g = c.generation();
        c.replace_kubernetes(vec![("ns/vc".to_owned(), vec![(key("b"), hard(2))])]);
        assert!(c.effective(&key("a")).is_none());
        assert_eq!(c.configured().len(), 1);
        assert!(c.generation() > g);
    }

    #[test]
    fn empty_limits_clear_a_sqlite_row() {
        let c = LimitCache::new();
        c.set_sqlite(key("a"), hard(1));
        c.set_sqlite(key("a"), Limits::default());
        assert!(c.effective(&key("a")).is_none());
    }
}
