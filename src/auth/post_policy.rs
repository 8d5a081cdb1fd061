//! Browser form uploads (`POST /bucket`, `multipart/form-data`): the POST policy, its
//! conditions, and its SigV4 signature. Spec:
//! <https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-HTTPPOSTConstructPolicy.html>
//! and <https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-post-example.html>.
//!
//! Pure: the form fields, the file's length and the clock are passed in. The signature
//! is HMAC-SHA256 of the base64 policy text under the SigV4 signing key of the
//! `x-amz-credential` scope; [`verify_form`] is the form's counterpart of
//! [`super::authenticate`] and the only other maker of a [`VerifiedRequest`].
//!
//! Decisions (where S3 leaves room or is lax):
//! - Every form field except `x-amz-signature`, `policy`, `file` and `x-ignore-*` must
//!   be covered by a condition naming it, including the signing fields.
//! - The bucket is the URL's. A `bucket` condition must name it, and a `bucket` form
//!   field that names another is refused.
//! - Conditions are checked against the submitted values (`${filename}` literal);
//!   the caller checks scope on the key after substitution.
//! - `expiration` is required; the form's `x-amz-date` may be at most
//!   `max_presign_expiry` old and at most `max_skew` in the future.
//! - A form with an `Authorization` header or presign query parameters is refused
//!   (400 `InvalidArgument`, "Only one auth mechanism allowed").

use base64::Engine as _;
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::keycache::SigningKeyCache;
use super::parse::{AuthError, parse_amz_date, parse_credential_scope};
use super::verify::resolve;
use super::{AuthLocation, AuthOptions, PayloadMode, VerifiedRequest, sigv4};
use crate::credentials::CredentialLookup;
use crate::secret::ct_eq_str;

/// Most conditions a policy may carry.
pub const MAX_CONDITIONS: usize = 256;
/// Largest base64 policy accepted.
pub const MAX_POLICY_BYTES: usize = 64 * 1024;

/// The non-file fields of a form, names lower-cased, in order. `Debug` shows the
/// names only: values include the signature and the policy.
#[derive(Default, Clone, PartialEq, Eq)]
pub struct FormFields(Vec<(String, String)>);

impl std::fmt::Debug for FormFields {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|(n, _)| n))
            .finish()
    }
}

impl FormFields {
    /// Add a field; a repeated name is refused (which value would the policy cover?).
    ///
    /// # Errors
    /// A repeated field name.
    pub fn push(&mut self, name: &str, value: String) -> Result<(), PolicyError> {
        let name = name.to_ascii_lowercase();
        if self.get(&name).is_some() {
            return Err(PolicyError::Malformed(
                "a form field appears more than once",
            ));
        }
        self.0.push((name, value));
        Ok(())
    }

    /// A field's value by (case-insensitive) name.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }
}

/// Why a form was refused. Messages are ours; a field name (checked to be a plain
/// token first) is the only client text they may carry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("malformed POST form: {0}")]
    Malformed(&'static str),
    #[error("Invalid Policy: {0}")]
    InvalidPolicy(&'static str),
    #[error("Invalid according to Policy: Policy expired.")]
    Expired,
    #[error("Invalid according to Policy: Policy Condition failed: {0}")]
    ConditionFailed(String),
    #[error("Invalid according to Policy: Extra input fields: {0}")]
    Uncovered(String),
    #[error("Your proposed upload is outside the policy's content-length-range.")]
    LengthOutOfRange { too_large: bool },
}

/// One policy condition, field names lower-cased without the `$`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    Eq { field: String, value: String },
    StartsWith { field: String, prefix: String },
    LengthRange { min: u64, max: u64 },
}

impl Condition {
    fn field(&self) -> Option<&str> {
        match self {
            Self::Eq { field, .. } | Self::StartsWith { field, .. } => Some(field),
            Self::LengthRange { .. } => None,
        }
    }
}

/// A decoded POST policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub expiration: OffsetDateTime,
    pub conditions: Vec<Condition>,
}

