//! Why an aws-chunked body was rejected, and the S3 error each reason becomes.
//! Messages are ours; nothing from the body (signatures, values) is echoed.

use std::borrow::Cow;

use crate::auth::ChecksumAlgorithm;
use crate::auth::checksum::algorithm_name;
use crate::error::S3Error;

/// A failed check or malformed framing in an aws-chunked body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChunkedError {
    #[error("chunk signature does not match")]
    ChunkSignature,
    #[error("trailer signature does not match")]
    TrailerSignature,
    #[error("trailer signature missing")]
    MissingTrailerSignature,
    #[error("trailer checksum does not match the body")]
    ChecksumMismatch(ChecksumAlgorithm),
    #[error("trailer checksum value is malformed")]
    ChecksumMalformed(ChecksumAlgorithm),
    #[error("declared trailer checksum missing")]
    MissingChecksumTrailer(ChecksumAlgorithm),
    #[error("trailer checksum algorithm differs from x-amz-trailer")]
    TrailerAlgorithmMismatch,
    #[error("unexpected trailer header")]
    UnexpectedTrailer,
    #[error("decoded body longer than declared")]
    TooLong,
    #[error("decoded body shorter than declared")]
    TooShort,
    #[error("body ended before the aws-chunked framing did")]
    Truncated,
    #[error("data after the end of the aws-chunked body")]
    TrailingData,
    #[error("malformed aws-chunked body: {0}")]
    Malformed(&'static str),
    #[error("signed chunk larger than allowed")]
    ChunkTooLarge,
    #[error("chunk header line too long")]
    LineTooLong,
    #[error("trailer section too large")]
    TrailerTooLarge,
    /// The decoder was built without what its mode needs (a bug, not the client's).
    #[error("internal decoder error")]
    Internal,
}

impl ChunkedError {
    /// The client-facing error.
    #[must_use]
    pub fn s3_error(&self) -> S3Error {
        match self {
            Self::ChunkSignature | Self::TrailerSignature | Self::MissingTrailerSignature => {
                S3Error::SignatureDoesNotMatch
            }
            // S3's own wording for a flexible-checksum mismatch.
            Self::ChecksumMismatch(a) => S3Error::BadDigest(Cow::Owned(format!(
                "The {} you specified did not match the calculated checksum.",
                algorithm_name(*a)
            ))),
            Self::ChecksumMalformed(a) => invalid(format!(
                "Value for {} trailing header is invalid.",
                a.header_name()
            )),
            Self::MissingChecksumTrailer(a) => invalid(format!(
                "The {} trailer declared in x-amz-trailer was not sent.",
                a.header_name()
            )),
            Self::TrailerAlgorithmMismatch => invalid_static(
                "The checksum trailer does not match the algorithm declared in x-amz-trailer.",
            ),
            Self::UnexpectedTrailer => {
                invalid_static("The aws-chunked trailer contains a header that was not declared.")
            }
            Self::TooLong => {
                invalid_static("The decoded body is longer than x-amz-decoded-content-length.")
            }
            Self::TooShort | Self::Truncated => S3Error::IncompleteBody,
            Self::TrailingData => {
                invalid_static("Unexpected data after the end of the aws-chunked body.")
            }
            Self::Malformed(detail) => invalid(format!("Malformed aws-chunked body: {detail}.")),
            Self::ChunkTooLarge => {
                invalid_static("A signed aws-chunked chunk exceeds the maximum chunk size.")
            }
            Self::LineTooLong => invalid_static("An aws-chunked chunk header is too long."),
            Self::TrailerTooLarge => {
                invalid_static("The aws-chunked trailer section is too large.")
            }
            Self::Internal => S3Error::InternalError,
        }
    }

    /// A bounded label for metrics and logs.
    #[must_use]
    pub fn reason(&self) -> &'static str {
        match self {
            Self::ChunkSignature => "chunk_signature",
            Self::TrailerSignature => "trailer_signature",
            Self::MissingTrailerSignature => "trailer_signature_missing",
            Self::ChecksumMismatch(_) => "checksum_mismatch",
            Self::ChecksumMalformed(_) => "checksum_malformed",
            Self::MissingChecksumTrailer(_) => "checksum_missing",
            Self::TrailerAlgorithmMismatch => "checksum_algorithm",
            Self::UnexpectedTrailer => "trailer_unexpected",
            Self::TooLong => "decoded_too_long",
            Self::TooShort => "decoded_too_short",
            Self::Truncated => "truncated",
            Self::TrailingData => "trailing_data",
            Self::Malformed(_) => "malformed",
            Self::ChunkTooLarge => "chunk_too_large",
            Self::LineTooLong => "line_too_long",
            Self::TrailerTooLarge => "trailer_too_large",
            Self::Internal => "internal",
        }
    }
}

impl From<ChunkedError> for S3Error {
    fn from(e: ChunkedError) -> Self {
        e.s3_error()
    }
}

fn invalid(message: String) -> S3Error {
    S3Error::InvalidRequest(Cow::Owned(message))
}

fn invalid_static(message: &'static str) -> S3Error {
    S3Error::InvalidRequest(Cow::Borrowed(message))
}
