//! [`AuthError`]: why a request failed authentication, its bounded metric label and
//! its one mapping to the client-facing [`S3Error`].

use std::borrow::Cow;

use crate::auth::AuthLocation;
use crate::error::S3Error;

/// Why a request failed authentication. Display texts are ours and never contain
/// client input, secrets or signatures.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no authentication supplied")]
    Missing,
    #[error("both an Authorization header and presigned query parameters")]
    Ambiguous,
    #[error("malformed Authorization header: {0}")]
    MalformedHeader(&'static str),
    #[error("malformed presigned query: {0}")]
    MalformedQuery(&'static str),
    #[error("invalid request: {0}")]
    InvalidRequest(&'static str),
    #[error("invalid argument: {0}")]
    InvalidArgument(&'static str),
    #[error("missing or invalid request date")]
    MissingDate,
    #[error("credential scope date differs from the request date")]
    ScopeDate(AuthLocation),
    #[error("X-Amz-Expires outside 1..={max_secs} seconds")]
    ExpiresOutOfRange { max_secs: u64 },
    #[error("request time outside the allowed skew")]
    Skewed,
    #[error("presigned request expired")]
    Expired,
    #[error("unknown access key")]
    UnknownKey,
    #[error("credential disabled")]
    Disabled,
    #[error("credential expired")]
    CredentialExpired,
    #[error("signature does not match")]
    BadSignature,
    #[error("request carries headers that are not signed")]
    UnsignedHeader,
    #[error("SigV4A is not supported")]
    SigV4A,
    #[error("SigV2 is not supported")]
    SigV2,
    #[error("not implemented: {0}")]
    Unsupported(&'static str),
}

impl AuthError {
    /// A bounded label for the `reason` metric label.
    #[must_use]
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Ambiguous
            | Self::MalformedHeader(_)
            | Self::MalformedQuery(_)
            | Self::InvalidRequest(_)
            | Self::InvalidArgument(_)
            | Self::MissingDate
            | Self::ExpiresOutOfRange { .. } => "malformed",
            Self::ScopeDate(_) => "scope_date",
            Self::Skewed => "skewed",
            Self::Expired => "expired",
            Self::UnknownKey => "unknown_key",
            Self::Disabled => "disabled",
            Self::CredentialExpired => "credential_expired",
            Self::BadSignature => "bad_signature",
            Self::UnsignedHeader => "unsigned_header",
            Self::SigV4A | Self::SigV2 | Self::Unsupported(_) => "unsupported",
        }
    }

    pub(crate) fn malformed(location: AuthLocation, msg: &'static str) -> Self {
        match location {
            AuthLocation::Header => Self::MalformedHeader(msg),
            AuthLocation::Query => Self::MalformedQuery(msg),
            AuthLocation::Form | AuthLocation::Anonymous => Self::InvalidArgument(msg),
        }
    }
}

impl From<AuthError> for S3Error {
    fn from(e: AuthError) -> Self {
        const SCOPE_DATE: &str = "Invalid credential date. Date is not the same as X-Amz-Date.";
        match e {
            AuthError::Missing => Self::MissingAuthenticationToken,
            AuthError::Ambiguous => Self::InvalidArgument(Cow::Borrowed(
                "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter or the Authorization header should be specified",
            )),
            AuthError::MalformedHeader(m) => Self::AuthorizationHeaderMalformed(Cow::Borrowed(m)),
            AuthError::MalformedQuery(m) => {
                Self::AuthorizationQueryParametersError(Cow::Borrowed(m))
            }
            AuthError::InvalidRequest(m) => Self::InvalidRequest(Cow::Borrowed(m)),
            AuthError::InvalidArgument(m) => Self::InvalidArgument(Cow::Borrowed(m)),
            AuthError::MissingDate => Self::AccessDenied(Cow::Borrowed(
                "AWS authentication requires a valid Date or x-amz-date header",
            )),
            AuthError::ScopeDate(AuthLocation::Header) => {
                Self::AuthorizationHeaderMalformed(Cow::Borrowed(SCOPE_DATE))
            }
            AuthError::ScopeDate(AuthLocation::Form | AuthLocation::Anonymous) => {
                Self::InvalidArgument(Cow::Borrowed(
                    "Invalid credential date. Date is not the same as x-amz-date.",
                ))
            }
            AuthError::ScopeDate(AuthLocation::Query) => {
                Self::AuthorizationQueryParametersError(Cow::Borrowed(SCOPE_DATE))
            }
            AuthError::ExpiresOutOfRange { max_secs } => {
                Self::AuthorizationQueryParametersError(Cow::Owned(format!(
                    "X-Amz-Expires must be between 1 and {max_secs} seconds"
                )))
            }
            AuthError::Skewed => Self::RequestTimeTooSkewed,
            AuthError::Expired => Self::ExpiredRequest,
            // A disabled or expired key answers like an unknown one, as AWS does for
            // inactive keys: the client learns nothing about which keys exist.
            AuthError::UnknownKey | AuthError::Disabled | AuthError::CredentialExpired => {
                Self::InvalidAccessKeyId
            }
            AuthError::BadSignature => Self::SignatureDoesNotMatch,
            AuthError::UnsignedHeader => Self::AccessDenied(Cow::Borrowed(
                "There were headers present in the request which were not signed",
            )),
            AuthError::SigV4A => Self::NotImplemented(Cow::Borrowed(
                "SigV4A (AWS4-ECDSA-P256-SHA256) is not supported; sign with SigV4",
            )),
            AuthError::SigV2 => Self::AccessDenied(Cow::Borrowed(
                "Signature Version 2 is not supported; sign with SigV4",
            )),
            AuthError::Unsupported(m) => Self::NotImplemented(Cow::Borrowed(m)),
        }
    }
}
