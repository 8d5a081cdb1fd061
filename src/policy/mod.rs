//! Request policy: routing (bucket and key from path or host), S3 operation
//! classification with access classes, scope authorization and the synthesized
//! ListBuckets answer.

mod classify;
mod encoding;
pub mod list_buckets;
pub mod operation;
mod query;
pub mod route;
pub mod scope;
