//! DeleteObjects accounting: the keys come from the (bounded, verified) request body,
//! each is sized with a HEAD before forwarding (bounded concurrency), and after the
//! upstream answers only the keys it reports deleted are subtracted.
//!
//! A key named with a `VersionId` is never subtracted (removing one version is not
//! what a scan counts), nor is a key the request names both with and without one.
//! Whether a deletion removed the current object is decided by the request, not by
//! the answer: a `<Deleted>` entry may carry a `VersionId` for an unversioned request
//! (Garage names the internal version it removed; AWS names a delete marker), and the
//! current object is gone either way. In quiet mode the answer lists only failures:
//! every sized key that is not listed as an error counts as deleted.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use futures_util::StreamExt as _;

use super::claims::Claim;
use super::plan::Ctx;
use crate::error::S3Error;
use crate::upstream::admin_ops::{self, xml};

/// S3's own limit on the keys of one DeleteObjects request.
const MAX_KEYS: usize = 1000;
/// HEADs in flight at once for one request.
const HEAD_CONCURRENCY: usize = 16;

/// One `<Object>` of the request.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct Entry {
    pub key: String,
    pub versioned: bool,
}

/// The request: its objects and whether the answer is quiet.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct DeleteRequest {
    pub entries: Vec<Entry>,
    pub quiet: bool,
}

fn malformed() -> S3Error {
    S3Error::InvalidRequest("The XML you provided was not well-formed.".into())
}

pub(super) fn parse_request(body: &[u8]) -> Result<DeleteRequest, S3Error> {
    let mut req = DeleteRequest::default();
    let mut current = Entry::default();
    xml::walk(body, |c| {
        match c.path {
            "Quiet" => req.quiet = c.text.eq_ignore_ascii_case("true"),
            "Object/Key" => current.key = c.text.to_owned(),
            "Object/VersionId" => current.versioned = !c.text.is_empty(),
            "Object" => req.entries.push(std::mem::take(&mut current)),
            _ => {}
        }
        Ok(())
    })
    .map_err(|_| malformed())?;
    if req.entries.len() > MAX_KEYS {
        return Err(S3Error::InvalidRequest(
            "A DeleteObjects request may name at most 1000 keys.".into(),
        ));
    }
    Ok(req)
}

/// The keys whose current object the request deletes: named without a `VersionId`,
/// and never also with one (which of the two deletions an answer's `<Deleted>` entry
/// reports could not be told apart).
fn unversioned_keys(req: &DeleteRequest) -> HashSet<&str> {
    let versioned: HashSet<&str> = req
        .entries
        .iter()
        .filter(|e| e.versioned)
        .map(|e| e.key.as_str())
        .collect();
    req.entries
        .iter()
        .filter(|e| !e.versioned && !e.key.is_empty() && !versioned.contains(e.key.as_str()))
        .map(|e| e.key.as_str())
        .collect()
}

/// Claim every unversioned key and size those whose claim is exclusive.
pub(super) async fn size_keys(
    ctx: &Ctx<'_>,
    req: &DeleteRequest,
) -> (HashMap<String, u64>, Vec<Claim>) {
    let keys = unversioned_keys(req);
    let claims: Vec<Claim> = keys
        .iter()
        .map(|k| ctx.claims.claim(ctx.bucket, k))
        .collect();
    let exclusive: Vec<String> = keys
        .iter()
        .zip(&claims)
        .filter(|(_, c)| c.exclusive())
        .map(|(k, _)| (*k).to_owned())
        .collect();
    // Owned per HEAD: the futures run concurrently and outlive no borrow.
    let target = Arc::new((
        ctx.client.clone(),
        ctx.backend.clone(),
        ctx.bucket.bucket.clone(),
    ));
    let heads = exclusive.into_iter().map(|key| {
        let target = Arc::clone(&target);
        async move {
            let (client, backend, bucket) = &*target;
            let size = admin_ops::object_size(client, backend, bucket, &key, None).await;
            (key, size)
        }
    });
    let mut results = futures_util::stream::iter(heads).buffer_unordered(HEAD_CONCURRENCY);
    let mut sizes = HashMap::new();
    while let Some((key, size)) = results.next().await {
        if let Ok(Some(n)) = size {
            sizes.insert(key, n);
        }
    }
    (sizes, claims)
}

/// What the upstream reports: keys deleted and keys that failed. A `VersionId` in
/// the answer is ignored: only keys the request named unversioned are ever sized.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct DeleteResult {
    pub deleted: HashSet<String>,
    pub failed: HashSet<String>,
}

