//! What an accounted request may add or free, worked out at admission — before a
//! single body byte is read: the plan per operation, what it reserves, and the
//! upstream facts it needs (the old object at the key, the copy source's size, the
//! parts of an upload).

use std::borrow::Cow;
use std::collections::HashMap;

use http::request::Parts;
use http::{HeaderMap, HeaderName};

use super::claims::{Claim, KeyClaims};
use crate::auth::PayloadMode;
use crate::error::S3Error;
use crate::policy::operation::S3Operation;
use crate::policy::route::Route;
use crate::policy::scope::CopySource;
use crate::quota::BucketKey;
use crate::quota::ledger::Charge;
use crate::upstream::admin_ops;
use crate::upstream::{UpstreamBackend, UpstreamClient};

/// How a request changes usage. `old` is the size of the object a request replaces
/// or removes, when accounting may rely on it (see `claims`); `None` means "assume
/// nothing was there" for additions and "subtract nothing" for deletions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Plan {
    /// PutObject, POST object, CopyObject: a whole object of `incoming` bytes.
    Object { incoming: u64, old: Option<u64> },
    /// UploadPart, UploadPartCopy.
    Part { bytes: u64 },
    /// AbortMultipartUpload frees the upload's parts (`None`: they could not be listed).
    Abort { parts: Option<u64> },
    /// CompleteMultipartUpload turns parts into the object at `object`.
    Complete {
        object: String,
        parts: Option<u64>,
        old: Option<u64>,
    },
    /// DeleteObject.
    Delete { old: Option<u64> },
    /// DeleteObjects; the sizes of the keys it may free are read with the body.
    DeleteMany {
        quiet: bool,
        sizes: HashMap<String, u64>,
    },
    /// A copy whose source did not exist at admission: the upstream will most likely
    /// refuse it; if it does not, a rescan counts what landed.
    Unmeasured,
}

impl Plan {
    /// What to reserve before forwarding (`None`: the request adds nothing).
    pub(super) fn charge(&self) -> Option<Charge> {
        let new_object = |old: &Option<u64>| u64::from(old.is_none());
        match self {
            Self::Object { incoming, old } => Some(Charge {
                bytes: *incoming,
                objects: new_object(old),
            }),
            Self::Part { bytes } => Some(Charge {
                bytes: *bytes,
                objects: 0,
            }),
            Self::Complete { old, .. } => Some(Charge {
                bytes: 0,
                objects: new_object(old),
            }),
            _ => None,
        }
    }

    /// The largest change the request can have made, for when its outcome is not
    /// known (no answer, or the answer could not be checked): never less than the
    /// truth, so the gate stays closed until a rescan sets the real value.
    pub(super) fn upper_bound(&self) -> (i64, i64) {
        let new_object = |old: &Option<u64>| i64::from(old.is_none());
        match self {
            Self::Object { incoming, old } => (
                signed(incoming.saturating_sub(old.unwrap_or(0))),
                new_object(old),
            ),
            Self::Part { bytes } => (signed(*bytes), 0),
            // The object is assembled from parts already counted.
            Self::Complete { old, .. } => (0, new_object(old)),
            _ => (0, 0),
        }
    }
}

/// A count as a ledger delta.
pub(super) fn signed(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// What admission needs to reach the upstream and the claims.
pub(super) struct Ctx<'a> {
    pub client: &'a UpstreamClient,
    pub backend: &'a UpstreamBackend,
    pub bucket: &'a BucketKey,
    pub claims: &'a KeyClaims,
}

/// A plan with the claims it holds and the length of the request body.
pub(super) struct Planned {
    pub plan: Plan,
    pub claims: Vec<Claim>,
    pub body_len: u64,
}

/// The request, as admission sees it.
pub(super) struct Request<'a> {
    pub op: S3Operation,
    pub route: &'a Route,
    pub parts: &'a Parts,
    pub payload: &'a PayloadMode,
    pub copy_source: Option<&'a CopySource>,
}

