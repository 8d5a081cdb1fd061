//! Typed values: durations, addresses, ranges, names, and the key paths in errors.

use std::time::Duration;

use super::{BACKEND, error_of, parse};
use crate::config::{Config, ConfigError, LogFormat};

#[test]
fn empty_file_gives_the_defaults() {
    assert_eq!(parse("").expect("empty config"), Config::default());
}

#[test]
fn defaults_validate_but_serving_needs_a_backend() {
    Config::default().validate().expect("defaults are valid");
    let err = Config::default()
        .validate_for_serve()
        .expect_err("no backend");
    assert!(err.to_string().starts_with("backends: "), "{err}");
}

#[test]
fn durations_accept_humantime_text() {
    let c =
        parse("[s3_proxy]\nmax_clock_skew = \"1h 30m\"\nidle_timeout = \"500ms\"").expect("valid");
    assert_eq!(c.s3_proxy.max_clock_skew, Duration::from_secs(90 * 60));
    assert_eq!(c.s3_proxy.idle_timeout, Duration::from_millis(500));
}

#[test]
fn invalid_duration_names_key_and_value() {
    let err = error_of("[s3_proxy]\nmax_clock_skew = \"abc\"", &[]);
    assert!(
        err.starts_with("s3_proxy.max_clock_skew: invalid duration \"abc\""),
        "{err}"
    );
}

#[test]
fn presign_expiry_above_seven_days_is_refused() {
    let err = error_of("[s3_proxy]\nmax_presign_expiry = \"8d\"", &[]);
    assert!(
        err.starts_with("s3_proxy.max_presign_expiry: must be at most 7days"),
        "{err}"
    );
    parse("[s3_proxy]\nmax_presign_expiry = \"7d\"").expect("7d is the limit");
}

#[test]
fn zero_timeouts_are_refused() {
    let err = error_of("[upstream]\nconnect_timeout = \"0s\"", &[]);
    assert!(
        err.starts_with("upstream.connect_timeout: must be greater than zero"),
        "{err}"
    );
}

#[test]
fn absurd_durations_are_refused() {
    let err = error_of("[quotas]\nscan_interval = \"1000years\"", &[]);
    assert!(
        err.starts_with("quotas.scan_interval: must be at most"),
        "{err}"
    );
}

#[test]
fn listen_must_be_ip_and_port() {
    let err = error_of("[admin]\nlisten = \"localhost:8080\"", &[]);
    assert!(
        err.starts_with("admin.listen: invalid listen address \"localhost:8080\""),
        "{err}"
    );
    let c = parse("[s3_proxy]\nlisten = \"[::1]:9000\"").expect("IPv6 listen");
    assert_eq!(c.s3_proxy.listen.to_string(), "[::1]:9000");
}

#[test]
fn admin_and_proxy_cannot_share_a_listen_address() {
    let err = error_of("[s3_proxy]\nlisten = \"0.0.0.0:8080\"", &[]);
    assert!(err.starts_with("admin.listen: must differ"), "{err}");
}

#[test]
fn limits_out_of_range_name_the_key() {
    let err = error_of("[s3_proxy]\nmax_header_bytes = 10", &[]);
    assert!(
        err.starts_with("s3_proxy.max_header_bytes: 10 is out of range"),
        "{err}"
    );
    let err = error_of("[s3_proxy]\nmax_connections = -1", &[]);
    assert!(err.starts_with("s3_proxy.max_connections: "), "{err}");
}

#[test]
fn wrong_type_names_the_key() {
    let err = error_of("[s3_proxy]\nanonymous_enabled = \"yes\"", &[]);
    assert!(
        err.starts_with("s3_proxy.anonymous_enabled: invalid type"),
        "{err}"
    );
}

#[test]
fn unknown_keys_are_named_with_their_full_path() {
    let err = error_of("[s3_proxy.kubernetes]\nenable = true", &[]);
    assert!(
        err.starts_with("s3_proxy.kubernetes.enable: unknown field `enable`"),
        "{err}"
    );
    let err = error_of("colour = \"blue\"", &[]);
    assert!(err.starts_with("colour: unknown field `colour`"), "{err}");
}

#[test]
fn trusted_proxies_take_cidrs_and_bare_ips() {
    let c = parse("[server]\ntrusted_proxies = [\"10.1.2.3/8\", \"192.0.2.7\", \"fd00::/8\"]")
        .expect("valid");
    let shown: Vec<String> = c
        .server
        .trusted_proxies
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(shown, ["10.0.0.0/8", "192.0.2.7/32", "fd00::/8"]);
    let err = error_of("[server]\ntrusted_proxies = [\"10.0.0.0/33\"]", &[]);
    assert!(
        err.starts_with("server.trusted_proxies: invalid CIDR \"10.0.0.0/33\""),
        "{err}"
    );
}

#[test]
fn host_suffixes_are_normalised_and_checked() {
    let c = parse("[s3_proxy]\nhost_suffixes = [\".S3.Example.com\"]").expect("valid");
    assert_eq!(c.s3_proxy.host_suffixes, ["s3.example.com"]);
    let err = error_of(
        "[s3_proxy]\nhost_suffixes = [\"ok.example\", \"bad host\"]",
        &[],
    );
    assert!(
        err.starts_with("s3_proxy.host_suffixes[1]: invalid host suffix"),
        "{err}"
    );
}

#[test]
fn kubernetes_namespace_must_be_a_dns_label() {
    let err = error_of("[s3_proxy.kubernetes]\nnamespace = \"Stowage_System\"", &[]);
    assert!(
        err.starts_with("s3_proxy.kubernetes.namespace: invalid namespace"),
        "{err}"
    );
}

#[test]
fn log_level_accepts_levels_and_directives_but_not_typos() {
    for ok in [
        "debug",
        "WARN",
        "off",
        "info,stowage=debug",
        "stowage::auth=trace",
    ] {
        parse(&format!("[log]\nlevel = \"{ok}\"")).unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
    for bad in ["debg", "", "stowage=loud"] {
        let err = error_of(&format!("[log]\nlevel = \"{bad}\""), &[]);
        assert!(err.starts_with("log.level: "), "{bad}: {err}");
    }
}

#[test]
fn log_format_is_text_or_json() {
    let c = parse("[log]\nformat = \"json\"").expect("valid");
    assert_eq!(c.log.format, LogFormat::Json);
    let err = error_of("[log]\nformat = \"xml\"", &[]);
    assert!(
        err.starts_with("log.format: unknown variant `xml`"),
        "{err}"
    );
}

#[test]
fn database_paths_cannot_coincide() {
    let err = error_of("[database]\npath = \"x\"\nsecret_key_file = \"x\"", &[]);
    assert!(err.starts_with("database.secret_key_file: "), "{err}");
}

#[test]
fn syntax_errors_give_a_position_and_never_the_line() {
    let text = format!("{BACKEND}\nsecret_access_key = \"wJalrXUtnFEMI/K7MDENG\n");
    let err = crate::config::from_toml_str(&text, &|_| None).expect_err("unterminated string");
    assert!(
        matches!(err, ConfigError::Syntax { line: 8, .. }),
        "{err:?}"
    );
    let shown = err.to_string();
    assert!(shown.starts_with("TOML syntax error at line 8"), "{shown}");
    assert!(!shown.contains("wJalrXUtnFEMI"), "{shown}");
}

#[test]
fn key_path_is_exposed_for_invalid_values() {
    let err = crate::config::from_toml_str("[log]\nformat = 1", &|_| None).expect_err("bad");
    assert_eq!(err.key_path(), Some("log.format"));
}
