//! Sealing secrets at rest (AES-256-GCM) and loading the root key that seals them.
//!
//! Sealed layout: `version (1 byte) || nonce (12 bytes) || ciphertext || tag (16 bytes)`.
//! The AAD is `version || "stowage-sealed-secret\0" || access key id`, so a ciphertext
//! only opens in the row it was written for and under the format it claims: copying a
//! sealed secret onto another credential's row fails to open.
//!
//! The root key comes from `STOWAGE_SECRET_KEY` (64 hex chars, or base64 of 32 bytes)
//! or from a key file (hex) that is created with mode 0600 on first use.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use aes_gcm::aead::{Aead, AeadInPlace, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use rand::RngCore;
use rand::rngs::OsRng;
use zeroize::Zeroizing;

use crate::secret::{RootKey, SecretBytes};

/// The only sealed format this build writes and reads.
pub const FORMAT_VERSION: u8 = 1;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
const AAD_LABEL: &[u8] = b"stowage-sealed-secret\0";
/// Key files are tiny; anything bigger is not a key file.
const MAX_KEY_FILE_LEN: u64 = 4096;

/// Why a sealed value did not open. Carries no key or plaintext material.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    #[error("sealed value is too short ({0} bytes)")]
    TooShort(usize),
    #[error("sealed value has unknown format version {0}")]
    UnknownVersion(u8),
    #[error("sealed value failed authentication (wrong root key, wrong row, or tampered)")]
    Authentication,
}

/// Why the root key could not be loaded. Names paths, never key material.
#[derive(Debug, thiserror::Error)]
pub enum RootKeyError {
    #[error("STOWAGE_SECRET_KEY must be 64 hex characters or base64 of 32 bytes")]
    BadEnv,
    #[error("root key file {path} must hold 64 hex characters (or base64 of 32 bytes)")]
    BadFile { path: PathBuf },
    #[error(
        "root key file {path} is accessible by group or others (mode {mode:o}); run `chmod 600 {path}`"
    )]
    Permissions { path: PathBuf, mode: u32 },
    #[error("root key file {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

fn aad(version: u8, access_key_id: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(1 + AAD_LABEL.len() + access_key_id.len());
    aad.push(version);
    aad.extend_from_slice(AAD_LABEL);
    aad.extend_from_slice(access_key_id.as_bytes());
    aad
}

fn cipher(root: &RootKey) -> Aes256Gcm {
    Aes256Gcm::new(root.expose().into())
}

/// Seal `plaintext` for the row of `access_key_id` under a fresh random nonce.
#[must_use]
pub fn seal(root: &RootKey, access_key_id: &str, plaintext: &[u8]) -> Vec<u8> {
    let mut nonce = [0u8; NONCE_LEN];
    OsRng.fill_bytes(&mut nonce);
    seal_with_nonce(root, access_key_id, plaintext, nonce)
}

fn seal_with_nonce(root: &RootKey, ak: &str, plaintext: &[u8], nonce: [u8; NONCE_LEN]) -> Vec<u8> {
    let aad = aad(FORMAT_VERSION, ak);
    let payload = Payload {
        msg: plaintext,
        aad: &aad,
    };
    // AES-GCM encryption only fails for messages over ~64 GiB; secrets are bytes long.
    let ct = cipher(root)
        .encrypt(Nonce::from_slice(&nonce), payload)
        .unwrap_or_default();
    let mut out = Vec::with_capacity(1 + NONCE_LEN + ct.len());
    out.push(FORMAT_VERSION);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
    out
}

/// Open a value sealed by [`seal`] for the same `access_key_id` under the same root key.
pub fn open(root: &RootKey, access_key_id: &str, sealed: &[u8]) -> Result<SecretBytes, SealError> {
    if sealed.len() < 1 + NONCE_LEN + TAG_LEN {
        return Err(SealError::TooShort(sealed.len()));
    }
    let (version, rest) = (sealed[0], &sealed[1..]);
    if version != FORMAT_VERSION {
        return Err(SealError::UnknownVersion(version));
    }
    let (nonce, ct) = rest.split_at(NONCE_LEN);
    let mut buf = Zeroizing::new(ct.to_vec());
    cipher(root)
        .decrypt_in_place(
            Nonce::from_slice(nonce),
            &aad(version, access_key_id),
            &mut *buf,
        )
        .map_err(|_| SealError::Authentication)?;
    Ok(buf)
}

