//! The request → [`S3Operation`] classifier (see [`super::operation`] for the rules).

use http::{HeaderMap, Method};

use super::operation::S3Operation as O;
use super::query::Query;
use super::route::Route;

/// Query keys that select an operation (S3 "sub-resources"). At most one may appear.
const SUBRESOURCES: &[&str] = &[
    "accelerate",
    "acl",
    "analytics",
    "attributes",
    "cors",
    "delete",
    "encryption",
    "intelligent-tiering",
    "inventory",
    "legal-hold",
    "lifecycle",
    "location",
    "logging",
    "metrics",
    "notification",
    "object-lock",
    "ownershipControls",
    "policy",
    "policyStatus",
    "publicAccessBlock",
    "replication",
    "requestPayment",
    "restore",
    "retention",
    "select",
    "tagging",
    "torrent",
    "uploads",
    "versioning",
    "versions",
    "website",
];

/// Parameters that never change which operation runs (they only shape it).
const ORDINARY: &[&str] = &[
    // Listings (objects, versions, uploads, parts, buckets).
    "prefix",
    "delimiter",
    "marker",
    "max-keys",
    "encoding-type",
    "list-type",
    "continuation-token",
    "fetch-owner",
    "start-after",
    "key-marker",
    "version-id-marker",
    "upload-id-marker",
    "max-uploads",
    "max-parts",
    "part-number-marker",
    "max-buckets",
    "bucket-region",
    "allow-unordered",
    "metadata",
    // Objects and multipart.
    "versionId",
    "uploadId",
    "partNumber",
    // Sub-resource arguments.
    "id",
    "select-type",
    // SDK operation hint.
    "x-id",
];

/// One bucket configuration family: its sub-resource and the operation per method.
/// `list` answers a GET without `id` for the families that have several configs.
struct Family {
    key: &'static str,
    get: O,
    put: Option<O>,
    delete: Option<O>,
    list: Option<O>,
}

const fn fam(key: &'static str, get: O, put: Option<O>, delete: Option<O>) -> Family {
    Family {
        key,
        get,
        put,
        delete,
        list: None,
    }
}

const fn multi(key: &'static str, get: O, put: O, delete: O, list: O) -> Family {
    Family {
        key,
        get,
        put: Some(put),
        delete: Some(delete),
        list: Some(list),
    }
}

