//! Environment overrides: `STOWAGE_<SECTION>__<KEY>` sets `<section>.<key>`, with `__`
//! between path segments (`STOWAGE_S3_PROXY__KUBERNETES__ENABLED` sets
//! `s3_proxy.kubernetes.enabled`). Overrides are written into the parsed TOML tree
//! before typed deserialization, so they are validated exactly like the file.
//!
//! Values: string keys take the variable's text as is; number, boolean and list keys
//! take a TOML literal (`100`, `true`, `["10.0.0.0/8"]`). `[[backends]]` cannot be
//! overridden. Variables without `__` (`STOWAGE_SECRET_KEY`, the root key) are not
//! overrides and are ignored here.

use std::collections::HashSet;

use super::{ConfigError, RawConfig};

const PREFIX: &str = "STOWAGE_";
const SEPARATOR: &str = "__";

/// Which keys the environment set, so errors about them can say where the value came from.
#[derive(Debug, Default)]
pub(super) struct Applied {
    /// (dotted key path, variable name)
    keys: Vec<(String, String)>,
}

impl Applied {
    /// Adds "(from environment variable X)" to an error about an overridden key.
    pub(super) fn annotate(&self, err: ConfigError) -> ConfigError {
        let ConfigError::Invalid { path, message } = err else {
            return err;
        };
        let origin = self.keys.iter().find(|(key, _)| {
            path == *key
                || path
                    .strip_prefix(key.as_str())
                    .is_some_and(|rest| rest.starts_with('.'))
        });
        match origin {
            Some((_, var)) => ConfigError::Invalid {
                message: format!("{message} (from environment variable {var})"),
                path,
            },
            None => ConfigError::Invalid { path, message },
        }
    }
}

/// A key that can be overridden, and whether its value is plain text.
struct Leaf {
    path: Vec<String>,
    text: bool,
}

/// Every overridable key, read off the serialized defaults (so a new field is
/// overridable without a list to maintain). Unset optional keys serialize as JSON
/// `null`; all of them are strings or paths.
fn leaves() -> Vec<Leaf> {
    let mut out = Vec::new();
    if let Ok(serde_json::Value::Object(map)) = serde_json::to_value(RawConfig::default()) {
        for (key, value) in map {
            if key != "backends" {
                walk(vec![key], &value, &mut out);
            }
        }
    }
    out
}

fn walk(path: Vec<String>, value: &serde_json::Value, out: &mut Vec<Leaf>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, child) in map {
                let mut p = path.clone();
                p.push(key.clone());
                walk(p, child, out);
            }
        }
        serde_json::Value::String(_) | serde_json::Value::Null => {
            out.push(Leaf { path, text: true })
        }
        _ => out.push(Leaf { path, text: false }),
    }
}

/// The variable that overrides `path` (`["log", "level"]` → `STOWAGE_LOG__LEVEL`).
pub(super) fn var_name(path: &[String]) -> String {
    format!("{PREFIX}{}", path.join(SEPARATOR).to_ascii_uppercase())
}

/// Writes every override found through `env` into `table`.
pub(super) fn apply(
    table: &mut toml::Table,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Applied, ConfigError> {
    let mut applied = Applied::default();
    for leaf in leaves() {
        let var = var_name(&leaf.path);
        let Some(raw) = env(&var) else { continue };
        let value = if leaf.text {
            toml::Value::String(raw)
        } else {
            literal(raw)
        };
        insert(table, &leaf.path, value)?;
        applied.keys.push((leaf.path.join("."), var));
    }
    Ok(applied)
}

/// A TOML literal, or the text itself when it is not one (deserialization then reports
/// the type mismatch against the key).
fn literal(raw: String) -> toml::Value {
    match toml::from_str::<toml::Table>(&format!("v = {raw}")) {
        Ok(mut t) if t.len() == 1 => t.remove("v").unwrap_or(toml::Value::String(raw)),
        _ => toml::Value::String(raw),
    }
}

fn insert(table: &mut toml::Table, path: &[String], value: toml::Value) -> Result<(), ConfigError> {
    let Some((last, parents)) = path.split_last() else {
        return Ok(());
    };
    let mut current = table;
    for (depth, segment) in parents.iter().enumerate() {
        let entry = current
            .entry(segment.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        current = entry.as_table_mut().ok_or_else(|| {
            ConfigError::invalid(
                path[..=depth].join("."),
                format!(
                    "must be a table (an environment variable {} overrides a key in it)",
                    var_name(path)
                ),
            )
        })?;
    }
    current.insert(last.clone(), value);
    Ok(())
}

/// Refuses `STOWAGE_…__…` variables that override no key, so a typo is not silently
/// ignored. `names` are the names of the process environment.
pub(super) fn check_unknown(names: &[String]) -> Result<(), ConfigError> {
    let known: HashSet<String> = leaves().iter().map(|l| var_name(&l.path)).collect();
    for name in names {
        let Some(rest) = name.strip_prefix(PREFIX) else {
            continue;
        };
        if !rest.contains(SEPARATOR) || known.contains(name) {
            continue;
        }
        let path = rest
            .split(SEPARATOR)
            .collect::<Vec<_>>()
            .join(".")
            .to_ascii_lowercase();
        let hint = if known.contains(&name.to_ascii_uppercase()) {
            format!(
                "; write the variable in upper case: {}",
                name.to_ascii_uppercase()
            )
        } else if path.starts_with("backends") {
            "; [[backends]] cannot be overridden from the environment".to_owned()
        } else {
            String::new()
        };
        return Err(ConfigError::invalid(
            path,
            format!("unknown key (from environment variable {name}){hint}"),
        ));
    }
    Ok(())
}
