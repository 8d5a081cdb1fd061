//! Percent-encoding rules shared by routing, copy-source parsing and query parsing:
//! a strict decoder (malformed escapes and invalid UTF-8 are errors, `+` stays `+`)
//! and the S3 canonical encoder used for outbound paths.

use std::borrow::Cow;

/// Why a percent-encoded string could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// A `%` not followed by two hex digits.
    #[error("malformed percent-encoding")]
    MalformedEscape,
    /// The decoded bytes are not UTF-8.
    #[error("percent-decoded text is not valid UTF-8")]
    InvalidUtf8,
}

/// Decode `%XX` escapes strictly. `+` is kept literal (RFC 3986, which is what SigV4
/// canonicalisation assumes); callers that must also consider the form-encoding
/// reading of `+` do so explicitly.
pub fn percent_decode_strict(s: &str) -> Result<Cow<'_, str>, DecodeError> {
    if !s.contains('%') {
        return Ok(Cow::Borrowed(s));
    }
    let bytes = s.as_bytes();
    // Decoding only shrinks, so the input length bounds the allocation.
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hi = bytes.get(i + 1).and_then(|b| hex_value(*b));
            let lo = bytes.get(i + 2).and_then(|b| hex_value(*b));
            let (Some(hi), Some(lo)) = (hi, lo) else {
                return Err(DecodeError::MalformedEscape);
            };
            out.push(hi << 4 | lo);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out)
        .map(Cow::Owned)
        .map_err(|_| DecodeError::InvalidUtf8)
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Append `s` to `out` with S3 canonical encoding: unreserved characters
/// (`A-Z a-z 0-9 - . _ ~`) kept, `/` kept when `keep_slash`, every other byte `%XX`
/// with uppercase hex. Strict backends (SeaweedFS) reject anything looser.
pub fn s3_encode_into(out: &mut String, s: &str, keep_slash: bool) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in s.as_bytes() {
        let keep = b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'.' | b'_' | b'~')
            || (keep_slash && b == b'/');
        if keep {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_decoder_decodes_escapes_and_keeps_plus_literal() {
        assert_eq!(percent_decode_strict("a%2Fb+c%20d").unwrap(), "a/b+c d");
        assert_eq!(percent_decode_strict("%e2%82%ac").unwrap(), "\u{20ac}");
        assert!(matches!(
            percent_decode_strict("plain").unwrap(),
            Cow::Borrowed("plain")
        ));
    }

    #[test]
    fn strict_decoder_rejects_malformed_escapes_and_invalid_utf8() {
        for bad in ["%", "%4", "%G1", "a%zz"] {
            assert_eq!(
                percent_decode_strict(bad),
                Err(DecodeError::MalformedEscape),
                "{bad}"
            );
        }
        assert_eq!(percent_decode_strict("%FF"), Err(DecodeError::InvalidUtf8));
    }

    #[test]
    fn s3_encoding_keeps_unreserved_and_uppercases_the_rest() {
        let mut out = String::new();
        s3_encode_into(&mut out, "a b+c=d/é~._-", true);
        assert_eq!(out, "a%20b%2Bc%3Dd/%C3%A9~._-");
        let mut out = String::new();
        s3_encode_into(&mut out, "a/b", false);
        assert_eq!(out, "a%2Fb");
    }
}
