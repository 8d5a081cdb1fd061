//! Every S3 operation named once, with its access class and the resource it acts on,
//! and the classifier that names a request's operation from its method, route,
//! sub-resource query keys and a few headers.
//!
//! Classification is deny-by-default: a query key that is neither a known
//! sub-resource nor an ordinary parameter (list and object parameters, `x-id`,
//! `response-*`, presign `X-Amz-*`), two sub-resources at once, or a method/shape S3
//! does not define yields [`S3Operation::Unknown`], which authorization always refuses.
//! This keeps backend-specific extensions (e.g. MinIO's `?events`,
//! `?replication-reset`) from being reached with the admin key under an innocent label.

macro_rules! s3_operations {
    ($($variant:ident),+ $(,)?) => {
        /// An S3 operation (the name AWS documents for it).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum S3Operation {
            $($variant),+
        }

        impl S3Operation {
            /// Every operation, in declaration order.
            pub const ALL: &'static [S3Operation] = &[$(S3Operation::$variant),+];

            /// The AWS operation name; a bounded label for metrics and audit.
            #[must_use]
            pub fn name(self) -> &'static str {
                match self {
                    $(S3Operation::$variant => stringify!($variant)),+
                }
            }
        }
    };
}

s3_operations! {
    ListBuckets,
    // Bucket level.
    CreateBucket, DeleteBucket, HeadBucket, GetBucketLocation,
    ListObjects, ListObjectsV2, ListObjectVersions, ListMultipartUploads,
    DeleteObjects, PostObject,
    // Object level.
    GetObject, HeadObject, PutObject, CopyObject, DeleteObject,
    CreateMultipartUpload, UploadPart, UploadPartCopy, CompleteMultipartUpload,
    AbortMultipartUpload, ListParts, GetObjectAttributes,
    GetObjectTagging, PutObjectTagging, DeleteObjectTagging,
    GetObjectAcl, PutObjectAcl, GetObjectRetention, PutObjectRetention,
    GetObjectLegalHold, PutObjectLegalHold, RestoreObject, SelectObjectContent,
    GetObjectTorrent,
    // Bucket configuration.
    GetBucketAcl, PutBucketAcl,
    GetBucketPolicy, PutBucketPolicy, DeleteBucketPolicy, GetBucketPolicyStatus,
    GetBucketCors, PutBucketCors, DeleteBucketCors,
    GetBucketLifecycleConfiguration, PutBucketLifecycleConfiguration, DeleteBucketLifecycle,
    GetBucketVersioning, PutBucketVersioning,
    GetBucketEncryption, PutBucketEncryption, DeleteBucketEncryption,
    GetBucketTagging, PutBucketTagging, DeleteBucketTagging,
    GetBucketWebsite, PutBucketWebsite, DeleteBucketWebsite,
    GetBucketLogging, PutBucketLogging,
    GetBucketNotificationConfiguration, PutBucketNotificationConfiguration,
    GetBucketReplication, PutBucketReplication, DeleteBucketReplication,
    GetObjectLockConfiguration, PutObjectLockConfiguration,
    GetPublicAccessBlock, PutPublicAccessBlock, DeletePublicAccessBlock,
    GetBucketOwnershipControls, PutBucketOwnershipControls, DeleteBucketOwnershipControls,
    GetBucketAccelerateConfiguration, PutBucketAccelerateConfiguration,
    GetBucketRequestPayment, PutBucketRequestPayment,
    GetBucketAnalyticsConfiguration, PutBucketAnalyticsConfiguration,
    DeleteBucketAnalyticsConfiguration, ListBucketAnalyticsConfigurations,
    GetBucketInventoryConfiguration, PutBucketInventoryConfiguration,
    DeleteBucketInventoryConfiguration, ListBucketInventoryConfigurations,
    GetBucketMetricsConfiguration, PutBucketMetricsConfiguration,
    DeleteBucketMetricsConfiguration, ListBucketMetricsConfigurations,
    GetBucketIntelligentTieringConfiguration, PutBucketIntelligentTieringConfiguration,
    DeleteBucketIntelligentTieringConfiguration, ListBucketIntelligentTieringConfigurations,
    // Anything else: always denied.
    Unknown,
}

/// What kind of permission an operation needs. Scope access levels grant classes:
/// read-only → `Read`, `List`, `BucketRead`; read-write adds `Write`; admin adds
/// `BucketConfigRead` and `BucketAdmin`. `Service` is ListBuckets (synthesized, any
/// credential); `Unknown` is granted by nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AccessClass {
    /// Object reads (data, metadata, tags, retention).
    Read,
    /// Object writes and deletes, multipart uploads, restores.
    Write,
    /// Listings of keys, versions and multipart uploads.
    List,
    /// Bucket existence, location and versioning state: SDKs and CLIs ask for these
    /// before ordinary reads, so every access level has them.
    BucketRead,
    /// Other bucket configuration reads (policy, ACLs, replication, notification…):
    /// they reveal principals and infrastructure beyond the tenant's data.
    BucketConfigRead,
    /// CreateBucket, DeleteBucket, configuration puts and deletes, object ACL puts
    /// (ACLs and policies grant access outside the proxy, under the admin identity).
    BucketAdmin,
    /// Service-level: ListBuckets.
    Service,
    /// Unrecognized requests.
    Unknown,
}