/// Operations that can change what a bucket stores.
pub(super) fn accounted(op: S3Operation) -> bool {
    use S3Operation as O;
    matches!(
        op,
        O::PutObject
            | O::PostObject
            | O::CopyObject
            | O::UploadPart
            | O::UploadPartCopy
            | O::AbortMultipartUpload
            | O::CompleteMultipartUpload
            | O::DeleteObject
            | O::DeleteObjects
    )
}

/// The plan of an accounted operation; `None` for everything that stores nothing.
pub(super) async fn plan(ctx: &Ctx<'_>, req: &Request<'_>) -> Result<Option<Planned>, S3Error> {
    let key = req.route.key.as_deref();
    let query = req.parts.uri.query();
    let planned = match req.op {
        S3Operation::PutObject | S3Operation::PostObject => {
            let len = body_length(req.parts, req.payload)?;
            let (claims, old) = old_object(ctx, key).await;
            with_body(Plan::Object { incoming: len, old }, claims, len)
        }
        S3Operation::CopyObject => match copy_size(ctx, req).await? {
            Some(size) => {
                let (claims, old) = old_object(ctx, key).await;
                with_body(
                    Plan::Object {
                        incoming: size,
                        old,
                    },
                    claims,
                    0,
                )
            }
            None => with_body(Plan::Unmeasured, Vec::new(), 0),
        },
        S3Operation::UploadPart => {
            let len = body_length(req.parts, req.payload)?;
            with_body(Plan::Part { bytes: len }, Vec::new(), len)
        }
        S3Operation::UploadPartCopy => {
            let size = match copy_range_len(&req.parts.headers)? {
                Some(n) => Some(n),
                None => copy_size(ctx, req).await?,
            };
            let plan = size.map_or(Plan::Unmeasured, |bytes| Plan::Part { bytes });
            with_body(plan, Vec::new(), 0)
        }
        S3Operation::AbortMultipartUpload => {
            let parts = upload_parts(ctx, key, query).await;
            with_body(Plan::Abort { parts }, Vec::new(), 0)
        }
        S3Operation::CompleteMultipartUpload => complete(ctx, req).await?,
        S3Operation::DeleteObject => delete(ctx, key, query).await,
        S3Operation::DeleteObjects => with_body(
            Plan::DeleteMany {
                quiet: false,
                sizes: HashMap::new(),
            },
            Vec::new(),
            0,
        ),
        _ => return Ok(None),
    };
    Ok(Some(planned))
}

fn with_body(plan: Plan, claims: Vec<Claim>, body_len: u64) -> Planned {
    Planned {
        plan,
        claims,
        body_len,
    }
}

async fn complete(ctx: &Ctx<'_>, req: &Request<'_>) -> Result<Planned, S3Error> {
    let Some(object) = req.route.key.clone() else {
        return Err(S3Error::InvalidRequest(Cow::Borrowed(
            "CompleteMultipartUpload needs an object key.",
        )));
    };
    let (claims, old) = old_object(ctx, Some(&object)).await;
    let parts = upload_parts(ctx, Some(&object), req.parts.uri.query()).await;
    Ok(with_body(Plan::Complete { object, parts, old }, claims, 0))
}

async fn delete(ctx: &Ctx<'_>, key: Option<&str>, query: Option<&str>) -> Planned {
    // Removing one version is not what a scan counts (current objects only): leave
    // it to the next scan rather than guess which version was current.
    if query_param(query, "versionId").is_some() {
        return with_body(Plan::Delete { old: None }, Vec::new(), 0);
    }
    let (claims, old) = old_object(ctx, key).await;
    with_body(Plan::Delete { old }, claims, 0)
}

/// The exact number of body bytes the upstream will receive (as the pipeline sends
/// them): the decoded length, else Content-Length; a length-less chunked body is
/// refused here rather than after a reservation.
pub(super) fn body_length(parts: &Parts, payload: &PayloadMode) -> Result<u64, S3Error> {
    if let Some(n) = payload.decoded_length() {
        return Ok(n);
    }
    match parts.headers.get(http::header::CONTENT_LENGTH) {
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
            .ok_or_else(|| S3Error::InvalidArgument("Content-Length is not a number.".into())),
        None if parts.headers.contains_key(http::header::TRANSFER_ENCODING) => {
            Err(S3Error::MissingContentLength)
        }
        None => Ok(0),
    }
}

