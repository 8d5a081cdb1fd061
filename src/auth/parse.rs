//! Parsers for what a client sends to authenticate: the `Authorization` header, the
//! presigned query parameters, `x-amz-date`/`Date` and the credential scope; and
//! [`AuthError`], the typed authentication failure with its bounded metric label and
//! its one mapping to [`S3Error`](crate::error::S3Error). Nothing here panics or allocates more than a
//! bounded multiple of its input; SigV2 and SigV4A are recognised so they get a clear
//! answer instead of a signature mismatch.

use std::fmt;

use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime};

use super::AuthLocation;
use super::sigv4::{ALGORITHM, credential_scope};

mod error;
mod presigned;

pub use error::AuthError;
pub use presigned::{PresignedParams, parse_presigned};

/// Longest `Authorization` header value we parse.
pub const MAX_AUTHORIZATION_LEN: usize = 8 * 1024;
/// Most header names a request may sign.
pub const MAX_SIGNED_HEADERS: usize = 64;
const MAX_HEADER_NAME_LEN: usize = 128;
const MAX_ACCESS_KEY_LEN: usize = 128;
const MAX_SCOPE_PART_LEN: usize = 64;
pub(crate) const MAX_SECURITY_TOKEN_LEN: usize = 8 * 1024;
pub(crate) const SIGV4A_ALGORITHM: &str = "AWS4-ECDSA-P256-SHA256";

/// `AKID/YYYYMMDD/region/service/aws4_request`, split and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialScope {
    pub access_key_id: String,
    /// `YYYYMMDD`.
    pub date: String,
    pub region: String,
    pub service: String,
}

impl CredentialScope {
    /// `date/region/service/aws4_request`, as it appears in the string to sign.
    #[must_use]
    pub fn scope(&self) -> String {
        credential_scope(&self.date, &self.region, &self.service)
    }
}

/// A parsed `Authorization: AWS4-HMAC-SHA256 ...` header.
#[derive(Clone, PartialEq, Eq)]
pub struct AuthHeader {
    pub credential: CredentialScope,
    /// Lowercase header names, in the order the client listed them.
    pub signed_headers: Vec<String>,
    /// 64 lowercase hex characters.
    pub signature: String,
}

// Signatures and tokens stay out of Debug output: they end up in logs otherwise.
impl fmt::Debug for AuthHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthHeader")
            .field("credential", &self.credential)
            .field("signed_headers", &self.signed_headers)
            .field("signature", &"<redacted>")
            .finish()
    }
}

/// Parse an `Authorization` header value. Components may be separated by commas
/// and/or spaces; each of `Credential`, `SignedHeaders`, `Signature` must appear
/// exactly once. `AWS AKID:sig` is SigV2, `AWS4-ECDSA-P256-SHA256` is SigV4A.
pub fn parse_authorization(value: &str) -> Result<AuthHeader, AuthError> {
    let loc = AuthLocation::Header;
    if value.len() > MAX_AUTHORIZATION_LEN {
        return Err(AuthError::MalformedHeader(
            "the Authorization header is too long",
        ));
    }
    if value.starts_with("AWS ") {
        return Err(AuthError::SigV2);
    }
    let (algorithm, rest) = value.split_once([' ', ',']).unwrap_or((value, ""));
    match algorithm {
        ALGORITHM => {}
        SIGV4A_ALGORITHM => return Err(AuthError::SigV4A),
        _ => return Err(AuthError::InvalidArgument("Unsupported Authorization Type")),
    }
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for part in rest.split([',', ' ', '\t']).filter(|p| !p.is_empty()) {
        let (key, val) = part
            .split_once('=')
            .ok_or(AuthError::MalformedHeader("expected Key=Value components"))?;
        let slot = match key {
            "Credential" => &mut credential,
            "SignedHeaders" => &mut signed,
            "Signature" => &mut signature,
            _ => {
                return Err(AuthError::MalformedHeader(
                    "unknown Authorization component",
                ));
            }
        };
        if slot.replace(val).is_some() {
            return Err(AuthError::MalformedHeader(
                "repeated Authorization component",
            ));
        }
    }
    let missing =
        || AuthError::MalformedHeader("Credential, SignedHeaders and Signature are required");
    Ok(AuthHeader {
        credential: parse_credential_scope(credential.ok_or_else(missing)?, loc)?,
        signed_headers: parse_signed_headers(signed.ok_or_else(missing)?, loc)?,
        signature: parse_signature(signature.ok_or_else(missing)?, loc)?,
    })
}

