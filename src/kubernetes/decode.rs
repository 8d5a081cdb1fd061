//! Decoding a watched Secret into what it contributes: a credential (plus the quota
//! limits it carries) or an anonymous binding. Wire contract: DESIGN §6, compatible with
//! the Stowage operator.
//!
//! Every error is typed and its text names the field and the rule: the reason is
//! logged, and a Secret's data must never reach a log. Only bucket and backend names,
//! which are not secret and help find the mistake, may be quoted. Unlike the Go proxy,
//! malformed optional fields (a quota that is not a number, an unparseable expiry, an
//! unknown access class) make the whole Secret invalid: it then contributes nothing
//! (fail closed) instead of being read with the field ignored.

use std::collections::BTreeSet;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use zeroize::Zeroizing;

use super::resource::WatchedSecret;
use super::{ANNOTATION_EXPIRES_AT, LABEL_CLAIM_NAME, LABEL_CLAIM_NAMESPACE, LABEL_CLAIM_UID};
use super::{LABEL_ROLE, ROLE_BINDING, ROLE_CREDENTIAL};
use crate::credentials::anonymous::{AnonymousBinding, AnonymousMode};
use crate::credentials::sqlite_types::{validate_access_key_id, validate_scopes, validate_secret};
use crate::credentials::{Access, Credential, CredentialSource, Scope};
use crate::quota::{BucketKey, Limits};
use crate::secret::SecretKey;

/// Largest decoded value of an ordinary field.
const MAX_FIELD_BYTES: usize = 4 * 1024;
/// Largest decoded `bucket_scopes` (256 scopes with long prefixes fit).
const MAX_SCOPES_BYTES: usize = 256 * 1024;
const MAX_BACKEND_LEN: usize = 64;