impl Policy {
    /// Decode the form's `policy` field (base64 of a JSON document).
    ///
    /// # Errors
    /// Bad base64, bad JSON, a missing or bad `expiration`, an unknown condition.
    pub fn decode(policy_b64: &str) -> Result<Self, PolicyError> {
        if policy_b64.len() > MAX_POLICY_BYTES {
            return Err(PolicyError::InvalidPolicy("the policy is too large"));
        }
        let raw = base64::engine::general_purpose::STANDARD
            .decode(policy_b64.trim())
            .map_err(|_| PolicyError::InvalidPolicy("the policy is not valid base64"))?;
        let doc: Value = serde_json::from_slice(&raw)
            .map_err(|_| PolicyError::InvalidPolicy("the policy is not a JSON document"))?;
        let expiration = doc
            .get("expiration")
            .and_then(Value::as_str)
            .and_then(|s| OffsetDateTime::parse(s, &Rfc3339).ok())
            .ok_or(PolicyError::InvalidPolicy(
                "the policy needs an ISO 8601 expiration",
            ))?;
        let list =
            doc.get("conditions")
                .and_then(Value::as_array)
                .ok_or(PolicyError::InvalidPolicy(
                    "the policy needs a conditions list",
                ))?;
        if list.len() > MAX_CONDITIONS {
            return Err(PolicyError::InvalidPolicy(
                "the policy has too many conditions",
            ));
        }
        let conditions = list.iter().map(condition).collect::<Result<_, _>>()?;
        Ok(Self {
            expiration,
            conditions,
        })
    }

    /// Check the form against the policy: expiry, every condition, and that every
    /// field is covered by a condition. `file_len` is the uploaded file's size.
    ///
    /// # Errors
    /// The first rule the form breaks.
    pub fn check(
        &self,
        fields: &FormFields,
        url_bucket: &str,
        file_len: u64,
        now: OffsetDateTime,
    ) -> Result<(), PolicyError> {
        if now >= self.expiration {
            return Err(PolicyError::Expired);
        }
        if fields.get("bucket").is_some_and(|b| b != url_bucket) {
            return Err(PolicyError::ConditionFailed("bucket".into()));
        }
        for c in &self.conditions {
            check_one(c, fields, url_bucket, file_len)?;
        }
        for (name, _) in fields.iter() {
            let exempt = matches!(name, "x-amz-signature" | "policy" | "file")
                || name.starts_with("x-ignore-");
            if !exempt && !self.conditions.iter().any(|c| c.field() == Some(name)) {
                return Err(PolicyError::Uncovered(name.to_owned()));
            }
        }
        Ok(())
    }
}

fn check_one(
    c: &Condition,
    fields: &FormFields,
    url_bucket: &str,
    file_len: u64,
) -> Result<(), PolicyError> {
    let value = |field: &str| {
        if field == "bucket" {
            url_bucket
        } else {
            fields.get(field).unwrap_or("")
        }
    };
    let ok = match c {
        Condition::Eq { field, value: want } => value(field) == want,
        // A Content-Type may list several types; browsers honour the last valid one,
        // so every member must satisfy the condition (`image/png,text/html` must not
        // pass `starts-with image/`).
        Condition::StartsWith { field, prefix } if field == "content-type" => value(field)
            .split(',')
            .all(|t| t.trim().starts_with(prefix.as_str())),
        Condition::StartsWith { field, prefix } => value(field).starts_with(prefix.as_str()),
        Condition::LengthRange { min, max } => {
            if file_len < *min || file_len > *max {
                return Err(PolicyError::LengthOutOfRange {
                    too_large: file_len > *max,
                });
            }
            true
        }
    };
    if ok {
        Ok(())
    } else {
        Err(PolicyError::ConditionFailed(
            c.field().unwrap_or_default().to_owned(),
        ))
    }
}

/// A field name as a condition names it: `$` dropped, lower-cased, a plain token.
fn field_name(raw: &str) -> Result<String, PolicyError> {
    let name = raw.strip_prefix('$').unwrap_or(raw).to_ascii_lowercase();
    if is_token(&name) {
        Ok(name)
    } else {
        Err(PolicyError::InvalidPolicy(
            "a condition names an invalid field",
        ))
    }
}

