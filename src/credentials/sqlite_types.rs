//! The SQLite store's public types and write-side rules: its error enum, what a caller
//! submits (`NewCredential`), what listings return (`CredentialRecord`, never a secret),
//! how access key ids and secrets are generated, and what a valid row looks like.

use std::path::PathBuf;

use rand::RngCore;
use rand::rngs::OsRng;
use serde::{Serialize, Serializer};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::model::Scope;
use crate::secret::SecretKey;

/// Generated access key ids start with this, so they are easy to recognise in logs
/// and by secret scanners: `SW` + 18 characters of `A-Z2-7` (90 random bits).
pub const ACCESS_KEY_PREFIX: &str = "SW";
pub const ACCESS_KEY_LEN: usize = 20;
/// Generated secrets: 40 characters of `A-Za-z0-9` (about 238 random bits).
pub const SECRET_LEN: usize = 40;
/// Bounds for caller-chosen values (`insert_credential_with_secret`).
pub const MIN_SECRET_LEN: usize = 16;
pub const MAX_SECRET_LEN: usize = 256;
const MAX_ACCESS_KEY_LEN: usize = 128;
const MAX_BACKEND_LEN: usize = 64;
const MAX_DESCRIPTION_LEN: usize = 1024;
const MAX_SCOPES: usize = 256;
/// S3 object keys are at most 1024 bytes, so a longer prefix can never match.
const MAX_PREFIX_LEN: usize = 1024;

const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const BASE62: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// Errors of the credential store. Messages name access key ids, never secrets.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("credential {0} not found")]
    NotFound(String),
    #[error("credential {0} already exists")]
    AlreadyExists(String),
    #[error("invalid credential: {0}")]
    Invalid(String),
    #[error(
        "the root key does not match the one this database was sealed with \
         (key id {given}, expected {expected})"
    )]
    RootKeyMismatch { given: String, expected: String },
    #[error(
        "the root key (key id {given}) is the one this database was rotated away from; \
         it now uses key id {current}: point database.secret_key_file (or \
         STOWAGE_SECRET_KEY) at the new key"
    )]
    StaleRootKey { given: String, current: String },
    #[error(
        "database schema version {found} is newer than this build of stowage supports \
         ({supported}); upgrade stowage"
    )]
    SchemaTooNew { found: i64, supported: usize },
    #[error("database could not switch to WAL journal mode (still `{0}`)")]
    NoWal(String),
    #[error("cannot unseal the secret of credential {0}")]
    Unseal(String),
    #[error("credential {access_key_id} has a malformed row: {reason}")]
    Corrupt {
        access_key_id: String,
        reason: String,
    },
    #[error(
        "change feed has no record of changes after seq {since} \
         (pruned through {pruned_through}, latest {latest}); a full reload is needed"
    )]
    FeedGap {
        since: u64,
        pruned_through: u64,
        latest: u64,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("internal error: {0}")]
    Internal(String),
}

/// A credential to create. The store picks the access key id and secret
/// (`create_credential`) unless the caller supplies them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCredential {
    /// A `[[backends]] id`; the store does not check it against the config.
    pub backend: String,
    pub scopes: Vec<Scope>,
    pub expires_at: Option<OffsetDateTime>,
    pub description: String,
    pub enabled: bool,
}

/// A stored credential without its secret: what `list` and `show` print.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CredentialRecord {
    pub access_key_id: String,
    pub backend: String,
    pub scopes: Vec<Scope>,
    pub description: String,
    pub enabled: bool,
    #[serde(serialize_with = "rfc3339_opt")]
    pub expires_at: Option<OffsetDateTime>,
    #[serde(serialize_with = "rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(serialize_with = "rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl CredentialRecord {
    /// Enabled and not expired at `now`.
    #[must_use]
    pub fn is_usable(&self, now: OffsetDateTime) -> bool {
        self.enabled && self.expires_at.is_none_or(|t| now < t)
    }

    /// One line for `credentials list`: key, enabled, backend, expiry, scopes.
    #[must_use]
    pub fn table_row(&self) -> String {
        let expires = self
            .expires_at
            .map_or_else(|| "never".to_owned(), format_time);
        let scopes: Vec<String> = self.scopes.iter().map(scope_text).collect();
        let enabled = if self.enabled { "yes" } else { "no" };
        format!(
            "{:<22} {:<8} {:<10} {:<20} {}",
            self.access_key_id,
            enabled,
            self.backend,
            expires,
            scopes.join(",")
        )
    }
}

fn scope_text(s: &Scope) -> String {
    match &s.prefix {
        Some(p) => format!("{}:{}:{p}", s.bucket, s.access),
        None => format!("{}:{}", s.bucket, s.access),
    }
}

