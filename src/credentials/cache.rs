//! The merged credential cache: one map per source, looked up Kubernetes first, then
//! SQLite. Read-mostly and hot: one `DashMap` probe per source on the request path,
//! no global lock. A relist swaps a whole source atomically.

use std::sync::Arc;

use arc_swap::ArcSwap;
use dashmap::{DashMap, DashSet};

use super::model::Credential;

/// The sources, in lookup precedence order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SourceKind {
    Kubernetes,
    Sqlite,
}

impl SourceKind {
    pub const ALL: [Self; 2] = [Self::Kubernetes, Self::Sqlite];

    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Self::Kubernetes => "kubernetes",
            Self::Sqlite => "sqlite",
        }
    }
}

/// Anything the authenticator can resolve an access key id through.
pub trait CredentialLookup: Send + Sync {
    fn lookup(&self, access_key_id: &str) -> Option<Arc<Credential>>;
}

type SourceMap = DashMap<String, Arc<Credential>>;

/// The merged view over all sources.
#[derive(Default)]
pub struct CredentialCache {
    kubernetes: ArcSwap<SourceMap>,
    sqlite: ArcSwap<SourceMap>,
    /// Access keys whose SQLite entry is shadowed by Kubernetes and already logged.
    shadow_logged: DashSet<String>,
}

impl CredentialCache {
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    fn source(&self, kind: SourceKind) -> &ArcSwap<SourceMap> {
        match kind {
            SourceKind::Kubernetes => &self.kubernetes,
            SourceKind::Sqlite => &self.sqlite,
        }
    }

    /// Insert or replace one credential in one source.
    pub fn upsert(&self, kind: SourceKind, cred: Credential) {
        let key = cred.access_key_id.clone();
        self.source(kind).load().insert(key, Arc::new(cred));
    }

    /// Remove one credential from one source; returns whether it was present.
    pub fn remove(&self, kind: SourceKind, access_key_id: &str) -> bool {
        self.shadow_logged.remove(access_key_id);
        self.source(kind).load().remove(access_key_id).is_some()
    }

    /// Replace a source's whole content atomically (a relist, a full reload).
    pub fn replace(&self, kind: SourceKind, creds: impl IntoIterator<Item = Credential>) {
        let map: SourceMap = creds
            .into_iter()
            .map(|c| (c.access_key_id.clone(), Arc::new(c)))
            .collect();
        self.source(kind).store(Arc::new(map));
    }

    /// Number of credentials held by one source.
    #[must_use]
    pub fn len(&self, kind: SourceKind) -> usize {
        self.source(kind).load().len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        SourceKind::ALL.iter().all(|k| self.len(*k) == 0)
    }

    /// The entry of one source, ignoring precedence.
    #[must_use]
    pub fn get(&self, kind: SourceKind, access_key_id: &str) -> Option<Arc<Credential>> {
        self.source(kind)
            .load()
            .get(access_key_id)
            .map(|e| Arc::clone(e.value()))
    }

    /// Every effective credential (shadowed SQLite entries left out), for admin views.
    #[must_use]
    pub fn snapshot(&self) -> Vec<Arc<Credential>> {
        let k8s = self.kubernetes.load();
        let mut out: Vec<Arc<Credential>> = k8s.iter().map(|e| Arc::clone(e.value())).collect();
        out.extend(
            self.sqlite
                .load()
                .iter()
                .filter(|e| !k8s.contains_key(e.key()))
                .map(|e| Arc::clone(e.value())),
        );
        out
    }
}

impl CredentialLookup for CredentialCache {
    fn lookup(&self, access_key_id: &str) -> Option<Arc<Credential>> {
        if let Some(c) = self.get(SourceKind::Kubernetes, access_key_id) {
            if self.sqlite.load().contains_key(access_key_id)
                && self.shadow_logged.insert(access_key_id.to_owned())
            {
                tracing::warn!(
                    access_key_id,
                    "credential present in both sources; the Kubernetes entry shadows the SQLite one"
                );
            }
            return Some(c);
        }
        self.get(SourceKind::Sqlite, access_key_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credentials::model::CredentialSource;
    use crate::secret::SecretKey;

    fn cred(ak: &str, backend: &str, source: CredentialSource) -> Credential {
        Credential {
            access_key_id: ak.into(),
            secret: SecretKey::new("s".repeat(40)),
            backend: backend.into(),
            scopes: vec![],
            expires_at: None,
            enabled: true,
            source,
            description: String::new(),
        }
    }

    fn k8s() -> CredentialSource {
        CredentialSource::Kubernetes {
            namespace: "ns".into(),
            name: "n".into(),
            uid: "u".into(),
        }
    }

    #[test]
    fn kubernetes_wins_on_collision_and_sqlite_shows_through_after_removal() {
        let cache = CredentialCache::new();
        cache.upsert(
            SourceKind::Sqlite,
            cred("AK", "sql", CredentialSource::Sqlite),
        );
        cache.upsert(SourceKind::Kubernetes, cred("AK", "kube", k8s()));
        assert_eq!(cache.lookup("AK").unwrap().backend, "kube");
        assert_eq!(cache.snapshot().len(), 1);
        assert!(cache.remove(SourceKind::Kubernetes, "AK"));
        assert_eq!(cache.lookup("AK").unwrap().backend, "sql");
    }

    #[test]
    fn replace_swaps_a_source_without_touching_the_other() {
        let cache = CredentialCache::new();
        cache.upsert(SourceKind::Sqlite, cred("A", "b", CredentialSource::Sqlite));
        cache.upsert(SourceKind::Kubernetes, cred("K1", "b", k8s()));
        cache.replace(SourceKind::Kubernetes, vec![cred("K2", "b", k8s())]);
        assert!(cache.lookup("K1").is_none());
        assert!(cache.lookup("K2").is_some());
        assert!(cache.lookup("A").is_some());
        assert_eq!(cache.len(SourceKind::Kubernetes), 1);
        assert_eq!(cache.len(SourceKind::Sqlite), 1);
    }

    #[test]
    fn unknown_keys_miss() {
        assert!(CredentialCache::new().lookup("nope").is_none());
    }
}
