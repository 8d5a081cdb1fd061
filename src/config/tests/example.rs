//! `config.example.toml` is the documentation: it must parse, show the real defaults,
//! and name every key.

use std::collections::BTreeSet;

use super::{env_of, from_toml_str};
use crate::config::backend::RawBackend;
use crate::config::{Config, RawConfig};

const EXAMPLE: &str = include_str!("../../../config.example.toml");

#[test]
fn example_file_parses_and_shows_the_real_defaults() {
    let env = env_of(&[("STOWAGE_BACKEND_SECRET_ACCESS_KEY", "example-secret")]);
    let parsed = from_toml_str(EXAMPLE, &env).expect("config.example.toml must be valid");
    let defaults = Config::default();
    assert_eq!(parsed.s3_proxy, defaults.s3_proxy);
    assert_eq!(parsed.admin, defaults.admin);
    assert_eq!(parsed.server, defaults.server);
    assert_eq!(parsed.database, defaults.database);
    assert_eq!(parsed.log, defaults.log);
    assert_eq!(parsed.quotas, defaults.quotas);
    assert_eq!(parsed.upstream, defaults.upstream);
    assert_eq!(parsed.audit, defaults.audit);
    assert_eq!(parsed.backends.len(), 1);
    assert_eq!(parsed.backends[0].region, crate::config::DEFAULT_REGION);
    parsed
        .validate_for_serve()
        .expect("the example is servable");
}

/// (section header, key) for every leaf key of the serialized defaults, with unset
/// optional keys included (JSON keeps them as `null`).
fn schema_keys() -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    let raw = serde_json::to_value(RawConfig::default()).expect("defaults serialize");
    collect(String::new(), &raw, &mut out);
    let backend = serde_json::to_value(RawBackend::default()).expect("backend serializes");
    for key in backend.as_object().expect("a table").keys() {
        out.insert(("backends".to_owned(), key.clone()));
    }
    out
}

fn collect(section: String, value: &serde_json::Value, out: &mut BTreeSet<(String, String)>) {
    let Some(map) = value.as_object() else { return };
    for (key, child) in map {
        if key == "backends" {
            continue;
        }
        if child.is_object() {
            let sub = if section.is_empty() {
                key.clone()
            } else {
                format!("{section}.{key}")
            };
            collect(sub, child, out);
        } else {
            out.insert((section.clone(), key.clone()));
        }
    }
}

/// (section header, key) for every `key = …` line of the example, commented out or not.
fn documented_keys() -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    let mut section = String::new();
    for line in EXAMPLE.lines().map(str::trim) {
        if let Some(header) = line.strip_prefix('[') {
            section = header.trim_matches(['[', ']']).to_owned();
            continue;
        }
        let body = line.trim_start_matches('#').trim();
        let Some((key, _)) = body.split_once('=') else {
            continue;
        };
        let key = key.trim();
        if !key.is_empty() && key.bytes().all(|c| c.is_ascii_lowercase() || c == b'_') {
            out.insert((section.clone(), key.to_owned()));
        }
    }
    out
}

#[test]
fn every_key_is_documented_in_the_example_and_nothing_else_is() {
    let schema = schema_keys();
    let documented = documented_keys();
    let undocumented: Vec<_> = schema.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "keys missing from config.example.toml: {undocumented:?}"
    );
    let unknown: Vec<_> = documented.difference(&schema).collect();
    assert!(
        unknown.is_empty(),
        "config.example.toml documents unknown keys: {unknown:?}"
    );
}

#[test]
fn schema_includes_unset_optional_keys() {
    let schema = schema_keys();
    for (section, key) in [
        ("s3_proxy.kubernetes", "kubeconfig"),
        ("admin", "token_file"),
        ("backends", "id"),
    ] {
        assert!(
            schema.contains(&(section.to_owned(), key.to_owned())),
            "{section}.{key}"
        );
    }
}

/// The `stowage.toml` embedded in `deploy/configmap.yaml`, as the pod reads it.
const DEPLOY_CONFIGMAP: &str = include_str!("../../../deploy/configmap.yaml");

#[test]
fn the_deploy_configmap_holds_a_servable_config_with_the_informer_on() {
    let marker = "stowage.toml: |\n";
    let start = DEPLOY_CONFIGMAP.find(marker).expect("a stowage.toml key") + marker.len();
    let toml: String = DEPLOY_CONFIGMAP[start..]
        .lines()
        .map(|l| l.strip_prefix("    ").unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n");
    let env = env_of(&[
        ("STOWAGE_BACKEND_ACCESS_KEY_ID", "admin"),
        ("STOWAGE_BACKEND_SECRET_ACCESS_KEY", "secret"),
    ]);
    let parsed = from_toml_str(&toml, &env).expect("the ConfigMap's stowage.toml is valid");
    assert!(parsed.s3_proxy.kubernetes.enabled);
    assert_eq!(parsed.s3_proxy.kubernetes.namespace, "stowage-system");
    assert_eq!(parsed.s3_proxy.listen.port(), 8090);
    assert_eq!(parsed.admin.listen.port(), 8080);
    parsed
        .validate_for_serve()
        .expect("the deployed config is servable");
}
