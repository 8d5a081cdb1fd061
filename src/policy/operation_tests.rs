use std::collections::HashSet;

use http::{HeaderMap, HeaderName, HeaderValue, Method};

use super::*;
use crate::policy::route::{AddressingStyle, Route};

use AccessClass as C;
use S3Operation as O;

const COPY: &[(&str, &str)] = &[("x-amz-copy-source", "/src/key")];
const FORM: &[(&str, &str)] = &[("content-type", "multipart/form-data; boundary=x")];
const NONE: &[(&str, &str)] = &[];

/// (method, path, query, headers) → operation and access class.
type Row = (
    &'static str,
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
    O,
    C,
);

/// Every variant appears at least once.
#[rustfmt::skip]
const TABLE: &[Row] = &[
    ("GET", "/", "", NONE, O::ListBuckets, C::Service),
    ("GET", "/", "max-buckets=10&prefix=a&x-id=ListBuckets", NONE, O::ListBuckets, C::Service),
    // Bucket level.
    ("PUT", "/bkt", "", NONE, O::CreateBucket, C::BucketAdmin),
    ("DELETE", "/bkt", "", NONE, O::DeleteBucket, C::BucketAdmin),
    ("HEAD", "/bkt", "", NONE, O::HeadBucket, C::BucketRead),
    ("GET", "/bkt", "location", NONE, O::GetBucketLocation, C::BucketRead),
    ("GET", "/bkt", "prefix=a/&delimiter=/&marker=m&max-keys=5", NONE, O::ListObjects, C::List),
    ("GET", "/bkt/", "list-type=2&prefix=a&continuation-token=t&encoding-type=url", NONE, O::ListObjectsV2, C::List),
    ("GET", "/bkt", "versions&prefix=a&key-marker=k&version-id-marker=v", NONE, O::ListObjectVersions, C::List),
    ("GET", "/bkt", "uploads&prefix=a&upload-id-marker=u&max-uploads=3", NONE, O::ListMultipartUploads, C::List),
    ("POST", "/bkt", "delete", NONE, O::DeleteObjects, C::Write),
    ("POST", "/bkt", "", FORM, O::PostObject, C::Write),
    // Object level.
    ("GET", "/bkt/k", "versionId=v&response-content-type=text/plain&partNumber=1", NONE, O::GetObject, C::Read),
    ("HEAD", "/bkt/k", "versionId=v", NONE, O::HeadObject, C::Read),
    ("PUT", "/bkt/k", "x-id=PutObject", NONE, O::PutObject, C::Write),
    ("PUT", "/bkt/k", "", COPY, O::CopyObject, C::Write),
    ("DELETE", "/bkt/k", "versionId=v", NONE, O::DeleteObject, C::Write),
    ("POST", "/bkt/k", "uploads", NONE, O::CreateMultipartUpload, C::Write),
    ("PUT", "/bkt/k", "partNumber=2&uploadId=u", NONE, O::UploadPart, C::Write),
    ("PUT", "/bkt/k", "partNumber=2&uploadId=u", COPY, O::UploadPartCopy, C::Write),
    ("POST", "/bkt/k", "uploadId=u", NONE, O::CompleteMultipartUpload, C::Write),
    ("DELETE", "/bkt/k", "uploadId=u", NONE, O::AbortMultipartUpload, C::Write),
    ("GET", "/bkt/k", "uploadId=u&max-parts=5&part-number-marker=1", NONE, O::ListParts, C::Read),
    ("GET", "/bkt/k", "attributes", NONE, O::GetObjectAttributes, C::Read),
    ("GET", "/bkt/k", "tagging&versionId=v", NONE, O::GetObjectTagging, C::Read),
    ("PUT", "/bkt/k", "tagging", NONE, O::PutObjectTagging, C::Write),
    ("DELETE", "/bkt/k", "tagging", NONE, O::DeleteObjectTagging, C::Write),
    ("GET", "/bkt/k", "acl", NONE, O::GetObjectAcl, C::BucketConfigRead),
    ("PUT", "/bkt/k", "acl", NONE, O::PutObjectAcl, C::BucketAdmin),
    ("GET", "/bkt/k", "retention", NONE, O::GetObjectRetention, C::Read),
    ("PUT", "/bkt/k", "retention", NONE, O::PutObjectRetention, C::Write),
    ("GET", "/bkt/k", "legal-hold", NONE, O::GetObjectLegalHold, C::Read),
    ("PUT", "/bkt/k", "legal-hold", NONE, O::PutObjectLegalHold, C::Write),
    ("POST", "/bkt/k", "restore", NONE, O::RestoreObject, C::Write),
    ("POST", "/bkt/k", "select&select-type=2", NONE, O::SelectObjectContent, C::Read),
    ("GET", "/bkt/k", "torrent", NONE, O::GetObjectTorrent, C::Read),
    // Bucket configuration.
    ("GET", "/bkt", "acl", NONE, O::GetBucketAcl, C::BucketConfigRead),
    ("PUT", "/bkt", "acl", NONE, O::PutBucketAcl, C::BucketAdmin),
    ("GET", "/bkt", "policy", NONE, O::GetBucketPolicy, C::BucketConfigRead),
    ("PUT", "/bkt", "policy", NONE, O::PutBucketPolicy, C::BucketAdmin),
    ("DELETE", "/bkt", "policy", NONE, O::DeleteBucketPolicy, C::BucketAdmin),
    ("GET", "/bkt", "policyStatus", NONE, O::GetBucketPolicyStatus, C::BucketConfigRead),
    ("GET", "/bkt", "cors", NONE, O::GetBucketCors, C::BucketConfigRead),
    ("PUT", "/bkt", "cors", NONE, O::PutBucketCors, C::BucketAdmin),
    ("DELETE", "/bkt", "cors", NONE, O::DeleteBucketCors, C::BucketAdmin),
    ("GET", "/bkt", "lifecycle", NONE, O::GetBucketLifecycleConfiguration, C::BucketConfigRead),
    ("PUT", "/bkt", "lifecycle", NONE, O::PutBucketLifecycleConfiguration, C::BucketAdmin),
    ("DELETE", "/bkt", "lifecycle", NONE, O::DeleteBucketLifecycle, C::BucketAdmin),
    ("GET", "/bkt", "versioning", NONE, O::GetBucketVersioning, C::BucketRead),
    ("PUT", "/bkt", "versioning", NONE, O::PutBucketVersioning, C::BucketAdmin),
    ("GET", "/bkt", "encryption", NONE, O::GetBucketEncryption, C::BucketConfigRead),
    ("PUT", "/bkt", "encryption", NONE, O::PutBucketEncryption, C::BucketAdmin),
    ("DELETE", "/bkt", "encryption", NONE, O::DeleteBucketEncryption, C::BucketAdmin),
    ("GET", "/bkt", "tagging", NONE, O::GetBucketTagging, C::BucketConfigRead),
    ("PUT", "/bkt", "tagging", NONE, O::PutBucketTagging, C::BucketAdmin),
    ("DELETE", "/bkt", "tagging", NONE, O::DeleteBucketTagging, C::BucketAdmin),
    ("GET", "/bkt", "website", NONE, O::GetBucketWebsite, C::BucketConfigRead),
    ("PUT", "/bkt", "website", NONE, O::PutBucketWebsite, C::BucketAdmin),
    ("DELETE", "/bkt", "website", NONE, O::DeleteBucketWebsite, C::BucketAdmin),
    ("GET", "/bkt", "logging", NONE, O::GetBucketLogging, C::BucketConfigRead),
    ("PUT", "/bkt", "logging", NONE, O::PutBucketLogging, C::BucketAdmin),
    ("GET", "/bkt", "notification", NONE, O::GetBucketNotificationConfiguration, C::BucketConfigRead),
    ("PUT", "/bkt", "notification", NONE, O::PutBucketNotificationConfiguration, C::BucketAdmin),
    ("GET", "/bkt", "replication", NONE, O::GetBucketReplication, C::BucketConfigRead),
    ("PUT", "/bkt", "replication", NONE, O::PutBucketReplication, C::BucketAdmin),
    ("DELETE", "/bkt", "replication", NONE, O::DeleteBucketReplication, C::BucketAdmin),
    ("GET", "/bkt", "object-lock", NONE, O::GetObjectLockConfiguration, C::BucketConfigRead),
    ("PUT", "/bkt", "object-lock", NONE, O::PutObjectLockConfiguration, C::BucketAdmin),
    ("GET", "/bkt", "publicAccessBlock", NONE, O::GetPublicAccessBlock, C::BucketConfigRead),
    ("PUT", "/bkt", "publicAccessBlock", NONE, O::PutPublicAccessBlock, C::BucketAdmin),
    ("DELETE", "/bkt", "publicAccessBlock", NONE, O::DeletePublicAccessBlock, C::BucketAdmin),
    ("GET", "/bkt", "ownershipControls", NONE, O::GetBucketOwnershipControls, C::BucketConfigRead),
    ("PUT", "/bkt", "ownershipControls", NONE, O::PutBucketOwnershipControls, C::BucketAdmin),
    ("DELETE", "/bkt", "ownershipControls", NONE, O::DeleteBucketOwnershipControls, C::BucketAdmin),
    ("GET", "/bkt", "accelerate", NONE, O::GetBucketAccelerateConfiguration, C::BucketConfigRead),
    ("PUT", "/bkt", "accelerate", NONE, O::PutBucketAccelerateConfiguration, C::BucketAdmin),
    ("GET", "/bkt", "requestPayment", NONE, O::GetBucketRequestPayment, C::BucketConfigRead),
    ("PUT", "/bkt", "requestPayment", NONE, O::PutBucketRequestPayment, C::BucketAdmin),
    ("GET", "/bkt", "analytics&id=a", NONE, O::GetBucketAnalyticsConfiguration, C::BucketConfigRead),
    ("PUT", "/bkt", "analytics&id=a", NONE, O::PutBucketAnalyticsConfiguration, C::BucketAdmin),
    ("DELETE", "/bkt", "analytics&id=a", NONE, O::DeleteBucketAnalyticsConfiguration, C::BucketAdmin),
    ("GET", "/bkt", "analytics", NONE, O::ListBucketAnalyticsConfigurations, C::BucketConfigRead),
    ("GET", "/bkt", "inventory&id=a", NONE, O::GetBucketInventoryConfiguration, C::BucketConfigRead),
    ("PUT", "/bkt", "inventory&id=a", NONE, O::PutBucketInventoryConfiguration, C::BucketAdmin),
    ("DELETE", "/bkt", "inventory&id=a", NONE, O::DeleteBucketInventoryConfiguration, C::BucketAdmin),
    ("GET", "/bkt", "inventory&continuation-token=t", NONE, O::ListBucketInventoryConfigurations, C::BucketConfigRead),
    ("GET", "/bkt", "metrics&id=a", NONE, O::GetBucketMetricsConfiguration, C::BucketConfigRead),
    ("PUT", "/bkt", "metrics&id=a", NONE, O::PutBucketMetricsConfiguration, C::BucketAdmin),
    ("DELETE", "/bkt", "metrics&id=a", NONE, O::DeleteBucketMetricsConfiguration, C::BucketAdmin),
    ("GET", "/bkt", "metrics", NONE, O::ListBucketMetricsConfigurations, C::BucketConfigRead),
    ("GET", "/bkt", "intelligent-tiering&id=a", NONE, O::GetBucketIntelligentTieringConfiguration, C::BucketConfigRead),
    ("PUT", "/bkt", "intelligent-tiering&id=a", NONE, O::PutBucketIntelligentTieringConfiguration, C::BucketAdmin),
    ("DELETE", "/bkt", "intelligent-tiering&id=a", NONE, O::DeleteBucketIntelligentTieringConfiguration, C::BucketAdmin),
    ("GET", "/bkt", "intelligent-tiering", NONE, O::ListBucketIntelligentTieringConfigurations, C::BucketConfigRead),
    // Unknown shapes: denied later.
    ("PUT", "/", "", NONE, O::Unknown, C::Unknown),
    ("DELETE", "/", "", NONE, O::Unknown, C::Unknown),
    ("GET", "/", "acl", NONE, O::Unknown, C::Unknown),
    ("PATCH", "/bkt/k", "", NONE, O::Unknown, C::Unknown),
    ("OPTIONS", "/bkt", "", NONE, O::Unknown, C::Unknown),
    ("GET", "/bkt", "events", NONE, O::Unknown, C::Unknown),
    ("PUT", "/bkt", "replication-reset", NONE, O::Unknown, C::Unknown),
    ("GET", "/bkt", "acl&policy", NONE, O::Unknown, C::Unknown),
    ("GET", "/bkt", "list-type=1", NONE, O::Unknown, C::Unknown),
    ("GET", "/bkt", "list-type=2&list-type=2", NONE, O::Unknown, C::Unknown),
    ("GET", "/bkt", "uploadId=u", NONE, O::Unknown, C::Unknown),
    ("GET", "/bkt", "%zz", NONE, O::Unknown, C::Unknown),
    ("POST", "/bkt", "", NONE, O::Unknown, C::Unknown),
    ("POST", "/bkt/k", "", FORM, O::Unknown, C::Unknown),
    ("POST", "/bkt", "uploads", NONE, O::Unknown, C::Unknown),
    ("PUT", "/bkt", "location", NONE, O::Unknown, C::Unknown),
    ("DELETE", "/bkt", "versioning", NONE, O::Unknown, C::Unknown),
    ("PUT", "/bkt/k", "partNumber=1", NONE, O::Unknown, C::Unknown),
    ("PUT", "/bkt/k", "uploadId=u", NONE, O::Unknown, C::Unknown),
    ("PUT", "/bkt/k", "tagging", COPY, O::Unknown, C::Unknown),
    ("GET", "/bkt/k", "tagging&uploadId=u", NONE, O::Unknown, C::Unknown),
    ("HEAD", "/bkt/k", "uploadId=u", NONE, O::Unknown, C::Unknown),
    ("GET", "/bkt/k", "uploads", NONE, O::Unknown, C::Unknown),
    ("POST", "/bkt/k", "uploads&uploadId=u", NONE, O::Unknown, C::Unknown),
    ("GET", "/bkt/k", "location", NONE, O::Unknown, C::Unknown),
];