const BUCKET_CONFIG: &[Family] = &[
    fam("acl", O::GetBucketAcl, Some(O::PutBucketAcl), None),
    fam(
        "policy",
        O::GetBucketPolicy,
        Some(O::PutBucketPolicy),
        Some(O::DeleteBucketPolicy),
    ),
    fam("policyStatus", O::GetBucketPolicyStatus, None, None),
    fam(
        "cors",
        O::GetBucketCors,
        Some(O::PutBucketCors),
        Some(O::DeleteBucketCors),
    ),
    fam(
        "lifecycle",
        O::GetBucketLifecycleConfiguration,
        Some(O::PutBucketLifecycleConfiguration),
        Some(O::DeleteBucketLifecycle),
    ),
    fam(
        "versioning",
        O::GetBucketVersioning,
        Some(O::PutBucketVersioning),
        None,
    ),
    fam(
        "encryption",
        O::GetBucketEncryption,
        Some(O::PutBucketEncryption),
        Some(O::DeleteBucketEncryption),
    ),
    fam(
        "tagging",
        O::GetBucketTagging,
        Some(O::PutBucketTagging),
        Some(O::DeleteBucketTagging),
    ),
    fam(
        "website",
        O::GetBucketWebsite,
        Some(O::PutBucketWebsite),
        Some(O::DeleteBucketWebsite),
    ),
    fam(
        "logging",
        O::GetBucketLogging,
        Some(O::PutBucketLogging),
        None,
    ),
    fam(
        "notification",
        O::GetBucketNotificationConfiguration,
        Some(O::PutBucketNotificationConfiguration),
        None,
    ),
    fam(
        "replication",
        O::GetBucketReplication,
        Some(O::PutBucketReplication),
        Some(O::DeleteBucketReplication),
    ),
    fam(
        "object-lock",
        O::GetObjectLockConfiguration,
        Some(O::PutObjectLockConfiguration),
        None,
    ),
    fam(
        "publicAccessBlock",
        O::GetPublicAccessBlock,
        Some(O::PutPublicAccessBlock),
        Some(O::DeletePublicAccessBlock),
    ),
    fam(
        "ownershipControls",
        O::GetBucketOwnershipControls,
        Some(O::PutBucketOwnershipControls),
        Some(O::DeleteBucketOwnershipControls),
    ),
    fam(
        "accelerate",
        O::GetBucketAccelerateConfiguration,
        Some(O::PutBucketAccelerateConfiguration),
        None,
    ),
    fam(
        "requestPayment",
        O::GetBucketRequestPayment,
        Some(O::PutBucketRequestPayment),
        None,
    ),
    multi(
        "analytics",
        O::GetBucketAnalyticsConfiguration,
        O::PutBucketAnalyticsConfiguration,
        O::DeleteBucketAnalyticsConfiguration,
        O::ListBucketAnalyticsConfigurations,
    ),
    multi(
        "inventory",
        O::GetBucketInventoryConfiguration,
        O::PutBucketInventoryConfiguration,
        O::DeleteBucketInventoryConfiguration,
        O::ListBucketInventoryConfigurations,
    ),
    multi(
        "metrics",
        O::GetBucketMetricsConfiguration,
        O::PutBucketMetricsConfiguration,
        O::DeleteBucketMetricsConfiguration,
        O::ListBucketMetricsConfigurations,
    ),
    multi(
        "intelligent-tiering",
        O::GetBucketIntelligentTieringConfiguration,
        O::PutBucketIntelligentTieringConfiguration,
        O::DeleteBucketIntelligentTieringConfiguration,
        O::ListBucketIntelligentTieringConfigurations,
    ),
];

/// Name the S3 operation a request asks for. Anything not recognised is
/// [`O::Unknown`]; nothing here fails.
#[must_use]
pub fn classify(method: &Method, route: &Route, raw_query: Option<&str>, headers: &HeaderMap) -> O {
    let Ok(query) = Query::parse(raw_query) else {
        return O::Unknown;
    };
    let Some(sub) = subresource(&query) else {
        return O::Unknown;
    };
    match (&route.bucket, &route.key) {
        (None, _) => service(method, sub),
        (Some(_), None) => bucket(method, sub, &query, headers),
        (Some(_), Some(_)) => object(method, sub, &query, headers),
    }
}

/// `Some(None)`: no sub-resource; `Some(Some(k))`: exactly one; `None`: an unknown
/// key or more than one sub-resource (the request is refused).
fn subresource<'q>(query: &'q Query<'_>) -> Option<Option<&'q str>> {
    let mut found = None;
    for p in query.params() {
        let key = p.key.as_str();
        if SUBRESOURCES.contains(&key) {
            if found.is_some() {
                return None;
            }
            found = Some(key);
        } else if !is_ordinary(key) {
            return None;
        }
    }
    Some(found)
}

fn is_ordinary(key: &str) -> bool {
    ORDINARY.contains(&key)
        || has_prefix_ignore_case(key, "response-")
        || has_prefix_ignore_case(key, "x-amz-")
}

fn has_prefix_ignore_case(s: &str, prefix: &str) -> bool {
    s.get(..prefix.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(prefix))
}

fn service(method: &Method, sub: Option<&str>) -> O {
    if method == Method::GET && sub.is_none() {
        O::ListBuckets
    } else {
        O::Unknown
    }
}