fn format_time(t: OffsetDateTime) -> String {
    t.format(&Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

fn rfc3339<S: Serializer>(t: &OffsetDateTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_time(*t))
}

fn rfc3339_opt<S: Serializer>(t: &Option<OffsetDateTime>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_some(&format_time(*t)),
        None => s.serialize_none(),
    }
}

/// `len` characters drawn uniformly from `alphabet` with OsRng. Bytes at or above the
/// largest multiple of the alphabet size are redrawn, so there is no modulo bias.
fn random_string(alphabet: &[u8], len: usize) -> String {
    let n = alphabet.len();
    let limit = 256 - 256 % n;
    let mut out = String::with_capacity(len);
    let mut buf = [0u8; 64];
    while out.len() < len {
        OsRng.fill_bytes(&mut buf);
        for &b in buf.iter().filter(|&&b| usize::from(b) < limit) {
            if out.len() == len {
                break;
            }
            out.push(char::from(alphabet[usize::from(b) % n]));
        }
    }
    buf.fill(0);
    out
}

/// A fresh access key id: `SW` + 18 × `A-Z2-7`.
#[must_use]
pub fn generate_access_key_id() -> String {
    let tail = random_string(BASE32, ACCESS_KEY_LEN - ACCESS_KEY_PREFIX.len());
    format!("{ACCESS_KEY_PREFIX}{tail}")
}

/// A fresh secret: 40 × `A-Za-z0-9`.
#[must_use]
pub fn generate_secret() -> SecretKey {
    SecretKey::new(random_string(BASE62, SECRET_LEN))
}

fn invalid(msg: impl Into<String>) -> StoreError {
    StoreError::Invalid(msg.into())
}

/// Access key ids: 3–128 of `A-Za-z0-9_.-` (SigV4 splits its credential on `/`).
pub fn validate_access_key_id(ak: &str) -> Result<(), StoreError> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-');
    if !(3..=MAX_ACCESS_KEY_LEN).contains(&ak.len()) || !ak.chars().all(ok_char) {
        return Err(invalid(
            "access key id must be 3-128 characters of A-Z a-z 0-9 _ . -",
        ));
    }
    Ok(())
}

/// Caller-chosen secrets: 16–256 printable ASCII characters, no spaces.
pub fn validate_secret(secret: &SecretKey) -> Result<(), StoreError> {
    let s = secret.expose();
    if !(MIN_SECRET_LEN..=MAX_SECRET_LEN).contains(&s.len())
        || !s.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(invalid(
            "secret must be 16-256 printable ASCII characters without spaces",
        ));
    }
    Ok(())
}

/// Everything but the key pair: backend id, scopes, description.
pub fn validate_new(req: &NewCredential) -> Result<(), StoreError> {
    let b = &req.backend;
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-');
    if b.is_empty() || b.len() > MAX_BACKEND_LEN || !b.chars().all(ok_char) {
        return Err(invalid(
            "backend id must be 1-64 characters of A-Z a-z 0-9 _ . -",
        ));
    }
    if req.description.len() > MAX_DESCRIPTION_LEN {
        return Err(invalid("description is longer than 1024 bytes"));
    }
    validate_scopes(&req.scopes)
}

/// At least one scope; each bucket an S3-style name or `stem*`; prefixes relative.
pub fn validate_scopes(scopes: &[Scope]) -> Result<(), StoreError> {
    if scopes.is_empty() {
        return Err(invalid("a credential needs at least one scope"));
    }
    if scopes.len() > MAX_SCOPES {
        return Err(invalid("a credential may have at most 256 scopes"));
    }
    for s in scopes {
        validate_bucket(&s.bucket)?;
        if let Some(p) = &s.prefix {
            validate_prefix(p)?;
        }
    }
    Ok(())
}

/// Exact names: 3–63 of `a-z0-9.-`, starting and ending alphanumeric. Patterns: a
/// non-empty stem of the same characters (starting alphanumeric) and one trailing `*`.
/// A bare `*` is refused: a credential for every bucket is the backend's admin key.
fn validate_bucket(bucket: &str) -> Result<(), StoreError> {
    let ok_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '-');
    let alnum = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let (stem, pattern) = match bucket.strip_suffix('*') {
        Some(stem) => (stem, true),
        None => (bucket, false),
    };
    let len_ok = if pattern {
        (1..=62).contains(&stem.len())
    } else {
        (3..=63).contains(&stem.len())
    };
    let shape_ok = stem.chars().all(ok_char)
        && alnum(stem.chars().next())
        && (pattern || alnum(stem.chars().last()));
    if !len_ok || !shape_ok {
        return Err(invalid(format!(
            "scope bucket `{}` must be a bucket name (3-63 of a-z 0-9 . -) \
             or a non-empty stem followed by one `*`",
            bucket.escape_debug()
        )));
    }
    Ok(())
}

