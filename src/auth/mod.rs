//! Inbound authentication: SigV4 header and presigned-query verification, and the
//! streaming body verifiers (signed payload hash, aws-chunked signatures, trailer
//! checksums). Spec: <https://docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-authenticating-requests.html>
//!
//! [`authenticate`] is the single classifier: it decides the auth location and the
//! payload mode exactly once and returns a [`VerifiedRequest`], the only thing the
//! later pipeline steps accept.

pub mod body;
pub mod checksum;
pub mod chunked;
pub mod keycache;
pub mod parse;
pub mod post_policy;
pub mod sigv4;
pub mod verify;

use std::sync::Arc;
use std::time::Duration;

use crate::credentials::Credential;
use crate::secret::SigningKey;

// (re-exports added by the auth implementation)
pub use keycache::SigningKeyCache;
pub use verify::authenticate;

/// Limits and windows that apply to authentication.
#[derive(Debug, Clone)]
pub struct AuthOptions {
    /// Allowed clock skew for header auth (and the future bound of presigned dates).
    pub max_skew: Duration,
    /// Largest `X-Amz-Expires` accepted (S3: 7 days).
    pub max_presign_expiry: Duration,
}

impl Default for AuthOptions {
    fn default() -> Self {
        Self {
            max_skew: Duration::from_secs(15 * 60),
            max_presign_expiry: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

/// Where the signature was carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthLocation {
    Header,
    Query,
    /// A browser form's POST policy (`POST /bucket`, `multipart/form-data`).
    Form,
    /// No credential: an anonymous binding admitted the request.
    Anonymous,
}

impl AuthLocation {
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Self::Header => "header",
            Self::Query => "query",
            Self::Form => "form",
            Self::Anonymous => "anonymous",
        }
    }
}

/// The flexible-checksum algorithms S3 defines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChecksumAlgorithm {
    Crc32,
    Crc32c,
    Crc64Nvme,
    Sha1,
    Sha256,
}

impl ChecksumAlgorithm {
    /// The header/trailer name, e.g. `x-amz-checksum-crc32`.
    #[must_use]
    pub fn header_name(self) -> &'static str {
        match self {
            Self::Crc32 => "x-amz-checksum-crc32",
            Self::Crc32c => "x-amz-checksum-crc32c",
            Self::Crc64Nvme => "x-amz-checksum-crc64nvme",
            Self::Sha1 => "x-amz-checksum-sha1",
            Self::Sha256 => "x-amz-checksum-sha256",
        }
    }

    /// Parse a header/trailer name (case-insensitive).
    #[must_use]
    pub fn from_header_name(name: &str) -> Option<Self> {
        [
            Self::Crc32,
            Self::Crc32c,
            Self::Crc64Nvme,
            Self::Sha1,
            Self::Sha256,
        ]
        .into_iter()
        .find(|a| a.header_name().eq_ignore_ascii_case(name))
    }
}

/// How the body is protected, from `x-amz-content-sha256` (and `Content-Encoding`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PayloadMode {
    /// `UNSIGNED-PAYLOAD` (and presigned requests that pin nothing).
    Unsigned,
    /// A hex SHA-256 of the whole body, verified while streaming.
    Sha256([u8; 32]),
    /// aws-chunked framing: `STREAMING-AWS4-HMAC-SHA256-PAYLOAD[-TRAILER]` (signed) or
    /// `STREAMING-UNSIGNED-PAYLOAD-TRAILER` (unsigned).
    Streaming {
        signed: bool,
        trailer: Option<ChecksumAlgorithm>,
        decoded_length: u64,
    },
}

impl PayloadMode {
    /// The exact number of body bytes the upstream will receive, when known up front.
    #[must_use]
    pub fn decoded_length(&self) -> Option<u64> {
        match self {
            Self::Streaming { decoded_length, .. } => Some(*decoded_length),
            _ => None,
        }
    }

    #[must_use]
    pub fn label(&self) -> &'static str {
        match self {
            Self::Unsigned => "unsigned",
            Self::Sha256(_) => "sha256",
            Self::Streaming {
                signed: true,
                trailer: None,
                ..
            } => "streaming-signed",
            Self::Streaming {
                signed: true,
                trailer: Some(_),
                ..
            } => "streaming-signed-trailer",
            Self::Streaming { signed: false, .. } => "streaming-unsigned-trailer",
        }
    }
}

/// What chunk and trailer signatures chain from: the seed signature and the key and
/// scope that produced it.
#[derive(Debug, Clone)]
pub struct ChunkSigningContext {
    pub signing_key: SigningKey,
    /// `x-amz-date` of the request (`YYYYMMDDTHHMMSSZ`).
    pub amz_date: String,
    /// `date/region/service/aws4_request`.
    pub scope: String,
    /// The request's own signature: the first chunk's "previous signature".
    pub seed_signature: String,
}

/// A request whose signature has been verified. Only [`authenticate`] makes one.
// `#[non_exhaustive]` would not stop code inside this crate from building the struct;
// the private `_sealed` field (with the `pub(crate)` constructor) does.
#[allow(clippy::manual_non_exhaustive)]
#[derive(Debug, Clone)]
pub struct VerifiedRequest {
    pub credential: Arc<Credential>,
    pub location: AuthLocation,
    pub payload: PayloadMode,
    /// Present for signed streaming modes.
    pub chunk_context: Option<ChunkSigningContext>,
    /// The region the tenant signed for.
    pub region: String,
    _sealed: (),
}

impl VerifiedRequest {
    /// An unsigned request admitted by an anonymous binding: a read-only credential
    /// on that one bucket, with no access key.
    pub(crate) fn anonymous(binding: &crate::credentials::anonymous::AnonymousBinding) -> Self {
        let credential = Credential {
            access_key_id: String::new(),
            secret: crate::secret::SecretKey::new(String::new()),
            backend: binding.backend.clone(),
            scopes: vec![crate::credentials::Scope {
                bucket: binding.bucket.clone(),
                access: crate::credentials::Access::ReadOnly,
                prefix: None,
            }],
            expires_at: None,
            enabled: true,
            source: binding.source.clone(),
            description: String::new(),
        };
        Self::new(
            Arc::new(credential),
            AuthLocation::Anonymous,
            PayloadMode::Unsigned,
            None,
            String::new(),
        )
    }

    /// Only the verifier constructs this type.
    pub(crate) fn new(
        credential: Arc<Credential>,
        location: AuthLocation,
        payload: PayloadMode,
        chunk_context: Option<ChunkSigningContext>,
        region: String,
    ) -> Self {
        Self {
            credential,
            location,
            payload,
            chunk_context,
            region,
            _sealed: (),
        }
    }
}
