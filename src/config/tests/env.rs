//! `STOWAGE_<SECTION>__<KEY>` overrides.

use std::time::Duration;

use super::{env_of, error_of};
use crate::config::env::check_unknown;
use crate::config::from_toml_str;

#[test]
fn overrides_replace_file_values_with_the_right_types() {
    let env = env_of(&[
        ("STOWAGE_S3_PROXY__LISTEN", "127.0.0.1:9000"),
        ("STOWAGE_S3_PROXY__GLOBAL_RPS", "100"),
        ("STOWAGE_S3_PROXY__KUBERNETES__ENABLED", "true"),
        ("STOWAGE_SERVER__TRUSTED_PROXIES", "[\"10.0.0.0/8\"]"),
        ("STOWAGE_QUOTAS__SCAN_INTERVAL", "1m"),
        ("STOWAGE_LOG__LEVEL", "debug"),
    ]);
    let c = from_toml_str("[s3_proxy]\nlisten = \"0.0.0.0:1\"\n", &env).expect("valid");
    assert_eq!(c.s3_proxy.listen.to_string(), "127.0.0.1:9000");
    assert_eq!(c.s3_proxy.global_rps, 100);
    assert!(c.s3_proxy.kubernetes.enabled);
    assert_eq!(c.server.trusted_proxies.len(), 1);
    assert_eq!(c.quotas.scan_interval, Duration::from_secs(60));
    assert_eq!(c.log.level, "debug");
}

#[test]
fn string_keys_keep_numeric_looking_text() {
    let env = env_of(&[("STOWAGE_S3_PROXY__KUBERNETES__NAMESPACE", "123")]);
    let c = from_toml_str("", &env).expect("valid");
    assert_eq!(c.s3_proxy.kubernetes.namespace, "123");
}

#[test]
fn optional_keys_can_be_set_from_the_environment() {
    let env = env_of(&[("STOWAGE_S3_PROXY__KUBERNETES__KUBECONFIG", "/etc/kube")]);
    let c = from_toml_str("", &env).expect("valid");
    assert_eq!(
        c.s3_proxy.kubernetes.kubeconfig.as_deref(),
        Some(std::path::Path::new("/etc/kube"))
    );
}

#[test]
fn invalid_override_names_key_and_variable() {
    let err = error_of("", &[("STOWAGE_S3_PROXY__GLOBAL_RPS", "lots")]);
    assert!(
        err.starts_with("s3_proxy.global_rps: invalid type"),
        "{err}"
    );
    assert!(
        err.ends_with("(from environment variable STOWAGE_S3_PROXY__GLOBAL_RPS)"),
        "{err}"
    );
}

#[test]
fn override_failing_validation_names_the_variable() {
    let err = error_of("", &[("STOWAGE_S3_PROXY__MAX_PRESIGN_EXPIRY", "30d")]);
    assert!(
        err.starts_with("s3_proxy.max_presign_expiry: must be at most"),
        "{err}"
    );
    assert!(
        err.contains("STOWAGE_S3_PROXY__MAX_PRESIGN_EXPIRY"),
        "{err}"
    );
}

#[test]
fn override_into_a_non_table_is_refused() {
    let err = error_of(
        "s3_proxy = 5",
        &[("STOWAGE_S3_PROXY__LISTEN", "127.0.0.1:1")],
    );
    assert!(err.starts_with("s3_proxy: must be a table"), "{err}");
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn unknown_override_variables_are_errors() {
    let err = check_unknown(&names(&["STOWAGE_S3_PROXY__LISEN"])).expect_err("typo");
    assert!(
        err.to_string().starts_with("s3_proxy.lisen: unknown key"),
        "{err}"
    );
}

#[test]
fn variables_without_a_separator_are_not_overrides() {
    check_unknown(&names(&[
        "STOWAGE_SECRET_KEY",
        "STOWAGE_CONFIG",
        "PATH",
        "STOWAGE_LOG__LEVEL",
    ]))
    .expect("not overrides, or known");
}

#[test]
fn backends_cannot_be_overridden() {
    let err = check_unknown(&names(&["STOWAGE_BACKENDS__0__ENDPOINT"])).expect_err("refused");
    assert!(
        err.to_string()
            .contains("[[backends]] cannot be overridden"),
        "{err}"
    );
}

#[test]
fn lower_case_override_gets_a_hint() {
    let err = check_unknown(&names(&["STOWAGE_log__level"])).expect_err("refused");
    assert!(
        err.to_string().contains("upper case: STOWAGE_LOG__LEVEL"),
        "{err}"
    );
}