fn validate_prefix(prefix: &str) -> Result<(), StoreError> {
    if prefix.is_empty() || prefix.starts_with('/') || prefix.len() > MAX_PREFIX_LEN {
        return Err(invalid(
            "scope prefix must be 1-1024 bytes and must not start with `/`",
        ));
    }
    if prefix.chars().any(char::is_control) {
        return Err(invalid("scope prefix must not contain control characters"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credentials::model::Access;

    fn scope(bucket: &str, prefix: Option<&str>) -> Scope {
        Scope {
            bucket: bucket.into(),
            access: Access::ReadOnly,
            prefix: prefix.map(Into::into),
        }
    }

    #[test]
    fn generated_access_key_ids_have_the_documented_shape() {
        let ak = generate_access_key_id();
        assert_eq!(ak.len(), ACCESS_KEY_LEN);
        assert!(ak.starts_with(ACCESS_KEY_PREFIX));
        assert!(ak.bytes().all(|b| BASE32.contains(&b)), "{ak}");
        assert_ne!(ak, generate_access_key_id());
        validate_access_key_id(&ak).unwrap();
    }

    #[test]
    fn generated_secrets_are_40_base62_chars_and_valid() {
        let s = generate_secret();
        assert_eq!(s.len(), SECRET_LEN);
        assert!(s.expose().bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_ne!(s, generate_secret());
        validate_secret(&s).unwrap();
    }

    #[test]
    fn random_strings_use_the_whole_alphabet_evenly() {
        // 62 symbols × ~1000 draws each: a biased or truncated mapping shows up as a
        // missing symbol or a count far off the mean.
        let text = random_string(BASE62, 62_000);
        for &c in BASE62 {
            let n = text.bytes().filter(|&b| b == c).count();
            assert!(
                (700..1300).contains(&n),
                "{} drawn {n} times",
                char::from(c)
            );
        }
    }

    #[test]
    fn bucket_names_and_patterns_are_checked() {
        for ok in ["photos", "team-a-*", "a*", "my.bucket-1", "abc"] {
            validate_scopes(&[scope(ok, None)]).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for bad in [
            "*", "ab", "Photos", "a*b*", "a*b", "-abc", "abc-", "bad_name", "", "**",
        ] {
            assert!(
                validate_scopes(&[scope(bad, None)]).is_err(),
                "{bad:?} accepted"
            );
        }
        assert!(validate_scopes(&[scope(&"a".repeat(64), None)]).is_err());
    }

    #[test]
    fn scopes_must_be_non_empty_with_relative_prefixes() {
        assert!(validate_scopes(&[]).is_err());
        validate_scopes(&[scope("photos", Some("team/a/"))]).unwrap();
        for bad in ["", "/abs", "a\nb"] {
            assert!(
                validate_scopes(&[scope("photos", Some(bad))]).is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn access_key_ids_backends_and_secrets_are_bounded() {
        assert!(validate_access_key_id("AK/1").is_err());
        assert!(validate_access_key_id("AK").is_err());
        assert!(validate_access_key_id(&"A".repeat(129)).is_err());
        assert!(validate_secret(&SecretKey::new("short")).is_err());
        assert!(validate_secret(&SecretKey::new("has a space in it ....")).is_err());
        let mut req = NewCredential {
            backend: "local".into(),
            scopes: vec![scope("photos", None)],
            expires_at: None,
            description: String::new(),
            enabled: true,
        };
        validate_new(&req).unwrap();
        req.backend = "bad id".into();
        assert!(validate_new(&req).is_err());
    }

    #[test]
    fn validation_errors_never_echo_the_secret() {
        let err = validate_secret(&SecretKey::new("hunter2 hunter2 hunter2")).unwrap_err();
        assert!(!err.to_string().contains("hunter2"));
    }

    #[test]
    fn records_serialize_times_as_rfc3339_and_print_a_table_row() {
        let rec = CredentialRecord {
            access_key_id: "SWAAAA".into(),
            backend: "local".into(),
            scopes: vec![scope("photos", Some("p/"))],
            description: String::new(),
            enabled: false,
            expires_at: None,
            created_at: OffsetDateTime::UNIX_EPOCH,
            updated_at: OffsetDateTime::UNIX_EPOCH,
        };
        let json = serde_json::to_value(&rec).unwrap();
        assert_eq!(json["created_at"], "1970-01-01T00:00:00Z");
        assert!(json["expires_at"].is_null());
        let row = rec.table_row();
        assert!(
            row.contains("photos:read-only:p/") && row.contains("never"),
            "{row}"
        );
    }
}
