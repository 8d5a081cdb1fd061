//! The one authentication classifier: [`authenticate`] decides where the signature
//! is (Authorization header or presigned query, never both), applies the time rules
//! of that location, checks the credential scope and which headers are signed,
//! derives the payload mode, and verifies the signature in constant time. Its
//! [`VerifiedRequest`] is the only thing later pipeline steps accept.
//!
//! Decisions this module makes (AWS leaves room):
//! - A disabled or expired credential answers `InvalidAccessKeyId`, like an unknown
//!   one (AWS does the same for inactive keys); the metric reason tells them apart.
//! - Header auth without `x-amz-content-sha256` is `InvalidRequest`, S3's answer.
//! - A presigned URL dated more than `max_skew` in the future is `RequestTimeTooSkewed`.
//! - `host` unsigned answers like any other unsigned header (`AccessDenied`).
//! - `X-Amz-Security-Token` / `x-amz-security-token` are covered by the signature but
//!   otherwise ignored: virtual credentials have no session tokens.
//!
//! Nothing here logs: callers record [`AuthError::reason`], never signatures.

mod payload;

use http::HeaderMap;
use http::request::Parts;
use time::OffsetDateTime;

use super::keycache::{KeyLookup, SigningKeyCache};
use super::parse::{
    AuthError, AuthHeader, CredentialScope, PresignedParams, format_amz_date, parse_amz_date,
    parse_authorization, parse_http_date, parse_presigned,
};
use super::{AuthLocation, AuthOptions, ChunkSigningContext, PayloadMode, VerifiedRequest, sigv4};
use crate::credentials::{Credential, CredentialLookup};
use crate::secret::ct_eq_str;
use payload::{Payload, header_payload, presigned_payload};
use std::sync::Arc;

/// The only service a tenant may sign for.
const SERVICE: &str = "s3";

/// Authenticate a request's head. `now` is passed in so tests control the clock.
pub fn authenticate(
    parts: &Parts,
    creds: &dyn CredentialLookup,
    keys: &SigningKeyCache,
    opts: &AuthOptions,
    now: OffsetDateTime,
) -> Result<VerifiedRequest, AuthError> {
    let query = parts.uri.query().unwrap_or("");
    match authorization_header(&parts.headers)? {
        Some(value) => {
            // Any presign-looking parameter next to a header is ambiguous, even a
            // malformed one: which signature would be the real one?
            if !matches!(parse_presigned(query), Ok(None)) {
                return Err(AuthError::Ambiguous);
            }
            let header = parse_authorization(value)?;
            verify_header(parts, &header, creds, keys, opts, now)
        }
        None => match parse_presigned(query)? {
            Some(params) => verify_presigned(parts, &params, creds, keys, opts, now),
            None => Err(AuthError::Missing),
        },
    }
}

fn authorization_header(headers: &HeaderMap) -> Result<Option<&str>, AuthError> {
    let mut values = headers.get_all(http::header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(AuthError::MalformedHeader(
            "more than one Authorization header",
        ));
    }
    value
        .to_str()
        .map(Some)
        .map_err(|_| AuthError::MalformedHeader("the Authorization header is not valid text"))
}

/// What a request claims, gathered from either location, ready to check.
struct Claim<'a> {
    location: AuthLocation,
    credential: &'a CredentialScope,
    signed_headers: &'a [String],
    signature: &'a str,
    amz_date: String,
    canonical_query: String,
    payload: Payload,
}

