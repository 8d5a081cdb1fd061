//! What an unsigned request may do on a bucket with a `ReadOnly` anonymous binding:
//! read objects and list plainly, nothing else. Every bucket sub-resource
//! (`?versions`, `?acl`, `?policy`, `?uploads`, …) is a different operation and is
//! refused; so are object reads of other versions and response-header overrides, and
//! any query parameter this table does not name.

use super::operation::S3Operation;
use crate::auth::sigv4::query_pairs;
use crate::error::S3Error;

/// The operations an anonymous request may perform, with the query parameters each
/// may carry.
pub const ALLOWED: &[(S3Operation, &[&str])] = &[
    (S3Operation::GetObject, &["partNumber"]),
    (S3Operation::HeadObject, &["partNumber"]),
    (
        S3Operation::ListObjects,
        &["prefix", "delimiter", "marker", "max-keys", "encoding-type"],
    ),
    (
        S3Operation::ListObjectsV2,
        &[
            "list-type",
            "prefix",
            "delimiter",
            "continuation-token",
            "start-after",
            "max-keys",
            "encoding-type",
        ],
    ),
    (S3Operation::HeadBucket, &[]),
];

/// Refuse anything but a plain object read or listing.
///
/// # Errors
/// `AccessDenied` naming no detail beyond the rule.
pub fn check(op: S3Operation, raw_query: Option<&str>) -> Result<(), S3Error> {
    let denied =
        || S3Error::AccessDenied("Anonymous access allows only object reads and listing.".into());
    let (_, params) = ALLOWED.iter().find(|(o, _)| *o == op).ok_or_else(denied)?;
    for (name, _) in query_pairs(raw_query.unwrap_or("")) {
        // `x-id` is the SDKs' operation hint; it changes nothing.
        if name != "x-id" && !params.contains(&name) {
            return Err(denied());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::route::route;
    use http::{HeaderMap, Method};

    /// (method, path, query, allowed?) — the whole anonymous surface, pinned.
    const TABLE: &[(&str, &str, &str, bool)] = &[
        ("GET", "/pub/a.png", "", true),
        ("HEAD", "/pub/a.png", "", true),
        ("GET", "/pub/a.png", "partNumber=1", true),
        ("GET", "/pub", "", true),
        ("GET", "/pub", "list-type=2&prefix=img/&max-keys=10", true),
        ("GET", "/pub", "prefix=a&delimiter=/&marker=x", true),
        ("HEAD", "/pub", "", true),
        ("GET", "/pub/a.png", "versionId=3", false),
        (
            "GET",
            "/pub/a.png",
            "response-content-type=text/html",
            false,
        ),
        ("GET", "/pub/a.png", "acl", false),
        ("GET", "/pub/a.png", "tagging", false),
        ("GET", "/pub/a.png", "attributes", false),
        ("GET", "/pub/a.png", "torrent", false),
        ("GET", "/pub", "versions", false),
        ("GET", "/pub", "acl", false),
        ("GET", "/pub", "policy", false),
        ("GET", "/pub", "uploads", false),
        ("GET", "/pub", "cors", false),
        ("GET", "/pub", "location", false),
        ("GET", "/pub", "versioning", false),
        ("GET", "/pub", "list-type=2&fetch-owner=true", false),
        ("PUT", "/pub/a.png", "", false),
        ("DELETE", "/pub/a.png", "", false),
        ("POST", "/pub", "delete", false),
        ("GET", "/", "", false),
    ];

    #[test]
    fn only_plain_object_reads_and_listings_are_allowed_anonymously() {
        for (method, path, query, allowed) in TABLE {
            let r = route(Some("localhost"), path, &[]).expect("route");
            let method: Method = method.parse().unwrap();
            let q = (!query.is_empty()).then_some(*query);
            let op = crate::policy::operation::classify(&method, &r, q, &HeaderMap::new());
            assert_eq!(
                check(op, q).is_ok(),
                *allowed,
                "{method} {path}?{query} ({})",
                op.name()
            );
        }
    }
}
