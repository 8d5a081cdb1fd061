//! Per-bucket quotas: the limits (from SQLite and Kubernetes, Kubernetes shadowing
//! SQLite per bucket), and the usage they are enforced against.

pub mod limits;

pub use limits::{BucketKey, LimitCache, Limits};
