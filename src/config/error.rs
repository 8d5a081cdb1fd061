//! The one error type of the configuration layer. Its `Display` names the key path
//! (`s3_proxy.listen`, `backends[1].secret_access_key_file`) and the problem, and never
//! a secret value: messages are built from our own text, key paths, file paths and
//! environment-variable names only.

use std::path::PathBuf;

/// Why a configuration could not be loaded or validated.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file itself could not be read.
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML. Only the position and the parser's message are kept:
    /// the parser's source snippet could show a secret pasted on the offending line.
    #[error("TOML syntax error at line {line}, column {column}: {message}")]
    Syntax {
        line: usize,
        column: usize,
        message: String,
    },
    /// A key is unknown, missing or has an invalid value.
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
}

impl ConfigError {
    pub(crate) fn invalid(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid {
            path: path.into(),
            message: message.into(),
        }
    }

    /// The dotted key path the error is about (`s3_proxy.max_clock_skew`,
    /// `backends[0].id`), when it is about one key.
    #[must_use]
    pub fn key_path(&self) -> Option<&str> {
        match self {
            Self::Invalid { path, .. } => Some(path),
            Self::Read { .. } | Self::Syntax { .. } => None,
        }
    }
}
