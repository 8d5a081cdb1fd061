//! Anonymous bindings: buckets a backend serves without a signature, and how.
//!
//! A binding is contributed by an owner (a Kubernetes Secret `namespace/name`, or a
//! SQLite row id) for one (backend, bucket). Several owners may bind the same bucket;
//! the strictest mode and the lowest rate apply, and Kubernetes contributions shadow
//! SQLite ones for that bucket, as with credentials and quota limits. Removing one
//! owner never drops what another live owner still contributes; a relist replaces a
//! whole source at once.
//!
//! Reads (anonymous requests) are a lock-free load and a hash probe; writes update
//! only the touched bucket, so an event costs O(1).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use dashmap::DashMap;

use super::cache::SourceKind;
use super::model::CredentialSource;
use crate::quota::BucketKey;

/// What unsigned requests may do on a bound bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AnonymousMode {
    /// Nothing: the binding exists to deny (and to shadow a weaker source's binding).
    None,
    /// Object reads and listing.
    ReadOnly,
}

impl AnonymousMode {
    /// The operator's spelling (`None` | `ReadOnly`); `none`, `readonly` and
    /// `read-only` are accepted too.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "none" => Some(Self::None),
            "readonly" | "read-only" => Some(Self::ReadOnly),
            _ => None,
        }
    }

    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "None",
            Self::ReadOnly => "ReadOnly",
        }
    }

    fn strictest(self, other: Self) -> Self {
        if self == Self::None || other == Self::None {
            Self::None
        } else {
            Self::ReadOnly
        }
    }
}

/// One bucket's anonymous access.
#[derive(Debug, Clone, PartialEq)]
pub struct AnonymousBinding {
    pub backend: String,
    pub bucket: String,
    pub mode: AnonymousMode,
    /// Requests per second per source IP; `None` means the configured default.
    pub per_source_ip_rps: Option<f64>,
    pub source: CredentialSource,
}

impl AnonymousBinding {
    #[must_use]
    pub fn key(&self) -> BucketKey {
        BucketKey::new(self.backend.clone(), self.bucket.clone())
    }

    /// The stricter of two bindings of one bucket, field by field (fail closed while
    /// two owners disagree). The source of `self` is kept.
    #[must_use]
    pub fn strictest(mut self, other: &Self) -> Self {
        self.mode = self.mode.strictest(other.mode);
        self.per_source_ip_rps = match (self.per_source_ip_rps, other.per_source_ip_rps) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, None) => a,
            (None, b) => b,
        };
        self
    }
}

/// Contributions to one bucket, per source, by owner (ordered, so the result does not
/// depend on arrival order).
#[derive(Default)]
struct PerKey {
    kubernetes: BTreeMap<String, AnonymousBinding>,
    sqlite: BTreeMap<String, AnonymousBinding>,
}

impl PerKey {
    fn source_mut(&mut self, kind: SourceKind) -> &mut BTreeMap<String, AnonymousBinding> {
        match kind {
            SourceKind::Kubernetes => &mut self.kubernetes,
            SourceKind::Sqlite => &mut self.sqlite,
        }
    }

    /// Kubernetes shadows SQLite; within a source the strictest contribution wins.
    fn effective(&self) -> Option<AnonymousBinding> {
        let winners = if self.kubernetes.is_empty() {
            &self.sqlite
        } else {
            &self.kubernetes
        };
        let mut it = winners.values();
        let first = it.next()?.clone();
        Some(it.fold(first, AnonymousBinding::strictest))
    }
}

/// Writer-side bookkeeping.
#[derive(Default)]
struct Contributions {
    owner_key: HashMap<(SourceKind, String), BucketKey>,
    by_key: HashMap<BucketKey, PerKey>,
}

/// What readers see.
#[derive(Default)]
struct View {
    by_key: DashMap<BucketKey, Arc<AnonymousBinding>>,
    /// Bucket name → backends with an effective binding; the by-name lookup answers
    /// only when exactly one backend binds the name.
    backends: DashMap<String, BTreeSet<String>>,
}

/// The merged binding view over all sources.
#[derive(Default)]
pub struct BindingCache {
    writes: Mutex<Contributions>,
    view: ArcSwap<View>,
}

