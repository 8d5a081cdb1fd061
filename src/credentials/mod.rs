//! Credentials: the model, the merged cache, and the sources that feed it.

pub mod anonymous;
pub mod cache;
pub mod model;
pub mod rotate;
#[cfg(test)]
mod rotate_tests;
pub mod seal;
pub mod sqlite;
pub mod sqlite_feed;
pub mod sqlite_patch;
pub mod sqlite_row;
pub mod sqlite_schema;
pub mod sqlite_types;

pub use cache::{CredentialCache, CredentialLookup};
pub use model::{Access, Credential, CredentialSource, Scope};
