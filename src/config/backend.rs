//! `[[backends]]`: the upstream S3 servers and their admin keys. The raw form is what
//! the file says; [`Backend`] is the validated form with the key material resolved.

use std::collections::HashMap;
use std::path::PathBuf;

use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};

use super::{ConfigError, Sources, secrets};
use crate::secret::SecretKey;

/// A validated upstream S3 server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backend {
    /// Unique id, `[a-z0-9_-]{1,63}`; credentials name their backend by it.
    pub id: String,
    /// Scheme and authority only (`http://minio:9000/`); the path is always `/`.
    pub endpoint: http::Uri,
    /// Region the proxy signs upstream requests for.
    pub region: String,
    /// The backend admin access key id.
    pub access_key_id: String,
    /// The backend admin secret (redacted in `Debug`).
    pub secret_access_key: SecretKey,
}

/// One `[[backends]]` table as written. `default` lets missing required keys reach
/// validation, which reports them by key path.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawBackend {
    /// Required. Default: none.
    pub id: Option<String>,
    /// Required: `http://` or `https://` host with optional port. Default: none.
    pub endpoint: Option<String>,
    /// Default `"us-east-1"`.
    pub region: Option<String>,
    /// Admin access key id, inline (it is not a secret). Exactly one of
    /// `access_key_id`, `access_key_id_env`, `access_key_id_file`.
    pub access_key_id: Option<String>,
    pub access_key_id_env: Option<String>,
    pub access_key_id_file: Option<PathBuf>,
    /// Accepted only to refuse it with a useful message; never stored or shown.
    #[serde(skip_serializing)]
    pub secret_access_key: Option<IgnoredAny>,
    /// Exactly one of `secret_access_key_env` / `secret_access_key_file`.
    pub secret_access_key_env: Option<String>,
    pub secret_access_key_file: Option<PathBuf>,
}

/// Region used when a backend names none.
pub const DEFAULT_REGION: &str = "us-east-1";

/// Validates every backend and checks ids are unique.
pub(super) fn resolve_all(
    raw: Vec<RawBackend>,
    src: &Sources<'_>,
) -> Result<Vec<Backend>, ConfigError> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut out = Vec::with_capacity(raw.len());
    for (i, b) in raw.into_iter().enumerate() {
        let backend = resolve(i, b, src)?;
        if let Some(first) = seen.insert(backend.id.clone(), i) {
            return Err(duplicate(i, first, &backend.id));
        }
        out.push(backend);
    }
    Ok(out)
}

fn resolve(i: usize, b: RawBackend, src: &Sources<'_>) -> Result<Backend, ConfigError> {
    let at = |key: &str| format!("backends[{i}].{key}");
    if b.secret_access_key.is_some() {
        return Err(ConfigError::invalid(
            at("secret_access_key"),
            "inline secrets are not accepted; use secret_access_key_env (an environment \
             variable's name) or secret_access_key_file (a file readable only by its owner)",
        ));
    }
    let id = required(b.id, &at("id"))?;
    check_id(&id, &at("id"))?;
    let endpoint = parse_endpoint(&required(b.endpoint, &at("endpoint"))?, &at("endpoint"))?;
    let region = b.region.unwrap_or_else(|| DEFAULT_REGION.to_owned());
    check_region(&region, &at("region"))?;
    let access_key_id = access_key(
        &b.access_key_id,
        &b.access_key_id_env,
        &b.access_key_id_file,
        &at,
        src,
    )?;
    check_access_key_id(access_key_id.expose(), &at("access_key_id"))?;
    let secret_access_key = secret(
        &b.secret_access_key_env,
        &b.secret_access_key_file,
        &at,
        src,
    )?;
    Ok(Backend {
        id,
        endpoint,
        region,
        access_key_id: access_key_id.expose().to_owned(),
        secret_access_key,
    })
}

pub(super) fn duplicate(i: usize, first: usize, id: &str) -> ConfigError {
    ConfigError::invalid(
        format!("backends[{i}].id"),
        format!("duplicate backend id {id:?} (also backends[{first}].id)"),
    )
}

fn required(value: Option<String>, path: &str) -> Result<String, ConfigError> {
    value.ok_or_else(|| ConfigError::invalid(path, "missing; every [[backends]] entry needs it"))
}