impl BindingCache {
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The effective binding of one (backend, bucket).
    #[must_use]
    pub fn get(&self, key: &BucketKey) -> Option<Arc<AnonymousBinding>> {
        self.view
            .load()
            .by_key
            .get(key)
            .map(|e| Arc::clone(e.value()))
    }

    /// The effective binding of a bucket name, for unsigned requests (which name no
    /// backend). `None` when no backend, or more than one, binds the name: an
    /// ambiguous name is not served anonymously.
    #[must_use]
    pub fn for_bucket(&self, bucket: &str) -> Option<Arc<AnonymousBinding>> {
        let view = self.view.load();
        let backend = {
            let backends = view.backends.get(bucket)?;
            if backends.len() != 1 {
                return None;
            }
            backends.iter().next()?.clone()
        };
        view.by_key
            .get(&BucketKey::new(backend, bucket))
            .map(|e| Arc::clone(e.value()))
    }

    /// Every effective binding, sorted by (backend, bucket).
    #[must_use]
    pub fn all(&self) -> Vec<Arc<AnonymousBinding>> {
        let mut out: Vec<Arc<AnonymousBinding>> = self
            .view
            .load()
            .by_key
            .iter()
            .map(|e| Arc::clone(e.value()))
            .collect();
        out.sort_by(|a, b| (&a.backend, &a.bucket).cmp(&(&b.backend, &b.bucket)));
        out
    }

    /// Number of buckets with an effective binding.
    #[must_use]
    pub fn len(&self) -> usize {
        self.view.load().by_key.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Set (`Some`) or withdraw (`None`) what one owner of one source contributes.
    pub fn set(&self, kind: SourceKind, owner: &str, binding: Option<AnonymousBinding>) {
        let mut w = self.writes.lock().unwrap_or_else(|p| p.into_inner());
        let view = self.view.load();
        let id = (kind, owner.to_owned());
        let old = w.owner_key.remove(&id);
        if let Some(old) = &old
            && let Some(per) = w.by_key.get_mut(old)
        {
            per.source_mut(kind).remove(owner);
        }
        let new = binding.map(|b| {
            let key = b.key();
            w.owner_key.insert(id, key.clone());
            w.by_key
                .entry(key.clone())
                .or_default()
                .source_mut(kind)
                .insert(owner.to_owned(), b);
            key
        });
        // Publish after both changes, so an edit in place never shows a gap.
        for key in old.iter().chain(new.iter()) {
            publish(&mut w, &view, key);
        }
    }

    /// Replace everything one source contributes (a relist or a full reload).
    pub fn replace(
        &self,
        kind: SourceKind,
        all: impl IntoIterator<Item = (String, AnonymousBinding)>,
    ) {
        let mut w = self.writes.lock().unwrap_or_else(|p| p.into_inner());
        w.owner_key.retain(|(k, _), _| *k != kind);
        for per in w.by_key.values_mut() {
            per.source_mut(kind).clear();
        }
        for (owner, b) in all {
            let key = b.key();
            w.owner_key.insert((kind, owner.clone()), key.clone());
            w.by_key
                .entry(key)
                .or_default()
                .source_mut(kind)
                .insert(owner, b);
        }
        let view = View::default();
        let keys: Vec<BucketKey> = w.by_key.keys().cloned().collect();
        for key in &keys {
            publish(&mut w, &view, key);
        }
        self.view.store(Arc::new(view));
    }
}

/// Recompute one bucket's effective binding into `view` (and drop empty bookkeeping).
fn publish(w: &mut Contributions, view: &View, key: &BucketKey) {
    let effective = w.by_key.get(key).and_then(PerKey::effective);
    match effective {
        Some(b) => {
            view.by_key.insert(key.clone(), Arc::new(b));
            view.backends
                .entry(key.bucket.clone())
                .or_default()
                .insert(key.backend.clone());
        }
        None => {
            w.by_key.remove(key);
            view.by_key.remove(key);
            view.backends.remove_if_mut(&key.bucket, |_, set| {
                set.remove(&key.backend);
                set.is_empty()
            });
        }
    }
}

#[cfg(test)]
#[path = "anonymous_tests.rs"]
mod tests;
