//! Request policy: routing (bucket and key from path or host), S3 operation
//! classification with access classes, scope authorization and the synthesized
//! ListBuckets answer.

pub mod anonymous;
mod classify;
mod copy_source;
mod encoding;
mod key_path;
pub mod list_buckets;
mod list_buckets_parse;
pub mod operation;
mod query;
pub mod route;
pub mod scope;

#[cfg(test)]
mod never_panics_tests;
