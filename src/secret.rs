//! Secret material in newtypes: redacted `Debug`, zeroized on drop, compared in
//! constant time. Nothing in this module ever formats a secret's bytes.

use std::fmt;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// An S3 secret access key (a tenant's virtual secret or a backend admin secret), with
/// its fingerprint computed once (it is checked on every request's key-cache hit).
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct SecretKey {
    secret: String,
    fingerprint: [u8; 32],
}

impl SecretKey {
    #[must_use]
    pub fn new(secret: impl Into<String>) -> Self {
        let secret = secret.into();
        let fingerprint = Sha256::digest(secret.as_bytes()).into();
        Self {
            secret,
            fingerprint,
        }
    }

    /// The secret's text, for key derivation and sealing only.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.secret
    }

    /// SHA-256 of the secret: binds cached derived keys to the secret they came from,
    /// so a rotation invalidates them without an explicit flush.
    #[must_use]
    pub fn fingerprint(&self) -> [u8; 32] {
        self.fingerprint
    }

    #[must_use]
    pub fn len(&self) -> usize {
        self.secret.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.secret.is_empty()
    }
}

impl PartialEq for SecretKey {
    fn eq(&self, other: &Self) -> bool {
        self.secret.as_bytes().ct_eq(other.secret.as_bytes()).into()
    }
}
impl Eq for SecretKey {}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

/// The 256-bit root key that seals secrets at rest.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct RootKey([u8; 32]);

impl RootKey {
    #[must_use]
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    #[must_use]
    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }

    /// A short, non-secret identifier of the key (first 8 hex chars of SHA-256 over
    /// a domain-separated input), safe to print so operators can tell keys apart.
    #[must_use]
    pub fn key_id(&self) -> String {
        let mut h = Sha256::new();
        h.update(b"stowage-root-key-id\0");
        h.update(self.0);
        hex::encode(&h.finalize()[..4])
    }
}

impl fmt::Debug for RootKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RootKey(<redacted>)")
    }
}

/// A SigV4 signing key derived from a secret for one (date, region, service).
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct SigningKey([u8; 32]);

impl SigningKey {
    #[must_use]
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    #[must_use]
    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningKey(<redacted>)")
    }
}

/// Constant-time comparison of two ASCII signatures (hex strings).
#[must_use]
pub fn ct_eq_str(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

/// A buffer that is wiped when dropped, for transient plaintext.
pub type SecretBytes = Zeroizing<Vec<u8>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_contains_the_secret() {
        let s = SecretKey::new("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY");
        assert_eq!(format!("{s:?}"), "SecretKey(<redacted>)");
        let r = RootKey::from_bytes([7; 32]);
        assert_eq!(format!("{r:?}"), "RootKey(<redacted>)");
        let k = SigningKey::from_bytes([9; 32]);
        assert_eq!(format!("{k:?}"), "SigningKey(<redacted>)");
    }

    #[test]
    fn secrets_compare_by_value() {
        assert_eq!(SecretKey::new("abc"), SecretKey::new("abc"));
        assert_ne!(SecretKey::new("abc"), SecretKey::new("abd"));
        assert_ne!(SecretKey::new("abc"), SecretKey::new("abcd"));
        assert!(ct_eq_str("00ff", "00ff"));
        assert!(!ct_eq_str("00ff", "00fe"));
    }

    #[test]
    fn fingerprint_changes_with_the_secret() {
        assert_ne!(
            SecretKey::new("a").fingerprint(),
            SecretKey::new("b").fingerprint()
        );
        let want: [u8; 32] = Sha256::digest(b"a").into();
        assert_eq!(SecretKey::new("a").fingerprint(), want);
    }
}
