//! The Kubernetes credential source: an informer on the Secrets the Stowage operator
//! writes (DESIGN §6), merged into the credential cache (Kubernetes wins on an access-key
//! collision), the quota-limit cache and the anonymous-binding cache.
//!
//! - [`resource`]: the watched Secret type (values never in `Debug`);
//! - [`decode`]: Secret → credential + limits, or anonymous binding, with typed errors;
//! - [`state`]: per-Secret bookkeeping that keeps the caches free of stale keys;
//! - [`informer`]: the kube-runtime watcher loop, readiness gate, health and metrics.

pub mod decode;
pub mod informer;
pub mod metrics;
pub mod resource;
pub mod state;

pub use informer::{ClientError, InformerHandle, client, client_config, ready_gate, spawn};
pub use metrics::InformerMetrics;
pub use resource::WatchedSecret;
pub use state::Sinks;

/// Label whose value says what a Secret is.
pub const LABEL_ROLE: &str = "broker.stowage.io/role";
/// Role of a Secret holding a virtual credential.
pub const ROLE_CREDENTIAL: &str = "virtual-credential";
/// Role of a Secret holding an anonymous binding.
pub const ROLE_BINDING: &str = "anonymous-binding";
/// Labels naming the BucketClaim a Secret was minted for.
pub const LABEL_CLAIM_NAMESPACE: &str = "broker.stowage.io/claim-namespace";
pub const LABEL_CLAIM_NAME: &str = "broker.stowage.io/claim-name";
pub const LABEL_CLAIM_UID: &str = "broker.stowage.io/claim-uid";
/// Annotation: when a credential stops working (RFC 3339), set by rotations.
pub const ANNOTATION_EXPIRES_AT: &str = "broker.stowage.io/expires-at";
/// The selector the informer lists and watches with.
pub const LABEL_SELECTOR: &str = "broker.stowage.io/role in (virtual-credential,anonymous-binding)";
