//! Per-bucket quotas: the limits (from SQLite and Kubernetes, Kubernetes shadowing
//! SQLite per bucket), and the usage they are enforced against.

pub mod cli;
pub mod ledger;
pub mod limits;
pub mod metrics;
pub mod persist;
pub mod store;
pub mod scan_runner;
pub mod scanner;

pub use limits::{BucketKey, LimitCache, Limits};