fn verify_header(
    parts: &Parts,
    header: &AuthHeader,
    creds: &dyn CredentialLookup,
    keys: &SigningKeyCache,
    opts: &AuthOptions,
    now: OffsetDateTime,
) -> Result<VerifiedRequest, AuthError> {
    let date = request_date(&parts.headers)?;
    if (now - date).unsigned_abs() > opts.max_skew {
        return Err(AuthError::Skewed);
    }
    let location = AuthLocation::Header;
    let amz_date = format_amz_date(date);
    check_scope_date(&header.credential, &amz_date, location)?;
    check_signed_headers(&parts.headers, &header.signed_headers)?;
    let claim = Claim {
        location,
        credential: &header.credential,
        signed_headers: &header.signed_headers,
        signature: &header.signature,
        amz_date,
        canonical_query: sigv4::canonical_query(parts.uri.query().unwrap_or(""), false),
        payload: header_payload(&parts.headers)?,
    };
    finish(parts, claim, creds, keys, now)
}

fn verify_presigned(
    parts: &Parts,
    params: &PresignedParams,
    creds: &dyn CredentialLookup,
    keys: &SigningKeyCache,
    opts: &AuthOptions,
    now: OffsetDateTime,
) -> Result<VerifiedRequest, AuthError> {
    let date = parse_amz_date(&params.amz_date)
        .map_err(|_| AuthError::MalformedQuery("X-Amz-Date must be YYYYMMDDTHHMMSSZ"))?;
    let max_secs = opts.max_presign_expiry.as_secs();
    if !(1..=max_secs).contains(&params.expires_secs) {
        return Err(AuthError::ExpiresOutOfRange { max_secs });
    }
    // Validity runs from X-Amz-Date for X-Amz-Expires; the header skew window does
    // not apply to the past (a 7-day URL works on day 6), only to future dates.
    if date > now && (date - now).unsigned_abs() > opts.max_skew {
        return Err(AuthError::Skewed);
    }
    let lifetime = time::Duration::seconds(i64::try_from(params.expires_secs).unwrap_or(i64::MAX));
    if date.checked_add(lifetime).is_none_or(|end| now > end) {
        return Err(AuthError::Expired);
    }
    let location = AuthLocation::Query;
    check_scope(&params.credential, date, location)?;
    check_signed_headers(&parts.headers, &params.signed_headers)?;
    let claim = Claim {
        location,
        credential: &params.credential,
        signed_headers: &params.signed_headers,
        signature: &params.signature,
        amz_date: params.amz_date.clone(),
        canonical_query: sigv4::canonical_query(parts.uri.query().unwrap_or(""), true),
        payload: presigned_payload(&parts.headers, &params.signed_headers)?,
    };
    finish(parts, claim, creds, keys, now)
}

/// `x-amz-date`, or `Date` when it is absent.
fn request_date(headers: &HeaderMap) -> Result<OffsetDateTime, AuthError> {
    let text = |name| {
        headers
            .get(name)
            .map(|v| v.to_str().map_err(|_| AuthError::MissingDate))
    };
    match (text("x-amz-date"), text(http::header::DATE.as_str())) {
        (Some(v), _) => parse_amz_date(v?),
        (None, Some(v)) => parse_http_date(v?),
        (None, None) => Err(AuthError::MissingDate),
    }
}

/// The scope date must be the request's day and the service `s3`; any region is
/// accepted and reported back.
fn check_scope(
    scope: &CredentialScope,
    date: OffsetDateTime,
    location: AuthLocation,
) -> Result<(), AuthError> {
    check_scope_date(scope, &format_amz_date(date), location)
}

/// [`check_scope`] with the request's date already formatted (`YYYYMMDDTHHMMSSZ`).
fn check_scope_date(
    scope: &CredentialScope,
    amz_date: &str,
    location: AuthLocation,
) -> Result<(), AuthError> {
    if scope.date != amz_date[..8] {
        return Err(AuthError::ScopeDate(location));
    }
    if scope.service != SERVICE {
        let msg = "Credential should be scoped to correct service: 's3'";
        return Err(AuthError::malformed(location, msg));
    }
    Ok(())
}

