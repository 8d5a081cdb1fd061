//! Reading key material named by `*_env` and `*_file` keys. Errors name the key path,
//! the file path or the variable name, never the value read.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use zeroize::Zeroizing;

use super::ConfigError;
use crate::secret::SecretKey;

/// Key files are tiny; anything larger is a mistake (or not a key file) and is refused
/// before it is read into memory.
const MAX_KEY_FILE_BYTES: u64 = 4096;

/// The longest environment-variable name accepted in a `*_env` key.
const MAX_ENV_NAME: usize = 128;

/// The value of the environment variable named by `key_path` (`…_env = "NAME"`).
pub(super) fn from_env(
    key_path: &str,
    name: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<SecretKey, ConfigError> {
    if !is_env_name(name) {
        // The value may be a secret pasted into the wrong key, so it is not shown.
        return Err(ConfigError::invalid(
            key_path,
            "not a valid environment variable name (letters, digits and '_'); \
             is a secret pasted here? put the variable's name, not its value",
        ));
    }
    let value = Zeroizing::new(env(name).unwrap_or_default());
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(ConfigError::invalid(
            key_path,
            format!(
                "environment variable {} is not set or empty",
                shown_name(name)
            ),
        ));
    }
    Ok(SecretKey::new(trimmed))
}

/// The trimmed contents of a key file. With `private`, a file that group or others
/// may access in any way is refused (Kubernetes: mount it with `defaultMode: 0400`).
pub(super) fn from_file(
    key_path: &str,
    file: &Path,
    private: bool,
) -> Result<SecretKey, ConfigError> {
    let shown = file.display();
    let fail = |what: String| ConfigError::invalid(key_path, format!("key file {shown}: {what}"));
    let mut handle = File::open(file).map_err(|e| fail(format!("cannot open ({e})")))?;
    // Checked on the opened handle so the file read is the file whose mode was checked.
    let meta = handle
        .metadata()
        .map_err(|e| fail(format!("cannot stat ({e})")))?;
    if !meta.is_file() {
        return Err(fail("not a regular file".to_owned()));
    }
    if private {
        check_private(&meta).map_err(fail)?;
    }
    if meta.len() > MAX_KEY_FILE_BYTES {
        return Err(fail(format!("larger than {MAX_KEY_FILE_BYTES} bytes")));
    }
    let mut text = Zeroizing::new(String::new());
    (&mut handle)
        .take(MAX_KEY_FILE_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| fail(format!("cannot read as UTF-8 text ({})", e.kind())))?;
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(fail("is empty".to_owned()));
    }
    if trimmed.len() as u64 > MAX_KEY_FILE_BYTES {
        return Err(fail(format!("larger than {MAX_KEY_FILE_BYTES} bytes")));
    }
    Ok(SecretKey::new(trimmed))
}

#[cfg(unix)]
fn check_private(meta: &std::fs::Metadata) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "group or others have access (mode {mode:04o}); refusing it, run chmod 600 on it"
        ));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(_meta: &std::fs::Metadata) -> Result<(), String> {
    Ok(())
}

/// A portable environment-variable name.
fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    first_ok && name.len() <= MAX_ENV_NAME && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Conventional names (`UPPER_CASE`) are shown in errors; anything else might be a
/// mixed-case secret pasted into a `*_env` key, so it is withheld.
fn shown_name(name: &str) -> String {
    let conventional = name
        .chars()
        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
    if conventional {
        name.to_owned()
    } else {
        "(name withheld: not UPPER_CASE, it might be a secret)".to_owned()
    }
}
