//! Scope authorization: may this credential run this operation on this bucket, key,
//! list prefix and copy source? Deny by default; every refusal is `AccessDenied`
//! with our own text.
//!
//! Decisions:
//! - A scope grants access classes by level: read-only → `Read`, `List`,
//!   `BucketRead`; read-write adds `Write`; admin adds `BucketConfigRead` and
//!   `BucketAdmin`. `Unknown` is never granted; `Service` (ListBuckets) is granted to
//!   every credential because the answer is synthesized from its own scopes.
//! - Several scopes may match a bucket (exact or `stem*`); any one that allows the
//!   whole request suffices. Bucket names are compared case-sensitively.
//! - Key prefixes: an object key must start with the scope prefix under every
//!   reading a normalising hop could give it (`policy::key_path`), and must not
//!   climb out of the bucket or collapse to the bucket itself, whatever the scope.
//!   S3 itself never normalises, but a proxy signing with the admin key must not
//!   depend on every hop behind it agreeing. That includes `\` read as `/` and a
//!   second percent-decoding (`key_path::spellings`).
//! - Listings need every `prefix` parameter to start with the scope prefix, read
//!   with `+` both as `+` and as a space (backends differ); no `prefix` means the
//!   whole bucket, which only a prefix-free scope allows.
//! - Bucket-wide operations (configuration, CreateBucket, DeleteBucket) need a
//!   prefix-free scope; HeadBucket, GetBucketLocation and GetBucketVersioning do not.
//! - DeleteObjects and POST Object carry their keys in the body: [`authorize`] allows
//!   them only through a prefix-free scope, and the pipeline parses DeleteObjects'
//!   keys and decides with [`authorize_keys`] whatever the scope ([`needs_key_check`]):
//!   a prefix-free scope still needs every key to stay inside the bucket, since
//!   `../other/k` would delete another bucket's object on a filesystem-backed upstream.
//! - A copy source (CopyObject, UploadPartCopy, or any request carrying one) must be
//!   readable: `Read` on its bucket and its key within a prefix.

use std::borrow::Cow;

use crate::credentials::model::{Access, Credential, Scope};
use crate::error::S3Error;

use super::encoding::percent_decode_strict;
use super::key_path;
use super::operation::{AccessClass, S3Operation, Target};
use super::query::Query;
use super::route::Route;

pub use super::copy_source::{
    CopySource, MAX_COPY_SOURCE_BYTES, copy_source_from_headers, parse_copy_source,
};

/// Authorize `op` on `route` for `cred`; `raw_query` supplies list prefixes.
pub fn authorize(
    cred: &Credential,
    op: S3Operation,
    route: &Route,
    raw_query: Option<&str>,
    copy_source: Option<&CopySource>,
) -> Result<(), S3Error> {
    let class = op.access_class();
    if class == AccessClass::Unknown {
        return Err(denied(
            "This operation is not supported through this endpoint.",
        ));
    }
    match copy_source {
        Some(src) => authorize_copy_source(cred, src)?,
        None if op.reads_copy_source() => return Err(denied(ACCESS_DENIED)),
        None => {}
    }
    let target = op.target();
    let Some(bucket) = route.bucket.as_deref() else {
        return if target == Target::Service {
            Ok(())
        } else {
            Err(denied(ACCESS_DENIED))
        };
    };
    let query = Query::parse(raw_query).map_err(|_| denied(ACCESS_DENIED))?;
    let allowed = granting(cred, bucket, class)
        .any(|scope| target_allowed(scope_prefix(scope), target, class, route, &query));
    if allowed {
        Ok(())
    } else {
        Err(denied(ACCESS_DENIED))
    }
}

/// Authorize `op` on each of `keys` in `bucket` (DeleteObjects keys from the body, a
/// POST form's `key`). Each key needs some granting scope whose prefix it is within.
pub fn authorize_keys(
    cred: &Credential,
    bucket: &str,
    op: S3Operation,
    keys: &[&str],
) -> Result<(), S3Error> {
    let class = op.access_class();
    if class == AccessClass::Unknown || granting(cred, bucket, class).next().is_none() {
        return Err(denied(ACCESS_DENIED));
    }
    for key in keys {
        if !granting(cred, bucket, class).any(|s| key_allowed(scope_prefix(s), key)) {
            return Err(denied(ACCESS_DENIED));
        }
    }
    Ok(())
}

