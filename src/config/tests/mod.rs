//! Unit tests of the configuration layer, by theme.

mod admin;
mod audit;
mod backends;
mod env;
mod example;
mod limits;
mod values;

use super::{Config, ConfigError, from_toml_str};

/// An environment with exactly these variables.
fn env_of(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let vars: Vec<(String, String)> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    move |name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
}

fn parse(text: &str) -> Result<Config, ConfigError> {
    from_toml_str(text, &env_of(&[]))
}

/// The error text of a config that must be refused.
fn error_of(text: &str, vars: &[(&str, &str)]) -> String {
    match from_toml_str(text, &env_of(vars)) {
        Ok(c) => panic!("config was accepted: {c:?}"),
        Err(e) => e.to_string(),
    }
}

/// A minimal valid backend whose secret comes from `SECRET`.
const BACKEND: &str = r#"
[[backends]]
id = "minio"
endpoint = "http://127.0.0.1:9000"
access_key_id = "admin"
secret_access_key_env = "SECRET"
"#;
