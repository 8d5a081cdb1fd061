//! Line-level framing of aws-chunked bodies: bounded CRLF line reading and the
//! chunk-size line (`hex-size[;chunk-signature=<64 hex>]`), parsed strictly.

use bytes::{Buf, Bytes};

use super::ChunkedError;

/// Longest chunk size in hex digits: 16 digits already span all of `u64`.
const MAX_SIZE_DIGITS: usize = 16;
const SIGNATURE_EXT: &[u8] = b"chunk-signature=";

/// Read up to and including the next LF into `line`. Returns the complete line
/// without its CRLF, or `None` when more input is needed. A line longer than
/// `limit` bytes (CRLF included) fails as soon as that is certain.
pub(super) fn take_line(
    line: &mut Vec<u8>,
    input: &mut Bytes,
    limit: usize,
    too_long: ChunkedError,
) -> Result<Option<Vec<u8>>, ChunkedError> {
    let window = limit.saturating_sub(line.len()).min(input.len());
    let Some(lf) = input[..window].iter().position(|&b| b == b'\n') else {
        if line.len() + window >= limit {
            return Err(too_long);
        }
        line.extend_from_slice(&input[..window]);
        input.advance(window);
        return Ok(None);
    };
    line.extend_from_slice(&input[..lf]);
    input.advance(lf + 1);
    let mut complete = std::mem::take(line);
    if complete.pop() != Some(b'\r') {
        return Err(ChunkedError::Malformed("line not terminated by CRLF"));
    }
    Ok(Some(complete))
}

/// `hex-size` (unsigned) or `hex-size;chunk-signature=<64 hex>` (signed).
pub(super) fn parse_size_line(
    line: &[u8],
    signed: bool,
) -> Result<(u64, Option<String>), ChunkedError> {
    let (size, ext) = match line.iter().position(|&b| b == b';') {
        Some(i) => (&line[..i], Some(&line[i + 1..])),
        None => (line, None),
    };
    let size = parse_hex_size(size)?;
    match (signed, ext) {
        (false, None) => Ok((size, None)),
        (false, Some(_)) => Err(ChunkedError::Malformed("unexpected chunk extension")),
        (true, None) => Err(ChunkedError::Malformed("missing chunk-signature")),
        (true, Some(ext)) => {
            let sig = ext
                .strip_prefix(SIGNATURE_EXT)
                .filter(|s| s.len() == 64 && s.iter().all(u8::is_ascii_hexdigit))
                .ok_or(ChunkedError::Malformed("bad chunk-signature"))?;
            // All ASCII hex digits, so this is valid UTF-8.
            let sig = String::from_utf8_lossy(sig).into_owned();
            Ok((size, Some(sig)))
        }
    }
}

fn parse_hex_size(digits: &[u8]) -> Result<u64, ChunkedError> {
    if digits.is_empty() || digits.len() > MAX_SIZE_DIGITS {
        return Err(ChunkedError::Malformed("bad chunk size"));
    }
    digits.iter().try_fold(0u64, |acc, &d| {
        let v = char::from(d)
            .to_digit(16)
            .ok_or(ChunkedError::Malformed("bad chunk size"))?;
        acc.checked_mul(16)
            .and_then(|a| a.checked_add(u64::from(v)))
            .ok_or(ChunkedError::Malformed("bad chunk size"))
    })
}
