//! `[admin]`: the token sources and the keys that put `/metrics` and the probes behind it.

use super::{env_of, error_of, parse};
use crate::config::Config;

#[test]
fn metrics_and_probes_are_open_by_default() {
    let c = parse("").expect("empty config");
    assert!(!c.admin.protect_metrics);
    assert!(!c.admin.protect_probes);
}

#[test]
fn protect_keys_parse_when_a_token_is_configured() {
    let text = "[admin]\ntoken_env = \"TOK\"\nprotect_metrics = true\nprotect_probes = true";
    let c = crate::config::from_toml_str(text, &env_of(&[("TOK", "a-long-admin-token")]))
        .expect("valid");
    assert!(c.admin.protect_metrics && c.admin.protect_probes);
    assert_eq!(c.admin.token.expect("token").expose(), "a-long-admin-token");
}

#[test]
fn protect_metrics_without_a_token_is_refused_naming_the_key() {
    let err = error_of("[admin]\nprotect_metrics = true", &[]);
    assert!(
        err.starts_with("admin.protect_metrics: requires admin.token_env"),
        "{err}"
    );
}

#[test]
fn protect_probes_without_a_token_is_refused_naming_the_key() {
    let err = error_of("[admin]\nprotect_probes = true", &[]);
    assert!(
        err.starts_with("admin.protect_probes: requires admin.token_env"),
        "{err}"
    );
}

#[test]
fn protect_keys_must_be_booleans() {
    let err = error_of("[admin]\nprotect_metrics = \"yes\"", &[]);
    assert!(err.starts_with("admin.protect_metrics"), "{err}");
}

#[test]
fn a_config_built_in_code_may_protect_with_an_inline_token() {
    let mut c = Config::default();
    c.admin.protect_metrics = true;
    assert!(c.validate().is_err(), "no token at all is refused");
    c.admin.token = Some(crate::secret::SecretKey::new("inline-token-for-tests"));
    c.validate().expect("a token set in code is enough");
}

#[test]
fn protect_keys_can_be_overridden_from_the_environment() {
    let c = crate::config::from_toml_str(
        "[admin]\ntoken_env = \"TOK\"",
        &env_of(&[
            ("TOK", "t0ken-t0ken-t0ken"),
            ("STOWAGE_ADMIN__PROTECT_PROBES", "true"),
        ]),
    )
    .expect("valid");
    assert!(c.admin.protect_probes);
    assert!(!c.admin.protect_metrics);
}
