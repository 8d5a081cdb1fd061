//! Per-Secret bookkeeping between the watch events and the caches.
//!
//! The Go informer upserted by access key and never looked back, which left stale keys
//! behind (see the Go analysis §2.2). Here each Secret (`namespace/name`) is an owner
//! whose current contribution is remembered: every event replaces the owner's whole
//! contribution (credential, limits, binding), so an edit that changes the access key,
//! drops a scope, or makes the Secret invalid withdraws what it contributed before. A
//! relist is buffered and replaces the Kubernetes source of every cache at once.
//!
//! Each watch event costs O(1): one decode and a constant number of map operations.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use crate::credentials::anonymous::{AnonymousBinding, BindingCache};
use crate::credentials::cache::SourceKind;
use crate::credentials::{Credential, CredentialCache};
use crate::quota::{BucketKey, LimitCache};

use super::decode::{DecodeError, Decoded, decode};
use super::resource::WatchedSecret;

const KUBE: SourceKind = SourceKind::Kubernetes;

/// The caches the Kubernetes source feeds.
#[derive(Clone)]
pub struct Sinks {
    pub credentials: Arc<CredentialCache>,
    pub limits: Arc<LimitCache>,
    pub bindings: Arc<BindingCache>,
}

/// What a watch event did, for the events counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Added,
    Modified,
    Deleted,
}

impl Change {
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Self::Added => "added",
            Self::Modified => "modified",
            Self::Deleted => "deleted",
        }
    }
}

/// What one Secret currently contributes.
#[derive(Debug, Default)]
struct Contribution {
    access_key_id: Option<String>,
    has_limits: bool,
    has_binding: bool,
    /// Why the Secret was last refused; kept so an unchanged reason is not re-logged.
    invalid: Option<DecodeError>,
}

/// Access key → the Secrets carrying it. Normally one; when several do, the first by
/// name is served, so the outcome does not depend on event order.
type Claims = HashMap<String, BTreeMap<String, Credential>>;

/// Summary of a finished relist, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelistSummary {
    pub secrets: usize,
    pub credentials: usize,
    pub bindings: usize,
    pub invalid: usize,
    /// Secrets known before the relist and absent from it (deleted while disconnected).
    pub removed: usize,
}

/// The Kubernetes source's state.
pub struct SourceState {
    sinks: Sinks,
    owners: HashMap<String, Contribution>,
    claims: Claims,
    invalid: usize,
    relist: Option<HashMap<String, Result<Decoded, DecodeError>>>,
}

impl SourceState {
    #[must_use]
    pub fn new(sinks: Sinks) -> Self {
        Self {
            sinks,
            owners: HashMap::new(),
            claims: HashMap::new(),
            invalid: 0,
            relist: None,
        }
    }

    /// Secrets currently refused as invalid.
    #[must_use]
    pub fn invalid_count(&self) -> usize {
        self.invalid
    }

    /// Secrets currently known (valid or not).
    #[must_use]
    pub fn len(&self) -> usize {
        self.owners.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.owners.is_empty()
    }

    /// A Secret was added or modified: replace whatever it contributed.
    pub fn apply(&mut self, secret: &WatchedSecret) -> Change {
        let owner = secret.owner();
        let prev = self.owners.remove(&owner);
        let change = if prev.is_some() {
            Change::Modified
        } else {
            Change::Added
        };
        let next = self.transition(&owner, prev.unwrap_or_default(), Some(decode(secret)));
        self.owners.insert(owner, next);
        change
    }

    /// A Secret was deleted (or stopped matching the selector): withdraw everything.
    pub fn delete(&mut self, secret: &WatchedSecret) -> Change {
        let owner = secret.owner();
        if let Some(prev) = self.owners.remove(&owner) {
            self.transition(&owner, prev, None);
            tracing::debug!(secret = %owner, "Kubernetes Secret deleted");
        }
        Change::Deleted
    }

    /// Replace `prev` by what `decoded` contributes (nothing for `None` or an error).
    fn transition(
        &mut self,
        owner: &str,
        prev: Contribution,
        decoded: Option<Result<Decoded, DecodeError>>,
    ) -> Contribution {
        if prev.invalid.is_some() {
            self.invalid -= 1;
        }
        let mut next = Contribution::default();
        let (credential, limits, binding) = match decoded {
            Some(Ok(Decoded::Credential(entry))) => (Some(entry.credential), entry.limits, None),
            Some(Ok(Decoded::Binding(b))) => (None, Vec::new(), Some(b)),
            Some(Err(e)) => {
                log_invalid(
                    owner,
                    &e,
                    prev.invalid.as_ref(),
                    prev.access_key_id.as_deref(),
                );
                self.invalid += 1;
                next.invalid = Some(e);
                (None, Vec::new(), None)
            }
            None => (None, Vec::new(), None),
        };
        next.access_key_id = credential.as_ref().map(|c| c.access_key_id.clone());
        self.move_claim(owner, prev.access_key_id.as_deref(), credential);
        next.has_limits = !limits.is_empty();
        if next.has_limits || prev.has_limits {
            self.sinks.limits.set_kubernetes_owner(owner, limits);
        }
        next.has_binding = binding.is_some();
        if next.has_binding || prev.has_binding {
            self.sinks.bindings.set(KUBE, owner, binding);
        }
        next
    }

