//! The configuration layer: TOML file → environment overrides → typed, validated
//! [`Config`]. The caller binds sockets only after this succeeds.
//!
//! * Every key, with its default, is documented where it is declared and in
//!   `config.example.toml`; every section implements `Default`.
//! * Unknown keys and invalid values are errors whose `Display` names the full key path
//!   (`s3_proxy.max_clock_skew: invalid duration "abc" …`) and never a secret value.
//! * `STOWAGE_<SECTION>__<KEY>` environment variables override keys (the scheme is in
//!   `env.rs` and `config.example.toml`);
//!   `STOWAGE_SECRET_KEY` is the root key, not an override.
//! * Relative paths (`database.path`, `database.secret_key_file`, key files,
//!   `kubeconfig`) resolve against the config file's directory when loaded with [`load`].
//! * Backend admin secrets come only from `*_env` or `*_file`; a key file that group or
//!   others can access is refused.

mod backend;
mod env;
mod error;
mod proxy;
mod secrets;
mod sections;
mod serde_fmt;
mod validate;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use backend::{Backend, DEFAULT_REGION};
pub use error::ConfigError;
pub use proxy::{KubernetesConfig, MAX_PRESIGN_EXPIRY, ProxyConfig};
pub use sections::{
    AdminConfig, AuditConfig, DatabaseConfig, LogConfig, LogFormat, QuotasConfig, SampleRate,
    ServerConfig, UpstreamConfig,
};

use backend::RawBackend;

/// The validated configuration. `Config::default()` is a complete config without
/// backends (add some before serving; see [`Config::validate_for_serve`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Config {
    pub s3_proxy: ProxyConfig,
    pub admin: AdminConfig,
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    pub log: LogConfig,
    pub quotas: QuotasConfig,
    pub upstream: UpstreamConfig,
    pub audit: AuditConfig,
    pub backends: Vec<Backend>,
}

impl Config {
    /// The backend with this id.
    #[must_use]
    pub fn backend(&self, id: &str) -> Option<&Backend> {
        self.backends.iter().find(|b| b.id == id)
    }
}

/// The file as written: sections are already typed; backends are resolved later.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawConfig {
    s3_proxy: ProxyConfig,
    admin: AdminConfig,
    server: ServerConfig,
    database: DatabaseConfig,
    log: LogConfig,
    quotas: QuotasConfig,
    upstream: UpstreamConfig,
    audit: AuditConfig,
    backends: Vec<RawBackend>,
}

/// Where `*_env` values and relative paths come from.
struct Sources<'a> {
    env: &'a dyn Fn(&str) -> Option<String>,
    base_dir: Option<&'a Path>,
}

impl Sources<'_> {
    fn resolve(&self, path: &Path) -> PathBuf {
        match self.base_dir {
            Some(base) if path.is_relative() => base.join(path),
            _ => path.to_owned(),
        }
    }
}

/// Reads, overrides from the process environment, and validates the config at `path`.
/// A `STOWAGE_…__…` variable that overrides no key is an error.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    let names: Vec<String> = std::env::vars_os()
        .filter_map(|(name, _)| name.into_string().ok())
        .collect();
    env::check_unknown(&names)?;
    let lookup = |name: &str| std::env::var(name).ok();
    let sources = Sources {
        env: &lookup,
        base_dir: path.parent().filter(|p| !p.as_os_str().is_empty()),
    };
    build(&text, &sources)
}

/// What `stowage config check FILE` runs: [`load`] plus [`Config::validate_for_serve`].
pub fn check(path: &Path) -> Result<Config, ConfigError> {
    let config = load(path)?;
    config.validate_for_serve()?;
    Ok(config)
}

/// Parses and validates TOML text with an injected environment (overrides and `*_env`
/// lookups). Relative paths stay relative (to the working directory).
pub fn from_toml_str(
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    build(
        text,
        &Sources {
            env,
            base_dir: None,
        },
    )
}

fn build(text: &str, src: &Sources<'_>) -> Result<Config, ConfigError> {
    let mut table = parse_table(text)?;
    let applied = env::apply(&mut table, src.env)?;
    let raw = deserialize(table).map_err(|e| applied.annotate(e))?;
    finish(raw, src).map_err(|e| applied.annotate(e))
}

fn parse_table(text: &str) -> Result<toml::Table, ConfigError> {
    text.parse::<toml::Table>().map_err(|e| {
        let offset = e.span().map_or(0, |s| s.start).min(text.len());
        let before = text.get(..offset).unwrap_or("");
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        ConfigError::Syntax {
            line,
            column,
            message: e.message().trim().replace('\n', "; "),
        }
    })
}

/// Typed deserialization with the full key path of the first failure (for an unknown
/// key, serde_path_to_error's path already ends with the key itself).
fn deserialize(table: toml::Table) -> Result<RawConfig, ConfigError> {
    serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
        let path = e.path().to_string();
        let message = e.inner().message().trim().replace('\n', "; ");
        ConfigError::invalid(path, message)
    })
}

/// Resolves paths and key material, then runs every check.
fn finish(raw: RawConfig, src: &Sources<'_>) -> Result<Config, ConfigError> {
    let RawConfig {
        mut s3_proxy,
        mut admin,
        server,
        mut database,
        log,
        quotas,
        upstream,
        audit,
        backends,
    } = raw;
    for suffix in &mut s3_proxy.host_suffixes {
        *suffix = suffix.trim().trim_matches('.').to_ascii_lowercase();
    }
    s3_proxy.kubernetes.kubeconfig = s3_proxy.kubernetes.kubeconfig.map(|p| src.resolve(&p));
    database.path = src.resolve(&database.path);
    database.secret_key_file = src.resolve(&database.secret_key_file);
    admin.token_file = admin.token_file.map(|p| src.resolve(&p));
    let mut config = Config {
        s3_proxy,
        admin,
        server,
        database,
        log,
        quotas,
        upstream,
        audit,
        backends: Vec::new(),
    };
    config.check_proxy()?;
    config.check_other_sections()?;
    config.admin.token = admin_token(&config.admin, src)?;
    config.backends = backend::resolve_all(backends, src)?;
    config.validate()?;
    Ok(config)
}

fn admin_token(
    admin: &AdminConfig,
    src: &Sources<'_>,
) -> Result<Option<crate::secret::SecretKey>, ConfigError> {
    if let Some(name) = &admin.token_env {
        return secrets::from_env("admin.token_env", name, src.env).map(Some);
    }
    if let Some(file) = &admin.token_file {
        return secrets::from_file("admin.token_file", file, true).map(Some);
    }
    Ok(None)
}
