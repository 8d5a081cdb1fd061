//! The payload mode of a request, from `x-amz-content-sha256`, `Content-Encoding`,
//! `x-amz-decoded-content-length` and `x-amz-trailer`, and the payload-hash line
//! its canonical request carries.

use http::HeaderMap;

use crate::auth::parse::AuthError;
use crate::auth::sigv4::UNSIGNED_PAYLOAD;
use crate::auth::{ChecksumAlgorithm, PayloadMode};

const SIGNED_STREAM: &str = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD";
const SIGNED_STREAM_TRAILER: &str = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER";
const UNSIGNED_STREAM_TRAILER: &str = "STREAMING-UNSIGNED-PAYLOAD-TRAILER";
const CONTENT_SHA256: &str = "x-amz-content-sha256";
/// `u64::MAX` has 20 digits.
const MAX_LENGTH_DIGITS: usize = 20;

/// A request's payload mode and the payload hash its canonical request ends with.
#[derive(Debug)]
pub(super) struct Payload {
    pub mode: PayloadMode,
    pub hash: String,
}

/// Header auth: `x-amz-content-sha256` is required (S3 answers InvalidRequest
/// "Missing required header for this request: x-amz-content-sha256" without it).
pub(super) fn header_payload(headers: &HeaderMap) -> Result<Payload, AuthError> {
    let value = single(headers, CONTENT_SHA256)?.ok_or(AuthError::InvalidRequest(
        "Missing required header for this request: x-amz-content-sha256",
    ))?;
    let mode = match value {
        UNSIGNED_PAYLOAD => PayloadMode::Unsigned,
        SIGNED_STREAM => streaming(headers, true, false)?,
        SIGNED_STREAM_TRAILER => streaming(headers, true, true)?,
        UNSIGNED_STREAM_TRAILER => streaming(headers, false, true)?,
        v if v.starts_with("STREAMING-") && v.contains("ECDSA") => {
            return Err(AuthError::Unsupported(
                "SigV4A streaming payloads (STREAMING-AWS4-ECDSA-P256-SHA256-*) are not supported; sign with SigV4",
            ));
        }
        v => PayloadMode::Sha256(parse_hex_sha256(v)?),
    };
    check_encoding(headers, &mode)?;
    Ok(Payload {
        mode,
        hash: value.to_owned(),
    })
}

/// Query auth: the payload is `UNSIGNED-PAYLOAD` unless the URL signs an
/// `x-amz-content-sha256` header, which then pins the body. aws-chunked bodies need
/// header auth (their seed signature is the Authorization header's).
pub(super) fn presigned_payload(
    headers: &HeaderMap,
    signed_headers: &[String],
) -> Result<Payload, AuthError> {
    let pinned = if signed_headers.iter().any(|h| h == CONTENT_SHA256) {
        single(headers, CONTENT_SHA256)?
    } else {
        None
    };
    let mode = match pinned {
        None | Some(UNSIGNED_PAYLOAD) => PayloadMode::Unsigned,
        Some(v) if v.starts_with("STREAMING-") => {
            return Err(AuthError::InvalidRequest(
                "aws-chunked (STREAMING-*) uploads need Authorization header signing",
            ));
        }
        Some(v) => PayloadMode::Sha256(parse_hex_sha256(v)?),
    };
    check_encoding(headers, &mode)?;
    if headers.contains_key("x-amz-trailer") {
        return Err(trailer_without_stream());
    }
    let hash = pinned.unwrap_or(UNSIGNED_PAYLOAD).to_owned();
    Ok(Payload { mode, hash })
}

fn streaming(
    headers: &HeaderMap,
    signed: bool,
    has_trailer: bool,
) -> Result<PayloadMode, AuthError> {
    let decoded_length = single(headers, "x-amz-decoded-content-length")?
        .ok_or(AuthError::InvalidRequest(
            "x-amz-decoded-content-length is required for aws-chunked uploads",
        ))
        .and_then(parse_length)?;
    let trailer = match (has_trailer, single(headers, "x-amz-trailer")?) {
        (true, Some(name)) => Some(
            ChecksumAlgorithm::from_header_name(name.trim_matches(' ')).ok_or(
                AuthError::InvalidArgument(
                    "x-amz-trailer must name one of x-amz-checksum-crc32, -crc32c, -crc64nvme, -sha1, -sha256",
                ),
            )?,
        ),
        (true, None) => {
            return Err(AuthError::InvalidRequest(
                "x-amz-trailer is required for STREAMING-*-TRAILER uploads",
            ));
        }
        (false, Some(_)) => return Err(trailer_without_stream()),
        (false, None) => None,
    };
    Ok(PayloadMode::Streaming {
        signed,
        trailer,
        decoded_length,
    })
}

fn trailer_without_stream() -> AuthError {
    AuthError::InvalidRequest("x-amz-trailer needs a STREAMING-*-TRAILER x-amz-content-sha256")
}

/// `Content-Encoding: aws-chunked` frames the body; only streaming modes decode it.
fn check_encoding(headers: &HeaderMap, mode: &PayloadMode) -> Result<(), AuthError> {
    let chunked = headers
        .get_all(http::header::CONTENT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| coding.trim().eq_ignore_ascii_case("aws-chunked"));
    if chunked && !matches!(mode, PayloadMode::Streaming { .. }) {
        return Err(AuthError::InvalidRequest(
            "Content-Encoding: aws-chunked needs a STREAMING-* x-amz-content-sha256",
        ));
    }
    Ok(())
}

/// The one value of a header that must not repeat, as text.
fn single<'h>(headers: &'h HeaderMap, name: &str) -> Result<Option<&'h str>, AuthError> {
    let mut values = headers.get_all(name).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(AuthError::InvalidArgument("a payload header is repeated"));
    }
    first
        .to_str()
        .map(Some)
        .map_err(|_| AuthError::InvalidArgument("a payload header is not valid text"))
}

fn parse_hex_sha256(value: &str) -> Result<[u8; 32], AuthError> {
    let mut out = [0u8; 32];
    match hex::decode_to_slice(value, &mut out) {
        Ok(()) => Ok(out),
        Err(_) => Err(AuthError::InvalidArgument(
            "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-AWS4-HMAC-SHA256-PAYLOAD[-TRAILER], STREAMING-UNSIGNED-PAYLOAD-TRAILER or a hex SHA-256",
        )),
    }
}

fn parse_length(value: &str) -> Result<u64, AuthError> {
    let bad = AuthError::InvalidRequest("x-amz-decoded-content-length must be a whole number");
    if value.is_empty()
        || value.len() > MAX_LENGTH_DIGITS
        || !value.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(bad);
    }
    value.parse().map_err(|_| bad)
}