/// Parse a root key given as 64 hex chars or as base64 (padded or not) of 32 bytes.
pub fn parse_root_key(text: &str) -> Option<RootKey> {
    let text = text.trim();
    let mut bytes = Zeroizing::new([0u8; 32]);
    if text.len() == 64 && hex::decode_to_slice(text, &mut *bytes).is_ok() {
        return Some(RootKey::from_bytes(*bytes));
    }
    let engines = [
        base64::engine::general_purpose::STANDARD,
        base64::engine::general_purpose::STANDARD_NO_PAD,
    ];
    for engine in engines {
        if let Ok(decoded) = engine.decode(text).map(Zeroizing::new)
            && decoded.len() == 32
        {
            bytes.copy_from_slice(&decoded);
            return Some(RootKey::from_bytes(*bytes));
        }
    }
    None
}

/// Load the root key: from the `STOWAGE_SECRET_KEY` value when given, else from
/// `key_file`, which is generated (32 random bytes, hex, mode 0600) when missing.
pub fn load_root_key(env_value: Option<&str>, key_file: &Path) -> Result<RootKey, RootKeyError> {
    if let Some(value) = env_value {
        return parse_root_key(value).ok_or(RootKeyError::BadEnv);
    }
    match read_key_file(key_file) {
        Err(RootKeyError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
            create_key_file(key_file)
        }
        other => other,
    }
}

/// Read an existing key file with the same checks as the configured one (mode 0600
/// or stricter, 32 bytes as hex or base64). A missing file is an error, not created.
pub fn load_key_file(path: &Path) -> Result<RootKey, RootKeyError> {
    read_key_file(path)
}

/// Create a new key file (32 random bytes, hex, mode 0600); an existing path is refused.
pub fn generate_key_file(path: &Path) -> Result<RootKey, RootKeyError> {
    if fs::symlink_metadata(path).is_ok() {
        return Err(RootKeyError::Io {
            path: path.to_path_buf(),
            source: io::Error::new(io::ErrorKind::AlreadyExists, "the file already exists"),
        });
    }
    create_key_file(path)
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> RootKeyError + '_ {
    move |source| RootKeyError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn read_key_file(path: &Path) -> Result<RootKey, RootKeyError> {
    let meta = fs::metadata(path).map_err(io_err(path))?;
    // Group or other access to the key means other local users could unseal every secret.
    let mode = meta.mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(RootKeyError::Permissions {
            path: path.to_path_buf(),
            mode,
        });
    }
    if meta.len() > MAX_KEY_FILE_LEN {
        return Err(RootKeyError::BadFile {
            path: path.to_path_buf(),
        });
    }
    let text = Zeroizing::new(fs::read_to_string(path).map_err(io_err(path))?);
    parse_root_key(&text).ok_or_else(|| RootKeyError::BadFile {
        path: path.to_path_buf(),
    })
}

fn create_key_file(path: &Path) -> Result<RootKey, RootKeyError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io_err(dir))?;
    let mut bytes = Zeroizing::new([0u8; 32]);
    OsRng.fill_bytes(&mut *bytes);
    let text = Zeroizing::new(hex::encode(&bytes[..]) + "\n");
    match place_key_file(dir, path, &text) {
        Ok(()) => {
            if let Ok(d) = File::open(dir) {
                let _ = d.sync_all();
            }
            tracing::warn!(
                path = %path.display(),
                "generated a new root key; back it up: without it sealed secrets are lost"
            );
            Ok(RootKey::from_bytes(*bytes))
        }
        // Another process created it first: use theirs.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => read_key_file(path),
        Err(e) => Err(io_err(path)(e)),
    }
}

/// Write the key to a private temporary file, then hard-link it into place: the link
/// fails if the key file appeared meanwhile, and no reader ever sees a partly written
/// key file. Filesystems without hard links get a direct `O_EXCL` create instead.
fn place_key_file(dir: &Path, path: &Path, text: &str) -> io::Result<()> {
    let tmp = dir.join(format!(
        ".stowage-key.{}.{:x}.tmp",
        std::process::id(),
        OsRng.next_u64()
    ));
    let linked = write_private(&tmp, text).and_then(|()| fs::hard_link(&tmp, path));
    let _ = fs::remove_file(&tmp);
    match linked {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => write_private(path, text),
        other => other,
    }
}