fn bucket(method: &Method, sub: Option<&str>, query: &Query<'_>, headers: &HeaderMap) -> O {
    // Upload and part parameters only make sense on an object.
    if query.has("uploadId") || query.has("partNumber") {
        return O::Unknown;
    }
    match (method.as_str(), sub) {
        ("GET", None) => match query.single("list-type") {
            Ok(None) => O::ListObjects,
            Ok(Some(v)) if v == "2" => O::ListObjectsV2,
            _ => O::Unknown,
        },
        ("GET", Some("location")) => O::GetBucketLocation,
        ("GET", Some("uploads")) => O::ListMultipartUploads,
        ("GET", Some("versions")) => O::ListObjectVersions,
        ("HEAD", None) => O::HeadBucket,
        ("PUT", None) => O::CreateBucket,
        ("DELETE", None) => O::DeleteBucket,
        ("POST", Some("delete")) => O::DeleteObjects,
        ("POST", None) if is_form_upload(headers) => O::PostObject,
        (_, Some(key)) => bucket_config(method, key, query),
        _ => O::Unknown,
    }
}

fn bucket_config(method: &Method, key: &str, query: &Query<'_>) -> O {
    let Some(family) = BUCKET_CONFIG.iter().find(|f| f.key == key) else {
        return O::Unknown;
    };
    let op = match method.as_str() {
        "GET" => match family.list {
            Some(list) if !query.has("id") => Some(list),
            _ => Some(family.get),
        },
        "PUT" => family.put,
        "DELETE" => family.delete,
        _ => None,
    };
    op.unwrap_or(O::Unknown)
}

fn object(method: &Method, sub: Option<&str>, query: &Query<'_>, headers: &HeaderMap) -> O {
    let upload = query.has("uploadId");
    let part = query.has("partNumber");
    let copy = headers.contains_key("x-amz-copy-source");
    match sub {
        None => object_plain(method, upload, part, copy),
        // Sub-resources act on a stored object, never on an upload in progress.
        Some(_) if upload || part || copy => O::Unknown,
        Some(key) => object_subresource(method, key),
    }
}

fn object_plain(method: &Method, upload: bool, part: bool, copy: bool) -> O {
    match (method.as_str(), upload, part) {
        ("GET", false, _) => O::GetObject,
        ("GET", true, false) => O::ListParts,
        ("HEAD", false, _) => O::HeadObject,
        ("PUT", false, false) if copy => O::CopyObject,
        ("PUT", false, false) => O::PutObject,
        ("PUT", true, true) if copy => O::UploadPartCopy,
        ("PUT", true, true) => O::UploadPart,
        ("DELETE", false, false) => O::DeleteObject,
        ("DELETE", true, false) => O::AbortMultipartUpload,
        ("POST", true, false) => O::CompleteMultipartUpload,
        _ => O::Unknown,
    }
}

fn object_subresource(method: &Method, key: &str) -> O {
    match (method.as_str(), key) {
        ("GET", "acl") => O::GetObjectAcl,
        ("PUT", "acl") => O::PutObjectAcl,
        ("GET", "tagging") => O::GetObjectTagging,
        ("PUT", "tagging") => O::PutObjectTagging,
        ("DELETE", "tagging") => O::DeleteObjectTagging,
        ("GET", "retention") => O::GetObjectRetention,
        ("PUT", "retention") => O::PutObjectRetention,
        ("GET", "legal-hold") => O::GetObjectLegalHold,
        ("PUT", "legal-hold") => O::PutObjectLegalHold,
        ("GET", "attributes") => O::GetObjectAttributes,
        ("GET", "torrent") => O::GetObjectTorrent,
        ("POST", "uploads") => O::CreateMultipartUpload,
        ("POST", "restore") => O::RestoreObject,
        ("POST", "select") => O::SelectObjectContent,
        _ => O::Unknown,
    }
}

/// A browser-form upload (POST Object): `multipart/form-data` on the bucket.
fn is_form_upload(headers: &HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| has_prefix_ignore_case(ct.trim_start(), "multipart/form-data"))
}
