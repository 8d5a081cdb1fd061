//! The upstream side: which headers may leave, re-signing with the backend's admin key
//! (aws-sigv4, S3 settings), and the pooled client that forwards the request.

pub mod admin_ops;
pub mod client;
pub mod headers;
pub mod idle;
pub mod probe;
pub mod resign;

pub use client::{UpstreamClient, UpstreamError};
pub use resign::UpstreamBackend;