/// Which part of the request names what the operation touches: this decides how a
/// scope's key prefix is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Target {
    /// No bucket.
    Service,
    /// The whole bucket.
    Bucket,
    /// Keys under the `prefix` query parameter.
    Listing,
    /// The key in the URL.
    Object,
    /// Keys carried in the body (DeleteObjects XML, the POST form's `key`).
    BodyKeys,
}

impl S3Operation {
    /// The permission this operation needs.
    #[must_use]
    pub fn access_class(self) -> AccessClass {
        use S3Operation as O;
        match self {
            O::ListBuckets => AccessClass::Service,
            O::GetObject
            | O::HeadObject
            | O::GetObjectAttributes
            | O::GetObjectTagging
            | O::GetObjectRetention
            | O::GetObjectLegalHold
            | O::SelectObjectContent
            | O::GetObjectTorrent
            | O::ListParts => AccessClass::Read,
            O::ListObjects | O::ListObjectsV2 | O::ListObjectVersions | O::ListMultipartUploads => {
                AccessClass::List
            }
            O::HeadBucket | O::GetBucketLocation | O::GetBucketVersioning => {
                AccessClass::BucketRead
            }
            O::PutObject
            | O::CopyObject
            | O::DeleteObject
            | O::DeleteObjects
            | O::PostObject
            | O::CreateMultipartUpload
            | O::UploadPart
            | O::UploadPartCopy
            | O::CompleteMultipartUpload
            | O::AbortMultipartUpload
            | O::PutObjectTagging
            | O::DeleteObjectTagging
            | O::PutObjectRetention
            | O::PutObjectLegalHold
            | O::RestoreObject => AccessClass::Write,
            O::Unknown => AccessClass::Unknown,
            O::GetObjectAcl
            | O::GetBucketAcl
            | O::GetBucketPolicy
            | O::GetBucketPolicyStatus
            | O::GetBucketCors
            | O::GetBucketLifecycleConfiguration
            | O::GetBucketEncryption
            | O::GetBucketTagging
            | O::GetBucketWebsite
            | O::GetBucketLogging
            | O::GetBucketNotificationConfiguration
            | O::GetBucketReplication
            | O::GetObjectLockConfiguration
            | O::GetPublicAccessBlock
            | O::GetBucketOwnershipControls
            | O::GetBucketAccelerateConfiguration
            | O::GetBucketRequestPayment
            | O::GetBucketAnalyticsConfiguration
            | O::ListBucketAnalyticsConfigurations
            | O::GetBucketInventoryConfiguration
            | O::ListBucketInventoryConfigurations
            | O::GetBucketMetricsConfiguration
            | O::ListBucketMetricsConfigurations
            | O::GetBucketIntelligentTieringConfiguration
            | O::ListBucketIntelligentTieringConfigurations => AccessClass::BucketConfigRead,
            O::CreateBucket
            | O::DeleteBucket
            | O::PutObjectAcl
            | O::PutBucketAcl
            | O::PutBucketPolicy
            | O::DeleteBucketPolicy
            | O::PutBucketCors
            | O::DeleteBucketCors
            | O::PutBucketLifecycleConfiguration
            | O::DeleteBucketLifecycle
            | O::PutBucketVersioning
            | O::PutBucketEncryption
            | O::DeleteBucketEncryption
            | O::PutBucketTagging
            | O::DeleteBucketTagging
            | O::PutBucketWebsite
            | O::DeleteBucketWebsite
            | O::PutBucketLogging
            | O::PutBucketNotificationConfiguration
            | O::PutBucketReplication
            | O::DeleteBucketReplication
            | O::PutObjectLockConfiguration
            | O::PutPublicAccessBlock
            | O::DeletePublicAccessBlock
            | O::PutBucketOwnershipControls
            | O::DeleteBucketOwnershipControls
            | O::PutBucketAccelerateConfiguration
            | O::PutBucketRequestPayment
            | O::PutBucketAnalyticsConfiguration
            | O::DeleteBucketAnalyticsConfiguration
            | O::PutBucketInventoryConfiguration
            | O::DeleteBucketInventoryConfiguration
            | O::PutBucketMetricsConfiguration
            | O::DeleteBucketMetricsConfiguration
            | O::PutBucketIntelligentTieringConfiguration
            | O::DeleteBucketIntelligentTieringConfiguration => AccessClass::BucketAdmin,
        }
    }

    /// What the operation touches (see [`Target`]).
    #[must_use]
    pub fn target(self) -> Target {
        use S3Operation as O;
        match self.access_class() {
            AccessClass::Service => Target::Service,
            AccessClass::List => Target::Listing,
            _ if matches!(self, O::DeleteObjects | O::PostObject) => Target::BodyKeys,
            AccessClass::Read | AccessClass::Write => Target::Object,
            _ if matches!(self, O::GetObjectAcl | O::PutObjectAcl) => Target::Object,
            _ => Target::Bucket,
        }
    }

    /// CopyObject and UploadPartCopy also read `x-amz-copy-source`.
    #[must_use]
    pub fn reads_copy_source(self) -> bool {
        matches!(self, Self::CopyObject | Self::UploadPartCopy)
    }
}

pub use super::classify::classify;

#[cfg(test)]
#[path = "operation_tests.rs"]
mod tests;