/// Why a Secret contributes nothing. The text names fields and rules; of the values,
/// only bucket and backend names appear.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("label {LABEL_ROLE} is not {ROLE_CREDENTIAL} or {ROLE_BINDING}")]
    UnknownRole,
    #[error("data field `{0}` is missing or empty")]
    Missing(&'static str),
    #[error("data field `{0}` is not valid base64")]
    NotBase64(&'static str),
    #[error("data field `{0}` is not UTF-8 text")]
    NotText(&'static str),
    #[error("data field `{field}` is longer than {max} bytes")]
    TooLong { field: &'static str, max: usize },
    #[error("data field `{field}` is invalid: {rule}")]
    Invalid { field: &'static str, rule: String },
    #[error("annotation {ANNOTATION_EXPIRES_AT} is not an RFC 3339 time")]
    BadExpiry,
    #[error(
        "bucket_scopes names backend `{scope}`, but the credential's backend is `{credential}`"
    )]
    BackendMismatch { scope: String, credential: String },
}

fn invalid(field: &'static str, rule: impl Into<String>) -> DecodeError {
    DecodeError::Invalid {
        field,
        rule: rule.into(),
    }
}

/// A credential Secret's contribution.
#[derive(Debug, Clone)]
pub struct CredentialEntry {
    pub credential: Credential,
    /// One entry per exact-name scope bucket when the Secret carries quota fields;
    /// empty otherwise (bucket patterns get no limit: a limit is per bucket).
    pub limits: Vec<(BucketKey, Limits)>,
}

/// What a valid Secret contributes.
#[derive(Debug, Clone)]
pub enum Decoded {
    Credential(Box<CredentialEntry>),
    Binding(AnonymousBinding),
}

/// Decode a watched Secret by its role label.
///
/// # Errors
/// When a required field is missing or any field breaks its rule.
pub fn decode(secret: &WatchedSecret) -> Result<Decoded, DecodeError> {
    match secret.label(LABEL_ROLE) {
        Some(ROLE_CREDENTIAL) => Ok(Decoded::Credential(Box::new(decode_credential(secret)?))),
        Some(ROLE_BINDING) => Ok(Decoded::Binding(decode_binding(secret)?)),
        _ => Err(DecodeError::UnknownRole),
    }
}

/// Decode a `virtual-credential` Secret.
///
/// # Errors
/// See [`DecodeError`].
pub fn decode_credential(secret: &WatchedSecret) -> Result<CredentialEntry, DecodeError> {
    let access_key_id = required(secret, "access_key_id")?;
    validate_access_key_id(&access_key_id).map_err(|e| invalid("access_key_id", rule_of(&e)))?;
    let secret_key = secret_key(secret)?;
    let backend = backend(secret)?;
    let scopes = scopes(secret, &backend)?;
    let expires_at = expires_at(secret)?;
    let limits = scope_limits(&backend, &scopes, quota(secret)?);
    let credential = Credential {
        access_key_id: access_key_id.to_string(),
        secret: secret_key,
        backend,
        scopes,
        expires_at,
        enabled: true,
        source: source(secret),
        description: format!("Kubernetes Secret {}", secret.owner()),
    };
    Ok(CredentialEntry { credential, limits })
}

/// Decode an `anonymous-binding` Secret.
///
/// # Errors
/// See [`DecodeError`].
pub fn decode_binding(secret: &WatchedSecret) -> Result<AnonymousBinding, DecodeError> {
    let bucket = required(secret, "bucket_name")?.to_string();
    let exact = Scope {
        bucket: bucket.clone(),
        access: Access::ReadOnly,
        prefix: None,
    };
    if exact.is_pattern() {
        return Err(invalid(
            "bucket_name",
            "a binding names one bucket, not a pattern",
        ));
    }
    validate_scopes(std::slice::from_ref(&exact))
        .map_err(|e| invalid("bucket_name", rule_of(&e)))?;
    let mode = required(secret, "anonymous_mode")?;
    let mode = AnonymousMode::parse(&mode)
        .ok_or_else(|| invalid("anonymous_mode", "must be None or ReadOnly"))?;
    Ok(AnonymousBinding {
        backend: backend(secret)?,
        bucket,
        mode,
        per_source_ip_rps: rate(secret)?,
        source: source(secret),
    })
}

/// A data field's decoded text; `None` when absent or empty. Ordinary fields are
/// trimmed (hand-written Secrets often end in a newline); the secret is not.
fn text(
    secret: &WatchedSecret,
    field: &'static str,
    max: usize,
) -> Result<Option<Zeroizing<String>>, DecodeError> {
    let Some(encoded) = secret.data.get(field) else {
        return Ok(None);
    };
    // Bound the work before decoding: base64 is 4 bytes per 3.
    if encoded.base64().len() > max.div_ceil(3) * 4 + 4 {
        return Err(DecodeError::TooLong { field, max });
    }
    let bytes = Zeroizing::new(
        STANDARD
            .decode(encoded.base64().trim())
            .map_err(|_| DecodeError::NotBase64(field))?,
    );
    if bytes.len() > max {
        return Err(DecodeError::TooLong { field, max });
    }
    let text = std::str::from_utf8(&bytes).map_err(|_| DecodeError::NotText(field))?;
    let text = if field == "secret_access_key" {
        text
    } else {
        text.trim()
    };
    Ok((!text.is_empty()).then(|| Zeroizing::new(text.to_owned())))
}

fn optional(
    secret: &WatchedSecret,
    field: &'static str,
) -> Result<Option<Zeroizing<String>>, DecodeError> {
    text(secret, field, MAX_FIELD_BYTES)
}

fn required(secret: &WatchedSecret, field: &'static str) -> Result<Zeroizing<String>, DecodeError> {
    optional(secret, field)?.ok_or(DecodeError::Missing(field))
}

fn secret_key(secret: &WatchedSecret) -> Result<SecretKey, DecodeError> {
    let mut text = required(secret, "secret_access_key")?;
    let key = SecretKey::new(std::mem::take(&mut *text));
    validate_secret(&key).map_err(|e| invalid("secret_access_key", rule_of(&e)))?;
    Ok(key)
}

fn backend(secret: &WatchedSecret) -> Result<String, DecodeError> {
    let b = required(secret, "backend")?;
    let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-');
    if b.len() > MAX_BACKEND_LEN || !b.chars().all(ok) {
        return Err(invalid(
            "backend",
            "must be 1-64 characters of A-Z a-z 0-9 _ . -",
        ));
    }
    Ok(b.to_string())
}

/// The rule text of a store validation error, without its "invalid credential:" prefix.
fn rule_of(e: &crate::credentials::sqlite_types::StoreError) -> String {
    match e {
        crate::credentials::sqlite_types::StoreError::Invalid(rule) => rule.clone(),
        other => other.to_string(),
    }
}

/// One entry of `bucket_scopes` as the operator writes it, plus our extensions.
#[derive(Deserialize)]
struct WireScope {
    bucket: String,
    #[serde(default)]
    backend: Option<String>,
    #[serde(default)]
    access: Option<String>,
    #[serde(default)]
    prefix: Option<String>,
}

/// `bucket_scopes` when it is valid non-empty JSON (as the Go proxy prefers it), else
/// the legacy `bucket_name` with read-write access. JSON that parses but breaks a rule
/// (unknown access, another backend) invalidates the Secret rather than falling back:
/// the fallback would grant read-write where read-only was meant.
fn scopes(secret: &WatchedSecret, backend: &str) -> Result<Vec<Scope>, DecodeError> {
    let parsed = text(secret, "bucket_scopes", MAX_SCOPES_BYTES)?
        .and_then(|json| serde_json::from_str::<Vec<WireScope>>(&json).ok())
        .filter(|v| !v.is_empty());
    let scopes = match parsed {
        Some(wire) => wire
            .into_iter()
            .map(|w| scope_of(w, backend))
            .collect::<Result<Vec<_>, _>>()?,
        None => {
            let bucket =
                optional(secret, "bucket_name")?.ok_or(DecodeError::Missing("bucket_name"))?;
            vec![Scope {
                bucket: bucket.to_string(),
                access: Access::ReadWrite,
                prefix: None,
            }]
        }
    };
    validate_scopes(&scopes).map_err(|e| invalid("bucket_scopes", rule_of(&e)))?;
    Ok(scopes)
}

fn scope_of(w: WireScope, backend: &str) -> Result<Scope, DecodeError> {
    if let Some(b) = w.backend.filter(|b| !b.is_empty())
        && b != backend
    {
        return Err(DecodeError::BackendMismatch {
            scope: b.chars().take(MAX_BACKEND_LEN).collect(),
            credential: backend.to_owned(),
        });
    }
    let access = match w.access.as_deref() {
        None | Some("read-write") => Access::ReadWrite,
        Some("read-only") => Access::ReadOnly,
        Some(_) => {
            return Err(invalid(
                "bucket_scopes",
                "access must be read-write or read-only",
            ));
        }
    };
    Ok(Scope {
        bucket: w.bucket,
        access,
        prefix: w.prefix.filter(|p| !p.is_empty()),
    })
}

fn expires_at(secret: &WatchedSecret) -> Result<Option<OffsetDateTime>, DecodeError> {
    match secret.annotation(ANNOTATION_EXPIRES_AT).map(str::trim) {
        None | Some("") => Ok(None),
        Some(t) => OffsetDateTime::parse(t, &Rfc3339)
            .map(Some)
            .map_err(|_| DecodeError::BadExpiry),
    }
}

/// A quota field: a decimal byte or object count; absent or `0` means no cap.
fn count(secret: &WatchedSecret, field: &'static str) -> Result<Option<u64>, DecodeError> {
    let Some(t) = optional(secret, field)? else {
        return Ok(None);
    };
    if !t.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid(field, "must be a non-negative decimal integer"));
    }
    let n: u64 = t
        .parse()
        .map_err(|_| invalid(field, "must fit in 64 bits"))?;
    Ok((n > 0).then_some(n))
}