    /// Move `owner`'s claim from `old` (if any) to `credential`'s key (if any), then
    /// publish both keys' effective credentials.
    fn move_claim(&mut self, owner: &str, old: Option<&str>, credential: Option<Credential>) {
        let new = credential.as_ref().map(|c| c.access_key_id.clone());
        if let Some(old) = old
            && let Some(owners) = self.claims.get_mut(old)
        {
            owners.remove(owner);
        }
        if let (Some(c), Some(key)) = (credential, &new) {
            let owners = self.claims.entry(key.clone()).or_default();
            owners.insert(owner.to_owned(), c);
            if owners.len() == 2 {
                warn_collision(key, owners);
            }
        }
        if let Some(old) = old
            && new.as_deref() != Some(old)
        {
            self.publish(old);
        }
        if let Some(new) = &new {
            self.publish(new);
        }
    }

    /// Put the effective credential of one key into the cache, or remove the key.
    fn publish(&mut self, access_key_id: &str) {
        let first = self
            .claims
            .get(access_key_id)
            .and_then(|owners| owners.values().next().cloned());
        match first {
            Some(c) => self.sinks.credentials.upsert(KUBE, c),
            None => {
                self.claims.remove(access_key_id);
                self.sinks.credentials.remove(KUBE, access_key_id);
            }
        }
    }

    /// A relist started: buffer what it lists until [`Self::finish_relist`].
    pub fn begin_relist(&mut self) {
        self.relist = Some(HashMap::new());
    }

    /// One Secret of the relist.
    pub fn relist_apply(&mut self, secret: &WatchedSecret) {
        let buffer = self.relist.get_or_insert_with(HashMap::new);
        buffer.insert(secret.owner(), decode(secret));
    }

    /// The relist is complete: replace the Kubernetes source of every cache with what
    /// it listed, so Secrets deleted while disconnected disappear.
    pub fn finish_relist(&mut self) -> RelistSummary {
        let listed = self.relist.take().unwrap_or_default();
        let mut next = Rebuilt::default();
        for (owner, decoded) in listed {
            let prev_invalid = self.owners.get(&owner).and_then(|c| c.invalid.as_ref());
            next.add(owner, decoded, prev_invalid);
        }
        let summary = RelistSummary {
            secrets: next.owners.len(),
            credentials: next.claims.len(),
            bindings: next.bindings.len(),
            invalid: next.invalid,
            removed: self
                .owners
                .keys()
                .filter(|o| !next.owners.contains_key(*o))
                .count(),
        };
        self.sinks.credentials.replace(
            KUBE,
            next.claims
                .values()
                .filter_map(|owners| owners.values().next().cloned()),
        );
        self.sinks.limits.replace_kubernetes(next.limits);
        self.sinks.bindings.replace(KUBE, next.bindings);
        self.owners = next.owners;
        self.claims = next.claims;
        self.invalid = next.invalid;
        summary
    }
}

/// The Kubernetes source as a relist found it.
#[derive(Default)]
struct Rebuilt {
    owners: HashMap<String, Contribution>,
    claims: Claims,
    limits: Vec<(String, Vec<(BucketKey, crate::quota::Limits)>)>,
    bindings: Vec<(String, AnonymousBinding)>,
    invalid: usize,
    collided: HashSet<String>,
}

impl Rebuilt {
    fn add(
        &mut self,
        owner: String,
        decoded: Result<Decoded, DecodeError>,
        prev_invalid: Option<&DecodeError>,
    ) {
        let mut c = Contribution::default();
        match decoded {
            Ok(Decoded::Credential(entry)) => {
                let ak = entry.credential.access_key_id.clone();
                if !entry.limits.is_empty() {
                    c.has_limits = true;
                    self.limits.push((owner.clone(), entry.limits));
                }
                let owners = self.claims.entry(ak.clone()).or_default();
                owners.insert(owner.clone(), entry.credential);
                if owners.len() == 2 && self.collided.insert(ak.clone()) {
                    warn_collision(&ak, owners);
                }
                c.access_key_id = Some(ak);
            }
            Ok(Decoded::Binding(b)) => {
                c.has_binding = true;
                self.bindings.push((owner.clone(), b));
            }
            Err(e) => {
                log_invalid(&owner, &e, prev_invalid, None);
                self.invalid += 1;
                c.invalid = Some(e);
            }
        }
        self.owners.insert(owner, c);
    }
}

/// Warn that a Secret is refused, once per distinct reason.
fn log_invalid(owner: &str, e: &DecodeError, prev: Option<&DecodeError>, removed: Option<&str>) {
    if prev == Some(e) {
        tracing::debug!(secret = %owner, reason = %e, "Kubernetes Secret is still invalid");
        return;
    }
    tracing::warn!(
        secret = %owner,
        reason = %e,
        removed_access_key_id = removed.unwrap_or(""),
        "Kubernetes Secret is invalid: it contributes no credential, quota limit or binding"
    );
}

fn warn_collision(access_key_id: &str, owners: &BTreeMap<String, Credential>) {
    let secrets: Vec<&str> = owners.keys().map(String::as_str).collect();
    tracing::warn!(
        access_key_id,
        ?secrets,
        served = secrets.first().copied().unwrap_or(""),
        "one access key is carried by several Kubernetes Secrets; the first by name is served"
    );
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