fn access_key(
    inline: &Option<String>,
    env: &Option<String>,
    file: &Option<PathBuf>,
    at: &dyn Fn(&str) -> String,
    src: &Sources<'_>,
) -> Result<SecretKey, ConfigError> {
    match (inline, env, file) {
        (Some(v), None, None) => Ok(SecretKey::new(v.trim())),
        (None, Some(name), None) => secrets::from_env(&at("access_key_id_env"), name, src.env),
        // Not a secret, so the file's mode is not checked.
        (None, None, Some(p)) => {
            secrets::from_file(&at("access_key_id_file"), &src.resolve(p), false)
        }
        (None, None, None) => Err(ConfigError::invalid(
            at("access_key_id"),
            "missing; set one of access_key_id, access_key_id_env, access_key_id_file",
        )),
        _ => Err(ConfigError::invalid(
            at("access_key_id"),
            "set only one of access_key_id, access_key_id_env, access_key_id_file",
        )),
    }
}

fn secret(
    env: &Option<String>,
    file: &Option<PathBuf>,
    at: &dyn Fn(&str) -> String,
    src: &Sources<'_>,
) -> Result<SecretKey, ConfigError> {
    match (env, file) {
        (Some(name), None) => secrets::from_env(&at("secret_access_key_env"), name, src.env),
        (None, Some(p)) => secrets::from_file(&at("secret_access_key_file"), &src.resolve(p), true),
        (None, None) => Err(ConfigError::invalid(
            at("secret_access_key_env"),
            "missing; set one of secret_access_key_env, secret_access_key_file",
        )),
        (Some(_), Some(_)) => Err(ConfigError::invalid(
            at("secret_access_key_env"),
            "set only one of secret_access_key_env, secret_access_key_file",
        )),
    }
}

pub(super) fn check_id(id: &str, path: &str) -> Result<(), ConfigError> {
    let ok = !id.is_empty()
        && id.len() <= 63
        && id
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'_');
    if ok {
        return Ok(());
    }
    Err(ConfigError::invalid(
        path,
        format!("invalid backend id {id:?}; use 1 to 63 of a-z, 0-9, '-', '_'"),
    ))
}

pub(super) fn check_region(region: &str, path: &str) -> Result<(), ConfigError> {
    let ok = !region.is_empty()
        && region.len() <= 64
        && region
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'));
    if ok {
        return Ok(());
    }
    Err(ConfigError::invalid(
        path,
        format!("invalid region {region:?}; use 1 to 64 of letters, digits, '-', '_', '.'"),
    ))
}

pub(super) fn check_access_key_id(id: &str, path: &str) -> Result<(), ConfigError> {
    // It goes into the SigV4 credential scope, where '/' separates fields.
    let ok =
        !id.is_empty() && id.len() <= 128 && id.bytes().all(|c| c.is_ascii_graphic() && c != b'/');
    if ok {
        return Ok(());
    }
    Err(ConfigError::invalid(
        path,
        "invalid access key id; use 1 to 128 printable ASCII characters without '/' or spaces",
    ))
}

/// `http(s)://host[:port]` with nothing else; rebuilt as scheme + authority + `/`.
/// A base path is refused for now: re-signing would have to prefix it to every key.
pub(super) fn parse_endpoint(text: &str, path: &str) -> Result<http::Uri, ConfigError> {
    let bad = |why: &str| ConfigError::invalid(path, format!("invalid endpoint: {why}"));
    // Checked before parsing so that user info (which may hold credentials) is never
    // echoed by a parser message.
    if text.contains('@') {
        return Err(bad(
            "user info is not allowed; give keys with access_key_id* and secret_access_key_*",
        ));
    }
    let uri: http::Uri = text.trim().parse().map_err(|_| {
        bad("not a URL; write e.g. \"http://127.0.0.1:9000\" or \"https://s3.example.com\"")
    })?;
    let scheme = match uri.scheme_str() {
        Some("http") => http::uri::Scheme::HTTP,
        Some("https") => http::uri::Scheme::HTTPS,
        _ => return Err(bad("the scheme must be http:// or https://")),
    };
    let authority = uri.authority().cloned().ok_or_else(|| bad("no host"))?;
    if authority.host().is_empty() {
        return Err(bad("no host"));
    }
    if uri.query().is_some() {
        return Err(bad("a query string is not allowed"));
    }
    if !matches!(uri.path(), "" | "/") {
        return Err(bad(
            "a base path is not supported; give scheme, host and port only",
        ));
    }
    http::Uri::builder()
        .scheme(scheme)
        .authority(authority)
        .path_and_query("/")
        .build()
        .map_err(|_| bad("not a URL"))
}