/// `None` when the answer cannot be read: then nothing is subtracted.
pub(super) fn parse_result(body: &[u8]) -> Option<DeleteResult> {
    let mut result = DeleteResult::default();
    let mut key = String::new();
    xml::walk(body, |c| {
        match c.path {
            "Deleted/Key" | "Error/Key" => key = c.text.to_owned(),
            "Deleted" => {
                result.deleted.insert(std::mem::take(&mut key));
            }
            "Error" => {
                result.failed.insert(std::mem::take(&mut key));
            }
            _ => {}
        }
        Ok(())
    })
    .ok()?;
    Some(result)
}

/// Bytes and objects freed: sized keys the answer reports deleted (quiet: not failed).
pub(super) fn freed(
    sizes: &HashMap<String, u64>,
    quiet: bool,
    result: &DeleteResult,
) -> (u64, u64) {
    sizes
        .iter()
        .filter(|(k, _)| {
            if quiet {
                !result.failed.contains(*k)
            } else {
                result.deleted.contains(*k)
            }
        })
        .fold((0u64, 0u64), |(b, o), (_, n)| {
            (b.saturating_add(*n), o.saturating_add(1))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_keys_versions_and_quiet_are_read() {
        let body = b"<Delete xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Quiet>true</Quiet><Object><Key>a&amp;b</Key></Object><Object><Key>v</Key><VersionId>3</VersionId></Object></Delete>";
        let req = parse_request(body).unwrap();
        assert!(req.quiet);
        assert_eq!(
            req.entries,
            vec![
                Entry {
                    key: "a&b".into(),
                    versioned: false
                },
                Entry {
                    key: "v".into(),
                    versioned: true
                }
            ]
        );
        assert_eq!(
            parse_request(b"<Delete><Object>").unwrap_err().code(),
            "InvalidRequest"
        );
    }

    #[test]
    fn more_than_a_thousand_keys_are_refused() {
        let mut body = String::from("<Delete>");
        for i in 0..=MAX_KEYS {
            body.push_str(&format!("<Object><Key>k{i}</Key></Object>"));
        }
        body.push_str("</Delete>");
        assert!(parse_request(body.as_bytes()).is_err());
    }

    #[test]
    fn only_reported_deletions_of_sized_keys_are_freed() {
        let body = b"<DeleteResult><Deleted><Key>a</Key></Deleted><Deleted><Key>b</Key><VersionId>7</VersionId></Deleted><Deleted><Key>m</Key><DeleteMarker>true</DeleteMarker><DeleteMarkerVersionId>9</DeleteMarkerVersionId></Deleted><Error><Key>c</Key><Code>AccessDenied</Code></Error></DeleteResult>";
        let result = parse_result(body).unwrap();
        let sizes: HashMap<String, u64> =
            [("a", 10), ("b", 20), ("c", 40), ("m", 5), ("unlisted", 80)]
                .into_iter()
                .map(|(k, n)| (k.to_owned(), n))
                .collect();
        // Sized keys were named without a VersionId: a VersionId in the answer does
        // not make their deletion any less a deletion of the current object.
        assert_eq!(freed(&sizes, false, &result), (35, 3));
        // Quiet: everything sized that did not fail.
        assert_eq!(freed(&sizes, true, &result), (115, 4));
        assert_eq!(parse_result(b"<DeleteResult><Deleted>"), None);
    }

    /// Garage's verbose answer to an unversioned DeleteObjects names the version it
    /// removed and a delete-marker version for every existing key. Reading that
    /// VersionId as "only one version went" freed nothing, so every verbose
    /// DeleteObjects left its bytes counted until the next scan.
    #[test]
    fn a_garage_verbose_answer_frees_the_existing_keys_it_lists() {
        let body = br#"<?xml version="1.0" encoding="UTF-8"?><DeleteResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Deleted><Key>a0</Key><VersionId>f5c9bcd7a826a154</VersionId><DeleteMarkerVersionId>8890cac1115b25c7</DeleteMarkerVersionId></Deleted><Deleted><Key>a1</Key><VersionId>d601cdeaf97f1bd7</VersionId><DeleteMarkerVersionId>17ca93d50b0033d5</DeleteMarkerVersionId></Deleted><Deleted><Key>absent</Key></Deleted></DeleteResult>"#;
        let result = parse_result(body).unwrap();
        let sizes: HashMap<String, u64> = [("a0", 100), ("a1", 200)]
            .into_iter()
            .map(|(k, n)| (k.to_owned(), n))
            .collect();
        assert_eq!(freed(&sizes, false, &result), (300, 2));
    }

    #[test]
    fn a_key_also_named_with_a_version_is_not_sized() {
        let body = b"<Delete><Object><Key>both</Key></Object><Object><Key>both</Key><VersionId>3</VersionId></Object><Object><Key>plain</Key></Object><Object><Key>old</Key><VersionId>4</VersionId></Object><Object><Key></Key></Object></Delete>";
        let req = parse_request(body).unwrap();
        assert_eq!(unversioned_keys(&req), HashSet::from(["plain"]));
    }
}
