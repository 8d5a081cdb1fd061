//! The one boundary error: every failure a client can see is an `S3Error`, rendered
//! as S3 XML in exactly one place ([`S3Error::to_xml`]). Messages are written by us;
//! internal text (IO errors, upstream hostnames, key ids) never reaches a variant.

use std::borrow::Cow;

use http::StatusCode;

/// A client-facing S3 error. The message is always text we wrote.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum S3Error {
    #[error("Access Denied")]
    AccessDenied(Cow<'static, str>),
    #[error("missing authentication")]
    MissingAuthenticationToken,
    #[error("unknown access key")]
    InvalidAccessKeyId,
    #[error("signature mismatch")]
    SignatureDoesNotMatch,
    #[error("request time too skewed")]
    RequestTimeTooSkewed,
    #[error("expired request")]
    ExpiredRequest,
    #[error("malformed authorization header")]
    AuthorizationHeaderMalformed(Cow<'static, str>),
    #[error("malformed presigned query")]
    AuthorizationQueryParametersError(Cow<'static, str>),
    #[error("content sha256 mismatch")]
    XAmzContentSha256Mismatch,
    #[error("bad digest")]
    BadDigest(Cow<'static, str>),
    #[error("incomplete body")]
    IncompleteBody,
    #[error("invalid request")]
    InvalidRequest(Cow<'static, str>),
    #[error("invalid argument")]
    InvalidArgument(Cow<'static, str>),
    #[error("invalid bucket name")]
    InvalidBucketName,
    #[error("missing content length")]
    MissingContentLength,
    #[error("entity too large")]
    EntityTooLarge(Cow<'static, str>),
    #[error("entity too small")]
    EntityTooSmall,
    /// A CORS preflight no rule of the bucket allows.
    #[error("CORS request not allowed")]
    CorsForbidden,
    /// The client did not send the request (a form's fields) in time.
    #[error("request timeout")]
    RequestTimeout,
    /// A browser form upload whose body is not well-formed `multipart/form-data`.
    #[error("malformed POST request")]
    MalformedPostRequest(Cow<'static, str>),
    #[error("not implemented")]
    NotImplemented(Cow<'static, str>),
    #[error("method not allowed")]
    MethodNotAllowed,
    /// The request head is over `max_header_bytes` or `max_headers`: HTTP 431.
    #[error("request header too large")]
    RequestHeaderSectionTooLarge,
    /// The request target is over `max_url_bytes`: HTTP 414, code `InvalidURI`.
    #[error("request URI too long")]
    UriTooLong,
    /// A DeleteObjects or CompleteMultipartUpload body over its configured cap.
    #[error("request body too large")]
    MaxMessageLengthExceeded,
    #[error("slow down")]
    SlowDown,
    /// A rate limit refused the request; rendered as `SlowDown` with this
    /// `Retry-After` (whole seconds, at least 1).
    #[error("rate limited")]
    RateLimited { retry_after_secs: u64 },
    /// A write would take the bucket past its hard byte cap or object cap. HTTP 507,
    /// which SDKs do not retry; the message never names numbers or limits.
    #[error("quota exceeded")]
    QuotaExceeded,
    #[error("service unavailable")]
    ServiceUnavailable,
    #[error("gateway timeout")]
    GatewayTimeout,
    #[error("internal error")]
    InternalError,
}

impl S3Error {
    /// The S3 error code.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::AccessDenied(_) => "AccessDenied",
            Self::MissingAuthenticationToken => "MissingAuthenticationToken",
            Self::InvalidAccessKeyId => "InvalidAccessKeyId",
            Self::SignatureDoesNotMatch => "SignatureDoesNotMatch",
            Self::RequestTimeTooSkewed => "RequestTimeTooSkewed",
            Self::ExpiredRequest => "AccessDenied",
            Self::AuthorizationHeaderMalformed(_) => "AuthorizationHeaderMalformed",
            Self::AuthorizationQueryParametersError(_) => "AuthorizationQueryParametersError",
            Self::XAmzContentSha256Mismatch => "XAmzContentSHA256Mismatch",
            Self::BadDigest(_) => "BadDigest",
            Self::IncompleteBody => "IncompleteBody",
            Self::InvalidRequest(_) => "InvalidRequest",
            Self::InvalidArgument(_) => "InvalidArgument",
            Self::InvalidBucketName => "InvalidBucketName",
            Self::MissingContentLength => "MissingContentLength",
            Self::EntityTooLarge(_) => "EntityTooLarge",
            Self::EntityTooSmall => "EntityTooSmall",
            Self::RequestTimeout => "RequestTimeout",
            Self::CorsForbidden => "AccessForbidden",
            Self::MalformedPostRequest(_) => "MalformedPOSTRequest",
            Self::NotImplemented(_) => "NotImplemented",
            Self::MethodNotAllowed => "MethodNotAllowed",
            Self::RequestHeaderSectionTooLarge => "RequestHeaderSectionTooLarge",
            Self::UriTooLong => "InvalidURI",
            Self::MaxMessageLengthExceeded => "MaxMessageLengthExceeded",
            Self::SlowDown | Self::RateLimited { .. } => "SlowDown",
            Self::QuotaExceeded => "QuotaExceeded",
            Self::ServiceUnavailable => "ServiceUnavailable",
            Self::GatewayTimeout => "GatewayTimeout",
            Self::InternalError => "InternalError",
        }
    }

    /// The HTTP status.
    #[must_use]
    pub fn status(&self) -> StatusCode {
        match self {
            Self::AccessDenied(_)
            | Self::MissingAuthenticationToken
            | Self::InvalidAccessKeyId
            | Self::SignatureDoesNotMatch
            | Self::RequestTimeTooSkewed
            | Self::ExpiredRequest
            | Self::CorsForbidden => StatusCode::FORBIDDEN,
            Self::AuthorizationHeaderMalformed(_)
            | Self::AuthorizationQueryParametersError(_)
            | Self::XAmzContentSha256Mismatch
            | Self::BadDigest(_)
            | Self::IncompleteBody
            | Self::InvalidRequest(_)
            | Self::InvalidArgument(_)
            | Self::InvalidBucketName
            | Self::EntityTooLarge(_)
            | Self::EntityTooSmall
            | Self::RequestTimeout
            | Self::MalformedPostRequest(_)
            | Self::MaxMessageLengthExceeded => StatusCode::BAD_REQUEST,
            Self::RequestHeaderSectionTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Self::UriTooLong => StatusCode::URI_TOO_LONG,
            Self::MissingContentLength => StatusCode::LENGTH_REQUIRED,
            Self::NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::SlowDown | Self::RateLimited { .. } | Self::ServiceUnavailable => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::GatewayTimeout => StatusCode::GATEWAY_TIMEOUT,
            Self::QuotaExceeded => StatusCode::INSUFFICIENT_STORAGE,
            Self::InternalError => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The human-readable message: fixed text, or a detail we composed ourselves.
    #[must_use]
    pub fn message(&self) -> Cow<'static, str> {
        let fixed: &'static str = match self {
            Self::AccessDenied(m)
            | Self::AuthorizationHeaderMalformed(m)
            | Self::AuthorizationQueryParametersError(m)
            | Self::BadDigest(m)
            | Self::InvalidRequest(m)
            | Self::InvalidArgument(m)
            | Self::EntityTooLarge(m)
            | Self::MalformedPostRequest(m)
            | Self::NotImplemented(m) => return m.clone(),
            Self::CorsForbidden => {
                "CORSResponse: This CORS request is not allowed. The Origin, the requested method or a requested header is not allowed by the bucket's CORS rules."
            }
            Self::RequestTimeout => {
                "Your socket connection to the server was not read from or written to within the timeout period."
            }
            Self::EntityTooSmall => {
                "Your proposed upload is smaller than the minimum allowed object size."
            }
            Self::MissingAuthenticationToken => "Request is missing authentication",
            Self::InvalidAccessKeyId => {
                "The AWS Access Key Id you provided does not exist in our records."
            }
            Self::SignatureDoesNotMatch => {
                "The request signature we calculated does not match the signature you provided. Check your key and signing method."
            }
            Self::RequestTimeTooSkewed => {
                "The difference between the request time and the server's time is too large."
            }
            Self::ExpiredRequest => "Request has expired",
            Self::XAmzContentSha256Mismatch => {
                "The provided 'x-amz-content-sha256' header does not match what was computed."
            }
            Self::IncompleteBody => {
                "You did not provide the number of bytes specified by the Content-Length HTTP header."
            }
            Self::InvalidBucketName => "The specified bucket is not valid.",
            Self::MissingContentLength => "You must provide the Content-Length HTTP header.",
            Self::MethodNotAllowed => "The specified method is not allowed against this resource.",
            Self::RequestHeaderSectionTooLarge => {
                "Your request header section exceeds the maximum allowed size."
            }
            Self::UriTooLong => "The request URI is too long.",
            Self::MaxMessageLengthExceeded => "Your request was too big.",
            Self::SlowDown | Self::RateLimited { .. } => "Please reduce your request rate.",
            Self::QuotaExceeded => "The bucket's storage quota is exceeded.",
            Self::ServiceUnavailable => {
                "The upstream storage service is unavailable. Please retry."
            }
            Self::GatewayTimeout => {
                "The upstream storage service did not answer in time. Please retry."
            }
            Self::InternalError => "We encountered an internal error. Please try again.",
        };
        Cow::Borrowed(fixed)
    }

    /// The `Retry-After` seconds a response to this error carries, if any: the
    /// limiter's wait for a rate-limit refusal, 1 for other transient refusals.
    #[must_use]
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            Self::RateLimited { retry_after_secs } => Some((*retry_after_secs).max(1)),
            Self::SlowDown | Self::ServiceUnavailable | Self::GatewayTimeout => Some(1),
            _ => None,
        }
    }

    /// Render the S3 error document.
    #[must_use]
    pub fn to_xml(&self, resource: &str, request_id: &str) -> String {
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{}</Code><Message>{}</Message><Resource>{}</Resource><RequestId>{}</RequestId></Error>",
            self.code(),
            xml_escape(&self.message()),
            xml_escape(resource),
            xml_escape(request_id),
        )
    }
}

/// Escape text for inclusion in XML element content.
#[must_use]
pub fn xml_escape(s: &str) -> Cow<'_, str> {
    if !s.contains(['&', '<', '>', '"', '\'']) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_xml_has_code_message_resource_and_request_id() {
        let xml = S3Error::SignatureDoesNotMatch.to_xml("/b/k<1>", "req-1");
        assert!(xml.starts_with("<?xml"));
        assert!(xml.contains("<Code>SignatureDoesNotMatch</Code>"));
        assert!(xml.contains("<Resource>/b/k&lt;1&gt;</Resource>"));
        assert!(xml.contains("<RequestId>req-1</RequestId>"));
        assert_eq!(
            S3Error::SignatureDoesNotMatch.status(),
            StatusCode::FORBIDDEN
        );
    }

    #[test]
    fn upstream_failures_map_to_retryable_statuses() {
        assert_eq!(S3Error::ServiceUnavailable.status(), 503);
        assert_eq!(S3Error::GatewayTimeout.status(), 504);
        assert_eq!(S3Error::SlowDown.code(), "SlowDown");
    }

    #[test]
    fn quota_exceeded_is_507_with_its_own_code_and_no_numbers() {
        let e = S3Error::QuotaExceeded;
        assert_eq!(e.status(), StatusCode::INSUFFICIENT_STORAGE);
        assert_eq!(e.code(), "QuotaExceeded");
        assert_eq!(e.retry_after_secs(), None);
        assert!(!e.message().chars().any(|c| c.is_ascii_digit()));
    }

    #[test]
    fn a_rate_limit_refusal_is_slow_down_and_retries_after_at_least_a_second() {
        let err = S3Error::RateLimited {
            retry_after_secs: 0,
        };
        assert_eq!(err.code(), "SlowDown");
        assert_eq!(err.status(), 503);
        assert_eq!(err.retry_after_secs(), Some(1));
        assert!(err.to_xml("/b", "r").contains("<Code>SlowDown</Code>"));
        assert_eq!(S3Error::InternalError.retry_after_secs(), None);
    }
}