fn quota(secret: &WatchedSecret) -> Result<Limits, DecodeError> {
    Ok(Limits {
        hard_bytes: count(secret, "quota_hard_bytes")?,
        soft_bytes: count(secret, "quota_soft_bytes")?,
        max_objects: count(secret, "quota_max_objects")?,
    })
}

/// The Secret's limits on each exact bucket it scopes, once per bucket.
fn scope_limits(backend: &str, scopes: &[Scope], limits: Limits) -> Vec<(BucketKey, Limits)> {
    if limits.is_empty() {
        return Vec::new();
    }
    let buckets: BTreeSet<&str> = scopes
        .iter()
        .filter(|s| !s.is_pattern())
        .map(|s| s.bucket.as_str())
        .collect();
    buckets
        .into_iter()
        .map(|b| (BucketKey::new(backend, b), limits))
        .collect()
}

/// `anonymous_per_source_ip_rps`: absent or `0` means the configured default.
fn rate(secret: &WatchedSecret) -> Result<Option<f64>, DecodeError> {
    const FIELD: &str = "anonymous_per_source_ip_rps";
    let Some(t) = optional(secret, FIELD)? else {
        return Ok(None);
    };
    let rps: f64 = t.parse().map_err(|_| invalid(FIELD, "must be a number"))?;
    if !rps.is_finite() || rps < 0.0 {
        return Err(invalid(FIELD, "must be a finite number >= 0"));
    }
    Ok((rps > 0.0).then_some(rps))
}

/// The claim the Secret was minted for (its labels), falling back to the Secret itself
/// for hand-written Secrets, so admin views and audit can always trace a credential.
fn source(secret: &WatchedSecret) -> CredentialSource {
    let meta = &secret.metadata;
    let label = |k| secret.label(k).filter(|v| !v.is_empty()).map(str::to_owned);
    let data_uid = optional(secret, "claim_uid")
        .ok()
        .flatten()
        .map(|u| u.to_string());
    CredentialSource::Kubernetes {
        namespace: label(LABEL_CLAIM_NAMESPACE)
            .unwrap_or_else(|| meta.namespace.clone().unwrap_or_default()),
        name: label(LABEL_CLAIM_NAME).unwrap_or_else(|| meta.name.clone().unwrap_or_default()),
        uid: label(LABEL_CLAIM_UID)
            .or(data_uid)
            .unwrap_or_else(|| meta.uid.clone().unwrap_or_default()),
    }
}

#[cfg(test)]
#[path = "decode_tests.rs"]
mod tests;