/// `host` and every `x-amz-*` header present must be signed, or an unsigned header
/// could be injected and forwarded under the backend's credentials.
fn check_signed_headers(headers: &HeaderMap, signed: &[String]) -> Result<(), AuthError> {
    let is_signed = |name: &str| signed.iter().any(|s| s == name);
    if !is_signed("host") {
        return Err(AuthError::UnsignedHeader);
    }
    let unsigned = headers
        .keys()
        .map(http::HeaderName::as_str)
        .any(|name| name.starts_with("x-amz-") && !is_signed(name));
    if unsigned {
        return Err(AuthError::UnsignedHeader);
    }
    Ok(())
}

/// Resolve the credential, recompute the signature, compare in constant time.
fn finish(
    parts: &Parts,
    claim: Claim<'_>,
    creds: &dyn CredentialLookup,
    keys: &SigningKeyCache,
    now: OffsetDateTime,
) -> Result<VerifiedRequest, AuthError> {
    let credential = resolve(creds, &claim.credential.access_key_id, now)?;
    let scope = claim.credential.scope();
    let string_to_sign = string_to_sign(parts, &claim, &scope)?;
    let lookup = keys.get_or_derive(
        &claim.credential.access_key_id,
        &credential.secret,
        &claim.credential.date,
        &claim.credential.region,
        SERVICE,
    );
    let expected = sigv4::signature(&lookup.key, &string_to_sign);
    if !ct_eq_str(&expected, claim.signature) {
        return Err(AuthError::BadSignature);
    }
    keys.remember(&lookup);
    let chunk_context = chunk_context(&claim, &lookup, scope);
    Ok(VerifiedRequest::new(
        credential,
        claim.location,
        claim.payload.mode,
        chunk_context,
        claim.credential.region.clone(),
    ))
}

pub(super) fn resolve(
    creds: &dyn CredentialLookup,
    access_key_id: &str,
    now: OffsetDateTime,
) -> Result<Arc<Credential>, AuthError> {
    let credential = creds.lookup(access_key_id).ok_or(AuthError::UnknownKey)?;
    if !credential.enabled {
        return Err(AuthError::Disabled);
    }
    if credential.expires_at.is_some_and(|t| now >= t) {
        return Err(AuthError::CredentialExpired);
    }
    Ok(credential)
}

fn string_to_sign(parts: &Parts, claim: &Claim<'_>, scope: &str) -> Result<String, AuthError> {
    let authority = parts.uri.authority().map(http::uri::Authority::as_str);
    // The canonical request is written into a reused buffer (see `sigv4::with_scratch`),
    // in the layout of `sigv4::canonical_request`, then hashed into the string to sign.
    sigv4::with_scratch(|creq| {
        creq.push_str(parts.method.as_str());
        creq.push('\n');
        sigv4::canonical_uri_into(parts.uri.path(), creq);
        creq.push('\n');
        creq.push_str(&claim.canonical_query);
        creq.push('\n');
        // A signed header that is absent (or not text) cannot match what was signed.
        sigv4::canonical_headers_into(&parts.headers, claim.signed_headers, authority, creq)
            .map_err(|_| AuthError::BadSignature)?;
        creq.push('\n');
        for (i, name) in claim.signed_headers.iter().enumerate() {
            if i > 0 {
                creq.push(';');
            }
            creq.push_str(name);
        }
        creq.push('\n');
        creq.push_str(&claim.payload.hash);
        Ok(sigv4::string_to_sign(&claim.amz_date, scope, creq))
    })
}

/// Signed aws-chunked bodies chain their chunk signatures from this request's.
fn chunk_context(
    claim: &Claim<'_>,
    lookup: &KeyLookup,
    scope: String,
) -> Option<ChunkSigningContext> {
    matches!(
        claim.payload.mode,
        PayloadMode::Streaming { signed: true, .. }
    )
    .then(|| ChunkSigningContext {
        signing_key: lookup.key.clone(),
        amz_date: claim.amz_date.clone(),
        scope,
        seed_signature: claim.signature.to_owned(),
    })
}

#[cfg(test)]
mod tests;