/// Claim `key` and, when the claim is exclusive, read the size of what is there now.
/// A HEAD that fails is treated as "nothing there" (count in full, subtract nothing).
async fn old_object(ctx: &Ctx<'_>, key: Option<&str>) -> (Vec<Claim>, Option<u64>) {
    let Some(key) = key else {
        return (Vec::new(), None);
    };
    let claim = ctx.claims.claim(ctx.bucket, key);
    let old = if claim.exclusive() {
        admin_ops::object_size(ctx.client, ctx.backend, &ctx.bucket.bucket, key, None)
            .await
            .unwrap_or_else(|e| {
                tracing::debug!(bucket = %ctx.bucket.bucket, error = %e, "cannot size the object a write replaces; counting it as new");
                None
            })
    } else {
        None
    };
    (vec![claim], old)
}

/// The size of the copy source (`None`: it does not exist). Fails closed: a source
/// that cannot be sized cannot be admitted.
async fn copy_size(ctx: &Ctx<'_>, req: &Request<'_>) -> Result<Option<u64>, S3Error> {
    let Some(src) = req.copy_source else {
        return Ok(None);
    };
    let sse_c = copy_source_sse_c(&req.parts.headers);
    let version = src.version_id.as_deref();
    admin_ops::object_size_with(ctx.client, ctx.backend, &src.bucket, &src.key, version, &sse_c)
        .await
        .map_err(|e| {
            tracing::warn!(bucket = %ctx.bucket.bucket, error = %e, "cannot size a copy source; refusing the copy");
            S3Error::ServiceUnavailable
        })
}

const COPY_SSE_C: &str = "x-amz-copy-source-server-side-encryption-customer-";
const SSE_C: &str = "x-amz-server-side-encryption-customer-";

/// The copy source's SSE-C key headers, renamed for a HEAD of the source itself.
fn copy_source_sse_c(headers: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::new();
    for (name, value) in headers {
        if let Some(rest) = name.as_str().strip_prefix(COPY_SSE_C)
            && let Ok(renamed) = HeaderName::from_bytes(format!("{SSE_C}{rest}").as_bytes())
        {
            out.insert(renamed, value.clone());
        }
    }
    out
}

/// The length of `x-amz-copy-source-range: bytes=first-last`, when present.
pub(super) fn copy_range_len(headers: &HeaderMap) -> Result<Option<u64>, S3Error> {
    let Some(value) = headers.get("x-amz-copy-source-range") else {
        return Ok(None);
    };
    let bad = || {
        S3Error::InvalidArgument(Cow::Borrowed(
            "The x-amz-copy-source-range header must be bytes=first-last.",
        ))
    };
    let digits = |s: &str| {
        (!s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse::<u64>().ok())
            .flatten()
    };
    let text = value.to_str().map_err(|_| bad())?;
    let (first, last) = text
        .strip_prefix("bytes=")
        .and_then(|r| r.split_once('-'))
        .ok_or_else(bad)?;
    let (first, last) = (
        digits(first).ok_or_else(bad)?,
        digits(last).ok_or_else(bad)?,
    );
    if last < first {
        return Err(bad());
    }
    (last - first).checked_add(1).map(Some).ok_or_else(bad)
}

/// The bytes of the parts of the upload named by `uploadId` (`None`: unknown).
async fn upload_parts(ctx: &Ctx<'_>, key: Option<&str>, query: Option<&str>) -> Option<u64> {
    let (key, upload_id) = (key?, query_param(query, "uploadId")?);
    let bucket = &ctx.bucket.bucket;
    admin_ops::list_parts_bytes(ctx.client, ctx.backend, bucket, key, &upload_id)
        .await
        .map_err(|e| {
            tracing::debug!(bucket = %bucket, error = %e, "cannot list an upload's parts; not subtracting them");
        })
        .ok()
}

/// The percent-decoded value of the first `name=` query parameter.
pub(super) fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    query?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        if k != name {
            return None;
        }
        percent_encoding::percent_decode_str(v)
            .decode_utf8()
            .ok()
            .map(Cow::into_owned)
    })
}
