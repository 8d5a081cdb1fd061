//! The trailer section of an aws-chunked body: the lines after the final 0-size
//! chunk (`x-amz-checksum-<algo>:<b64>`, `x-amz-trailer-signature:<hex>`), checked
//! against what the request declared in `x-amz-trailer` and against the bytes decoded.
//! Spec: <https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-streaming-trailers.html>

use subtle::ConstantTimeEq;

use super::ChunkedError;
use super::sign::ChainVerifier;
use crate::auth::ChecksumAlgorithm;
use crate::auth::checksum::{Checksummer, decode_checksum_value};

const TRAILER_SIGNATURE: &str = "x-amz-trailer-signature";

/// Collects trailer lines until the empty line that closes the section.
#[derive(Debug)]
pub(super) struct TrailerCollector {
    /// The algorithm `x-amz-trailer` declared, if any.
    expected: Option<ChecksumAlgorithm>,
    /// Whether an `x-amz-trailer-signature` line is required (signed trailer mode).
    signed: bool,
    checksum_value: Option<String>,
    signature: Option<String>,
}

impl TrailerCollector {
    pub(super) fn new(expected: Option<ChecksumAlgorithm>, signed: bool) -> Self {
        Self {
            expected,
            signed: signed && expected.is_some(),
            checksum_value: None,
            signature: None,
        }
    }

    /// Take one trailer line (CRLF already removed, never empty).
    pub(super) fn line(&mut self, line: &[u8]) -> Result<(), ChunkedError> {
        let text = std::str::from_utf8(line)
            .map_err(|_| ChunkedError::Malformed("trailer line is not UTF-8"))?;
        let (name, value) = text
            .split_once(':')
            .ok_or(ChunkedError::Malformed("trailer line has no ':'"))?;
        let value = value.trim_matches([' ', '\t']);
        if name.eq_ignore_ascii_case(TRAILER_SIGNATURE) {
            if !self.signed {
                return Err(ChunkedError::UnexpectedTrailer);
            }
            return store_once(&mut self.signature, value);
        }
        match ChecksumAlgorithm::from_header_name(name) {
            Some(found) if Some(found) == self.expected => {
                store_once(&mut self.checksum_value, value)
            }
            Some(_) => Err(ChunkedError::TrailerAlgorithmMismatch),
            None => Err(ChunkedError::UnexpectedTrailer),
        }
    }

    /// The section is closed: everything declared must be present, the signature
    /// must chain from the final chunk, and the checksum must match the bytes.
    pub(super) fn finish(
        self,
        checksum: Option<Checksummer>,
        chain: Option<&mut ChainVerifier>,
    ) -> Result<(), ChunkedError> {
        let Some(algorithm) = self.expected else {
            return Ok(());
        };
        let value = self
            .checksum_value
            .ok_or(ChunkedError::MissingChecksumTrailer(algorithm))?;
        if self.signed {
            let claimed = self
                .signature
                .ok_or(ChunkedError::MissingTrailerSignature)?;
            let chain = chain.ok_or(ChunkedError::Internal)?;
            // Only the checksum line is accepted, so the canonical form is that one line.
            let canonical = format!("{}:{value}\n", algorithm.header_name());
            if !chain.verify_trailer(canonical.as_bytes(), &claimed) {
                return Err(ChunkedError::TrailerSignature);
            }
        }
        let expected = decode_checksum_value(algorithm, &value)
            .ok_or(ChunkedError::ChecksumMalformed(algorithm))?;
        let computed = checksum.ok_or(ChunkedError::Internal)?.finish_bytes();
        if bool::from(computed.ct_eq(&expected)) {
            Ok(())
        } else {
            Err(ChunkedError::ChecksumMismatch(algorithm))
        }
    }
}

fn store_once(slot: &mut Option<String>, value: &str) -> Result<(), ChunkedError> {
    if slot.is_some() {
        return Err(ChunkedError::Malformed("duplicate trailer line"));
    }
    *slot = Some(value.to_owned());
    Ok(())
}
