//! Fault injection end to end: the real aws-sdk-s3 client (or the hand signer over raw
//! TCP) → the proxy → a fault-injecting TCP proxy (tests/common/faulty.rs) → the real
//! s3s-fs upstream that checks SigV4. Every fault must leave the proxy serving, give the
//! client a clear retryable 5xx or an aborted transfer (never a hang, never internal
//! text), commit no partial object, and heal on its own once the fault is gone.
//!
//! Upstream faults here; SQLite locked / read-only in `e2e_faults/sqlite.rs`, a full
//! audit database in `e2e_faults/audit.rs`, the Kubernetes API going away in
//! `e2e_faults/kubernetes.rs`.

#[path = "e2e_faults/audit.rs"]
mod audit;
mod common;
#[path = "e2e_faults/garage.rs"]
mod garage;
#[allow(dead_code)]
#[path = "e2e_kubernetes/support.rs"]
mod kube_support;
#[path = "e2e_faults/kubernetes.rs"]
mod kubernetes;
#[path = "e2e_faults/sqlite.rs"]
mod sqlite;
#[path = "e2e_faults/support.rs"]
mod support;
#[path = "e2e_faults/upstream.rs"]
mod upstream;
