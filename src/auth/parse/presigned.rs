//! The SigV4 presigned-URL query parameters (`X-Amz-*`), and recognition of SigV2
//! and SigV4A presigned URLs.

use std::fmt;

use super::{
    AuthError, CredentialScope, MAX_SECURITY_TOKEN_LEN, SIGV4A_ALGORITHM, parse_credential_scope,
    parse_signature, parse_signed_headers,
};
use crate::auth::AuthLocation;
use crate::auth::sigv4::{ALGORITHM, query_decode, query_pairs};

/// The SigV4 presigned-URL query parameters.
#[derive(Clone, PartialEq, Eq)]
pub struct PresignedParams {
    pub credential: CredentialScope,
    /// `X-Amz-Date` as sent (`YYYYMMDDTHHMMSSZ`).
    pub amz_date: String,
    /// `X-Amz-Expires` in seconds (range-checked by the verifier).
    pub expires_secs: u64,
    pub signed_headers: Vec<String>,
    pub signature: String,
    pub security_token: Option<String>,
}

// Signatures and tokens stay out of Debug output: they end up in logs otherwise.
impl fmt::Debug for PresignedParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PresignedParams")
            .field("credential", &self.credential)
            .field("amz_date", &self.amz_date)
            .field("expires_secs", &self.expires_secs)
            .field("signed_headers", &self.signed_headers)
            .field("signature", &"<redacted>")
            .field(
                "security_token",
                &self.security_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// The raw SigV4 presign parameters found in a query, before validation.
#[derive(Default)]
struct RawPresign<'a> {
    algorithm: Option<&'a str>,
    credential: Option<&'a str>,
    date: Option<&'a str>,
    expires: Option<&'a str>,
    signed_headers: Option<&'a str>,
    signature: Option<&'a str>,
    security_token: Option<&'a str>,
    sigv2_key: bool,
    sigv2_signature: bool,
}

impl<'a> RawPresign<'a> {
    fn collect(query: &'a str) -> Result<Self, AuthError> {
        let mut raw = Self::default();
        for (name, value) in query_pairs(query) {
            let slot = match name {
                "X-Amz-Algorithm" => &mut raw.algorithm,
                "X-Amz-Credential" => &mut raw.credential,
                "X-Amz-Date" => &mut raw.date,
                "X-Amz-Expires" => &mut raw.expires,
                "X-Amz-SignedHeaders" => &mut raw.signed_headers,
                "X-Amz-Signature" => &mut raw.signature,
                "X-Amz-Security-Token" => &mut raw.security_token,
                "AWSAccessKeyId" => {
                    raw.sigv2_key = true;
                    continue;
                }
                "Signature" => {
                    raw.sigv2_signature = true;
                    continue;
                }
                _ => continue,
            };
            if slot.replace(value).is_some() {
                return Err(AuthError::MalformedQuery("a presign parameter is repeated"));
            }
        }
        Ok(raw)
    }

    fn is_sigv4(&self) -> bool {
        self.algorithm.is_some() || self.credential.is_some() || self.signature.is_some()
    }
}

/// Decode one query value as UTF-8 text.
fn query_text(raw: &str) -> Result<String, AuthError> {
    String::from_utf8(query_decode(raw).into_owned())
        .map_err(|_| AuthError::MalformedQuery("a presign parameter is not valid text"))
}

/// Find and parse SigV4 presign parameters. `Ok(None)`: the query carries none.
/// `AWSAccessKeyId` + `Signature` is a SigV2 presigned URL; an `X-Amz-Algorithm` of
/// `AWS4-ECDSA-P256-SHA256` is SigV4A.
pub fn parse_presigned(query: &str) -> Result<Option<PresignedParams>, AuthError> {
    let raw = RawPresign::collect(query)?;
    if !raw.is_sigv4() {
        if raw.sigv2_key && raw.sigv2_signature {
            return Err(AuthError::SigV2);
        }
        return Ok(None);
    }
    let required = |v: Option<&str>| {
        v.map(query_text).transpose()?.ok_or(AuthError::MalformedQuery(
            "X-Amz-Algorithm, X-Amz-Credential, X-Amz-Date, X-Amz-Expires, X-Amz-SignedHeaders and X-Amz-Signature are required",
        ))
    };
    match required(raw.algorithm)?.as_str() {
        ALGORITHM => {}
        SIGV4A_ALGORITHM => return Err(AuthError::SigV4A),
        _ => {
            return Err(AuthError::MalformedQuery(
                "X-Amz-Algorithm only supports \"AWS4-HMAC-SHA256\"",
            ));
        }
    }
    let loc = AuthLocation::Query;
    let security_token = raw.security_token.map(query_text).transpose()?;
    if security_token
        .as_ref()
        .is_some_and(|t| t.len() > MAX_SECURITY_TOKEN_LEN)
    {
        return Err(AuthError::MalformedQuery(
            "X-Amz-Security-Token is too long",
        ));
    }
    Ok(Some(PresignedParams {
        credential: parse_credential_scope(&required(raw.credential)?, loc)?,
        amz_date: required(raw.date)?,
        expires_secs: parse_expires(&required(raw.expires)?)?,
        signed_headers: parse_signed_headers(&required(raw.signed_headers)?, loc)?,
        signature: parse_signature(&required(raw.signature)?, loc)?,
        security_token,
    }))
}

fn parse_expires(value: &str) -> Result<u64, AuthError> {
    // Ten digits cover any sane value and keep the parse far from overflow.
    if value.is_empty() || value.len() > 10 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(AuthError::MalformedQuery(
            "X-Amz-Expires must be a whole number of seconds",
        ));
    }
    value
        .parse()
        .map_err(|_| AuthError::MalformedQuery("X-Amz-Expires must be a whole number of seconds"))
}