fn write_private(path: &Path, text: &str) -> io::Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn key(b: u8) -> RootKey {
        RootKey::from_bytes([b; 32])
    }

    #[test]
    fn sealed_secret_round_trips() {
        let sealed = seal(&key(1), "AK1", b"top secret");
        assert_eq!(sealed[0], FORMAT_VERSION);
        assert_eq!(sealed.len(), 1 + NONCE_LEN + 10 + TAG_LEN);
        assert_eq!(
            open(&key(1), "AK1", &sealed).unwrap().as_slice(),
            b"top secret"
        );
    }

    #[test]
    fn tampering_with_any_part_fails_to_open() {
        let sealed = seal(&key(1), "AK1", b"top secret");
        for (i, expect) in [
            (0, SealError::UnknownVersion(FORMAT_VERSION ^ 1)),
            (3, SealError::Authentication),
            (1 + NONCE_LEN + 2, SealError::Authentication),
            (sealed.len() - 1, SealError::Authentication),
        ] {
            let mut bad = sealed.clone();
            bad[i] ^= 1;
            assert_eq!(open(&key(1), "AK1", &bad).unwrap_err(), expect, "byte {i}");
        }
        assert_eq!(
            open(&key(1), "AK1", &sealed[..20]).unwrap_err(),
            SealError::TooShort(20)
        );
    }

    #[test]
    fn a_sealed_value_does_not_open_under_another_access_key_or_root_key() {
        let sealed = seal(&key(1), "AK1", b"top secret");
        assert_eq!(
            open(&key(1), "AK2", &sealed).unwrap_err(),
            SealError::Authentication
        );
        assert_eq!(
            open(&key(2), "AK1", &sealed).unwrap_err(),
            SealError::Authentication
        );
    }

    #[test]
    fn the_format_version_is_bound_into_the_aad() {
        // A ciphertext produced under version 1's AAD must not open as another version
        // even if a future build accepted that version byte.
        let nonce = [7u8; NONCE_LEN];
        let sealed = seal_with_nonce(&key(1), "AK", b"x", nonce);
        let ct = &sealed[1 + NONCE_LEN..];
        let other = cipher(&key(1)).decrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: ct,
                aad: &aad(2, "AK"),
            },
        );
        assert!(other.is_err());
    }

    #[test]
    fn each_seal_uses_a_fresh_nonce() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..1000 {
            let s = seal(&key(1), "AK", b"same");
            assert!(seen.insert(s[1..1 + NONCE_LEN].to_vec()), "nonce repeated");
        }
    }

    #[test]
    fn root_keys_parse_from_hex_and_base64() {
        let hexed = "ab".repeat(32);
        assert_eq!(parse_root_key(&hexed).unwrap().expose(), &[0xab; 32]);
        assert_eq!(
            parse_root_key(&format!("{hexed}\n")).unwrap().expose(),
            &[0xab; 32]
        );
        let b64 = base64::engine::general_purpose::STANDARD.encode([9u8; 32]);
        assert_eq!(parse_root_key(&b64).unwrap().expose(), &[9; 32]);
        assert_eq!(
            parse_root_key(b64.trim_end_matches('=')).unwrap().expose(),
            &[9; 32]
        );
    }

    #[test]
    fn malformed_root_keys_are_rejected() {
        let short_b64 = base64::engine::general_purpose::STANDARD.encode([9u8; 31]);
        for bad in [
            "",
            "ab",
            &"ab".repeat(31),
            &"zz".repeat(32),
            &"ab".repeat(33),
            &short_b64,
        ] {
            assert!(parse_root_key(bad).is_none(), "{bad:?}");
        }
        assert!(matches!(
            load_root_key(Some("nope"), Path::new("/x")),
            Err(RootKeyError::BadEnv)
        ));
    }

    #[test]
    fn the_env_value_wins_over_the_key_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("key");
        let k = load_root_key(Some(&"01".repeat(32)), &file).unwrap();
        assert_eq!(k.expose(), &[1; 32]);
        assert!(
            !file.exists(),
            "no key file is created when the env value is set"
        );
    }

    #[test]
    fn a_missing_key_file_is_created_0600_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("sub/root.key");
        let first = load_root_key(None, &file).unwrap();
        let mode = fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let second = load_root_key(None, &file).unwrap();
        assert_eq!(first.expose(), second.expose());
        assert_eq!(
            fs::read_dir(dir.path().join("sub")).unwrap().count(),
            1,
            "temp file left"
        );
    }

    #[test]
    fn racing_first_starts_agree_on_one_key() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("root.key");
        let keys: Vec<[u8; 32]> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| s.spawn(|| *load_root_key(None, &file).unwrap().expose()))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(
            keys.iter().all(|k| *k == keys[0]),
            "two different keys were generated"
        );
    }

    #[test]
    fn a_key_file_readable_by_others_is_refused_naming_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("root.key");
        fs::write(&file, "ab".repeat(32)).unwrap();
        fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
        let err = load_root_key(None, &file).unwrap_err();
        assert!(matches!(err, RootKeyError::Permissions { mode: 0o644, .. }));
        assert!(err.to_string().contains(&file.display().to_string()));
    }

    #[test]
    fn a_key_file_with_garbage_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("root.key");
        fs::write(&file, "not a key").unwrap();
        fs::set_permissions(&file, fs::Permissions::from_mode(0o600)).unwrap();
        let err = load_root_key(None, &file).unwrap_err();
        assert!(matches!(err, RootKeyError::BadFile { .. }));
        assert!(!err.to_string().contains("not a key"));
    }
}