/// True when the pipeline must parse a body-keys operation's keys (DeleteObjects) and
/// decide with [`authorize_keys`] instead of [`authorize`]: whenever some scope grants
/// the operation on the bucket. Every key must then be within a granting scope's
/// prefix, and stay inside the bucket under every reading, even for a prefix-free
/// scope.
#[must_use]
pub fn needs_key_check(cred: &Credential, bucket: &str, op: S3Operation) -> bool {
    op.target() == Target::BodyKeys && granting(cred, bucket, op.access_class()).next().is_some()
}

const ACCESS_DENIED: &str = "Access Denied";

fn denied(msg: &'static str) -> S3Error {
    S3Error::AccessDenied(Cow::Borrowed(msg))
}

/// Whether an access level grants an access class.
#[must_use]
pub fn grants(access: Access, class: AccessClass) -> bool {
    match class {
        AccessClass::Read | AccessClass::List | AccessClass::BucketRead => true,
        AccessClass::Write => matches!(access, Access::ReadWrite | Access::Admin),
        AccessClass::BucketConfigRead | AccessClass::BucketAdmin => access == Access::Admin,
        AccessClass::Service | AccessClass::Unknown => false,
    }
}

/// Scopes that match `bucket` and grant `class`.
fn granting<'c>(
    cred: &'c Credential,
    bucket: &'c str,
    class: AccessClass,
) -> impl Iterator<Item = &'c Scope> + 'c {
    cred.scopes
        .iter()
        .filter(move |s| s.matches_bucket(bucket) && grants(s.access, class))
}

/// A scope's prefix; an empty prefix is no prefix.
fn scope_prefix(scope: &Scope) -> Option<&str> {
    scope.prefix.as_deref().filter(|p| !p.is_empty())
}

fn target_allowed(
    prefix: Option<&str>,
    target: Target,
    class: AccessClass,
    route: &Route,
    query: &Query<'_>,
) -> bool {
    match target {
        Target::Object => route.key.as_deref().is_some_and(|k| key_allowed(prefix, k)),
        Target::Listing => list_prefix_allowed(prefix, query),
        Target::Bucket => class == AccessClass::BucketRead || prefix.is_none(),
        Target::BodyKeys => prefix.is_none(),
        Target::Service => false,
    }
}

/// Every reading of every spelling of `key` stays in the bucket and starts with
/// `prefix` spelled the same way.
fn key_allowed(prefix: Option<&str>, key: &str) -> bool {
    let prefix = prefix.unwrap_or("");
    key_path::spellings(key, prefix)
        .iter()
        .all(|(key, prefix)| {
            key_path::readings(key)
                .iter()
                .all(|r| r.as_deref().is_some_and(|k| k.starts_with(prefix.as_ref())))
        })
}

/// Every `prefix` parameter, read with `+` literal and as a space, starts with the
/// scope prefix.
fn list_prefix_allowed(prefix: Option<&str>, query: &Query<'_>) -> bool {
    let Some(prefix) = prefix else {
        return true;
    };
    let mut values = query.raw_values("prefix").peekable();
    if values.peek().is_none() {
        return false;
    }
    values.all(|raw| {
        let spaced = raw.replace('+', "%20");
        [raw, spaced.as_str()]
            .iter()
            .all(|v| percent_decode_strict(v).is_ok_and(|decoded| decoded.starts_with(prefix)))
    })
}

/// A copy source must be readable: `Read` on its bucket and its key within a prefix.
/// [`authorize`] applies it; a body-keys operation decided by [`authorize_keys`]
/// applies it on its own.
///
/// # Errors
/// `AccessDenied` when no scope lets the credential read the source.
pub fn authorize_copy_source(cred: &Credential, src: &CopySource) -> Result<(), S3Error> {
    let readable = granting(cred, &src.bucket, AccessClass::Read)
        .any(|s| key_allowed(scope_prefix(s), &src.key));
    if readable {
        Ok(())
    } else {
        Err(denied(
            "Access Denied: the copy source is outside this credential's scope.",
        ))
    }
}

#[cfg(test)]
#[path = "scope_tests.rs"]
mod tests;