/// Letters, digits, `-` and `_`, 1 to 128 of them: safe to echo in a message.
#[must_use]
pub fn is_token(name: &str) -> bool {
    (1..=128).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn condition(v: &Value) -> Result<Condition, PolicyError> {
    const BAD: PolicyError = PolicyError::InvalidPolicy("a condition is not understood");
    if let Some(obj) = v.as_object() {
        let mut it = obj.iter();
        let (Some((k, val)), None) = (it.next(), it.next()) else {
            return Err(BAD);
        };
        return Ok(Condition::Eq {
            field: field_name(k)?,
            value: val.as_str().ok_or(BAD)?.to_owned(),
        });
    }
    let arr = v.as_array().ok_or(BAD)?;
    let op = arr.first().and_then(Value::as_str).ok_or(BAD)?;
    match (op.to_ascii_lowercase().as_str(), arr.len()) {
        ("eq", 3) | ("starts-with", 3) => {
            let field = field_name(arr[1].as_str().ok_or(BAD)?)?;
            let text = arr[2].as_str().ok_or(BAD)?.to_owned();
            Ok(if op.eq_ignore_ascii_case("eq") {
                Condition::Eq { field, value: text }
            } else {
                Condition::StartsWith {
                    field,
                    prefix: text,
                }
            })
        }
        ("content-length-range", 3) => {
            let num = |v: &Value| {
                v.as_u64()
                    .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                    .ok_or(BAD)
            };
            let (min, max) = (num(&arr[1])?, num(&arr[2])?);
            if min > max {
                return Err(BAD);
            }
            Ok(Condition::LengthRange { min, max })
        }
        _ => Err(BAD),
    }
}

/// A form authenticates with its policy only: an `Authorization` header or presign
/// query parameters beside it make two mechanisms, refused as S3 refuses a header
/// next to a presigned query (which signature would decide?). Checked before the
/// body is read.
///
/// # Errors
/// [`AuthError::Ambiguous`] when the request carries another mechanism.
pub fn check_form_is_only_mechanism(
    headers: &http::HeaderMap,
    query: Option<&str>,
) -> Result<(), AuthError> {
    let presign = !matches!(super::parse::parse_presigned(query.unwrap_or("")), Ok(None));
    if presign || headers.contains_key(http::header::AUTHORIZATION) {
        return Err(AuthError::Ambiguous);
    }
    Ok(())
}

/// What [`verify_form`] read from the form: the policy, checked later against the
/// file's length once the form's head is parsed.
#[derive(Debug)]
pub struct VerifiedForm {
    pub request: VerifiedRequest,
    pub policy: Policy,
}

/// Verify a form's signature over its policy and resolve the credential. The
/// policy's conditions are checked separately ([`Policy::check`]), once the file's
/// length is known.
///
/// # Errors
/// Missing signing fields, a wrong algorithm, dates out of range, an unknown or
/// disabled key, a signature that does not match.
pub fn verify_form(
    fields: &FormFields,
    creds: &dyn CredentialLookup,
    keys: &SigningKeyCache,
    opts: &AuthOptions,
    now: OffsetDateTime,
) -> Result<VerifiedForm, AuthError> {
    let get = |name| fields.get(name);
    if get("awsaccesskeyid").is_some() || get("signature").is_some() {
        return Err(AuthError::SigV2);
    }
    let missing = |what| AuthError::InvalidArgument(what);
    match get("x-amz-algorithm") {
        Some("AWS4-HMAC-SHA256") => {}
        Some("AWS4-ECDSA-P256-SHA256") => return Err(AuthError::SigV4A),
        Some(_) => return Err(missing("x-amz-algorithm must be AWS4-HMAC-SHA256")),
        None => return Err(AuthError::Missing),
    }
    let policy_b64 = get("policy").ok_or(missing("the form needs a policy field"))?;
    let signature = get("x-amz-signature").ok_or(missing("the form needs x-amz-signature"))?;
    let scope = parse_credential_scope(
        get("x-amz-credential").ok_or(missing("the form needs x-amz-credential"))?,
        AuthLocation::Form,
    )?;
    let date = parse_amz_date(get("x-amz-date").ok_or(missing("the form needs x-amz-date"))?)
        .map_err(|_| missing("x-amz-date must be YYYYMMDDTHHMMSSZ"))?;
    if scope.date != super::parse::format_amz_date(date)[..8] {
        return Err(AuthError::ScopeDate(AuthLocation::Form));
    }
    if scope.service != "s3" {
        return Err(AuthError::malformed(
            AuthLocation::Form,
            "Credential should be scoped to correct service: 's3'",
        ));
    }
    if date > now && (date - now).unsigned_abs() > opts.max_skew {
        return Err(AuthError::Skewed);
    }
    if now > date && (now - date).unsigned_abs() > opts.max_presign_expiry {
        return Err(AuthError::Expired);
    }
    let credential = resolve(creds, &scope.access_key_id, now)?;
    let lookup = keys.get_or_derive(
        &scope.access_key_id,
        &credential.secret,
        &scope.date,
        &scope.region,
        "s3",
    );
    if !ct_eq_str(&sigv4::signature(&lookup.key, policy_b64), signature) {
        return Err(AuthError::BadSignature);
    }
    keys.remember(&lookup);
    // Only a signed policy is decoded: an anonymous client cannot make us parse JSON.
    let policy = Policy::decode(policy_b64).map_err(|_| {
        AuthError::InvalidArgument("the policy is not a valid POST policy document")
    })?;
    Ok(VerifiedForm {
        request: VerifiedRequest::new(
            credential,
            AuthLocation::Form,
            PayloadMode::Unsigned,
            None,
            scope.region,
        ),
        policy,
    })
}

#[cfg(test)]
#[path = "post_policy_tests.rs"]
mod tests;
