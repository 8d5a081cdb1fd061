//! Per-bucket quotas: the limits (from SQLite and Kubernetes, Kubernetes shadowing
//! SQLite per bucket), and the usage they are enforced against.

pub mod cli;
pub mod ledger;
pub mod limits;
pub mod metrics;
pub mod persist;
pub mod scan_runner;
pub mod scanner;
pub mod store;

pub use limits::{BucketKey, LimitCache, Limits};