/// Parse and check a credential `AKID/YYYYMMDD/region/service/aws4_request`.
pub fn parse_credential_scope(
    value: &str,
    location: AuthLocation,
) -> Result<CredentialScope, AuthError> {
    let bad = |m| AuthError::malformed(location, m);
    let parts: Vec<&str> = value.splitn(6, '/').collect();
    let [ak, date, region, service, terminator] = parts[..] else {
        return Err(bad(
            "the Credential must be AKID/date/region/service/aws4_request",
        ));
    };
    if terminator != "aws4_request" {
        return Err(bad("the Credential must end with aws4_request"));
    }
    if ak.is_empty() || ak.len() > MAX_ACCESS_KEY_LEN || !ak.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(bad("the access key id in the Credential is not valid"));
    }
    if date.len() != 8 || !date.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad("the Credential date must be YYYYMMDD"));
    }
    if !is_scope_word(region) || !is_scope_word(service) {
        return Err(bad("the Credential region or service is not valid"));
    }
    Ok(CredentialScope {
        access_key_id: ak.to_owned(),
        date: date.to_owned(),
        region: region.to_owned(),
        service: service.to_owned(),
    })
}

fn is_scope_word(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_SCOPE_PART_LEN
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Parse `SignedHeaders`: `;`-separated lowercase header names, no repeats, bounded.
pub fn parse_signed_headers(value: &str, location: AuthLocation) -> Result<Vec<String>, AuthError> {
    let bad = |m| AuthError::malformed(location, m);
    let mut names: Vec<String> = Vec::new();
    for name in value.split(';') {
        if names.len() == MAX_SIGNED_HEADERS {
            return Err(bad("too many SignedHeaders"));
        }
        let valid = !name.is_empty()
            && name.len() <= MAX_HEADER_NAME_LEN
            && name.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.!#$%&'*+^`|~".contains(&b)
            });
        if !valid {
            return Err(bad(
                "SignedHeaders must be lowercase header names separated by ';'",
            ));
        }
        if names.iter().any(|n| n == name) {
            return Err(bad("SignedHeaders lists a header twice"));
        }
        names.push(name.to_owned());
    }
    Ok(names)
}

pub(crate) fn parse_signature(value: &str, location: AuthLocation) -> Result<String, AuthError> {
    if value.len() == 64
        && value
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        Ok(value.to_owned())
    } else {
        Err(AuthError::malformed(
            location,
            "the Signature must be 64 lowercase hex characters",
        ))
    }
}

/// Parse `YYYYMMDDTHHMMSSZ` (UTC).
pub fn parse_amz_date(value: &str) -> Result<OffsetDateTime, AuthError> {
    if value.len() != 16 {
        return Err(AuthError::MissingDate);
    }
    PrimitiveDateTime::parse(
        value,
        format_description!("[year][month][day]T[hour][minute][second]Z"),
    )
    .map(PrimitiveDateTime::assume_utc)
    .map_err(|_| AuthError::MissingDate)
}

/// Parse an RFC 1123 `Date` header (`Fri, 24 May 2013 00:00:00 GMT`).
pub fn parse_http_date(value: &str) -> Result<OffsetDateTime, AuthError> {
    if value.len() != 29 {
        return Err(AuthError::MissingDate);
    }
    let format = format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    PrimitiveDateTime::parse(value, format)
        .map(PrimitiveDateTime::assume_utc)
        .map_err(|_| AuthError::MissingDate)
}

/// Format a time as `YYYYMMDDTHHMMSSZ`.
#[must_use]
pub fn format_amz_date(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    let mut out = String::with_capacity(16);
    // Years outside 0..=9999 cannot be written in four digits; they never parse back
    // from a request either, so clamping only keeps the width.
    let year = u32::try_from(t.year().clamp(0, 9999)).unwrap_or(0);
    push_digits(&mut out, year, 4);
    push_digits(&mut out, u32::from(u8::from(t.month())), 2);
    push_digits(&mut out, u32::from(t.day()), 2);
    out.push('T');
    push_digits(&mut out, u32::from(t.hour()), 2);
    push_digits(&mut out, u32::from(t.minute()), 2);
    push_digits(&mut out, u32::from(t.second()), 2);
    out.push('Z');
    out
}

/// `n` in exactly `width` decimal digits (leading zeros; higher digits dropped).
fn push_digits(out: &mut String, n: u32, width: u32) {
    for i in (0..width).rev() {
        let digit = (n / 10u32.pow(i)) % 10;
        out.push(char::from(b'0' + u8::try_from(digit).unwrap_or(0)));
    }
}

#[cfg(test)]
mod tests;