fn route_of(path: &str) -> Route {
    crate::policy::route::route(None, path, &[]).unwrap()
}

fn headers_of(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.insert(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    h
}

#[test]
fn every_operation_is_classified_with_its_access_class() {
    for (method, path, query, headers, op, class) in TABLE {
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let query = (!query.is_empty()).then_some(*query);
        let got = classify(&method, &route_of(path), query, &headers_of(headers));
        assert_eq!(got, *op, "{method} {path}?{query:?} {headers:?}");
        assert_eq!(got.access_class(), *class, "{}", got.name());
    }
    let covered: HashSet<O> = TABLE.iter().map(|row| row.4).collect();
    for op in O::ALL {
        assert!(
            covered.contains(op),
            "{} has no row in the table",
            op.name()
        );
    }
}

#[test]
fn operation_names_are_unique_aws_names() {
    let names: HashSet<&str> = O::ALL.iter().map(|o| o.name()).collect();
    assert_eq!(names.len(), O::ALL.len());
    assert_eq!(O::CopyObject.name(), "CopyObject");
    assert_eq!(O::ListObjectsV2.name(), "ListObjectsV2");
}

#[test]
fn virtual_host_routes_classify_like_path_style() {
    let r = Route {
        bucket: Some("bkt".into()),
        key: Some("k".into()),
        style: AddressingStyle::VirtualHost,
    };
    assert_eq!(
        classify(&Method::GET, &r, None, &HeaderMap::new()),
        O::GetObject
    );
    let r = Route {
        bucket: Some("bkt".into()),
        key: None,
        style: AddressingStyle::VirtualHost,
    };
    assert_eq!(
        classify(&Method::GET, &r, Some("list-type=2"), &HeaderMap::new()),
        O::ListObjectsV2
    );
}

#[test]
fn presigned_query_parameters_do_not_change_the_operation() {
    let q = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=a&X-Amz-Date=d&X-Amz-Expires=60&X-Amz-SignedHeaders=host&X-Amz-Signature=s";
    assert_eq!(
        classify(
            &Method::GET,
            &route_of("/bkt/k"),
            Some(q),
            &HeaderMap::new()
        ),
        O::GetObject
    );
    assert_eq!(
        classify(
            &Method::PUT,
            &route_of("/bkt/k"),
            Some(q),
            &HeaderMap::new()
        ),
        O::PutObject
    );
}

#[test]
fn targets_follow_where_the_request_names_its_keys() {
    assert_eq!(O::ListBuckets.target(), Target::Service);
    assert_eq!(O::ListObjectsV2.target(), Target::Listing);
    assert_eq!(O::ListMultipartUploads.target(), Target::Listing);
    assert_eq!(O::ListParts.target(), Target::Object);
    assert_eq!(O::PutObjectAcl.target(), Target::Object);
    assert_eq!(O::DeleteObjects.target(), Target::BodyKeys);
    assert_eq!(O::PostObject.target(), Target::BodyKeys);
    assert_eq!(O::HeadBucket.target(), Target::Bucket);
    assert_eq!(O::PutBucketPolicy.target(), Target::Bucket);
    assert!(O::UploadPartCopy.reads_copy_source() && !O::UploadPart.reads_copy_source());
}
