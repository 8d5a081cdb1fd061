//! `[[backends]]`: required keys, endpoints, key sources, and secrets never shown.

use std::io::Write;

use super::{BACKEND, env_of, error_of};
use crate::config::backend::parse_endpoint;
use crate::config::from_toml_str;

fn backend_with(extra: &str) -> String {
    format!("[[backends]]\nid = \"b\"\nendpoint = \"http://h:9000\"\n{extra}\n")
}

#[test]
fn backend_resolves_secret_from_env() {
    let c = from_toml_str(BACKEND, &env_of(&[("SECRET", "s3cr3t\n")])).expect("valid");
    let b = c.backend("minio").expect("backend");
    assert_eq!(b.endpoint.to_string(), "http://127.0.0.1:9000/");
    assert_eq!(b.region, "us-east-1");
    assert_eq!(b.access_key_id, "admin");
    assert_eq!(b.secret_access_key.expose(), "s3cr3t");
}

#[test]
fn debug_output_never_shows_secrets() {
    let c = from_toml_str(BACKEND, &env_of(&[("SECRET", "s3cr3t-value")])).expect("valid");
    assert!(!format!("{c:?}").contains("s3cr3t-value"));
}

#[test]
fn endpoints_are_scheme_and_authority_only() {
    for (text, want) in [
        ("http://127.0.0.1:9000", "http://127.0.0.1:9000/"),
        ("https://s3.example.com/", "https://s3.example.com/"),
        ("http://[::1]:9000", "http://[::1]:9000/"),
    ] {
        let uri = parse_endpoint(text, "e").unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(uri.to_string(), want);
    }
    for bad in [
        "ftp://h",
        "h:9000",
        "http://h/base",
        "http://h/?x=1",
        "",
        "http://",
    ] {
        assert!(parse_endpoint(bad, "e").is_err(), "{bad} accepted");
    }
}

#[test]
fn endpoint_user_info_is_refused_without_echo() {
    let err = error_of(
        &backend_with("").replace("http://h:9000", "http://ak:topsecret@h"),
        &[],
    );
    assert!(
        err.starts_with("backends[0].endpoint: invalid endpoint: user info"),
        "{err}"
    );
    assert!(!err.contains("topsecret"), "{err}");
}

#[test]
fn access_key_id_sources_are_exclusive() {
    let text = backend_with(
        "access_key_id = \"a\"\naccess_key_id_env = \"AK\"\nsecret_access_key_env = \"S\"",
    );
    let err = error_of(&text, &[("AK", "a"), ("S", "s")]);
    assert!(
        err.starts_with("backends[0].access_key_id: set only one"),
        "{err}"
    );
}

#[test]
fn access_key_id_from_env() {
    let text = backend_with("access_key_id_env = \"AK\"\nsecret_access_key_env = \"S\"");
    let c = from_toml_str(&text, &env_of(&[("AK", "from-env"), ("S", "s")])).expect("valid");
    assert_eq!(c.backends[0].access_key_id, "from-env");
}

#[test]
fn missing_secret_source_is_an_error() {
    let err = error_of(&backend_with("access_key_id = \"a\""), &[]);
    assert!(
        err.starts_with("backends[0].secret_access_key_env: missing"),
        "{err}"
    );
}

#[test]
fn unset_env_variable_is_named_when_conventional() {
    let err = error_of(
        &backend_with("access_key_id = \"a\"\nsecret_access_key_env = \"NOPE\""),
        &[],
    );
    assert!(
        err.contains("environment variable NOPE is not set"),
        "{err}"
    );
}

#[test]
fn secret_pasted_into_env_key_is_not_echoed() {
    for pasted in [
        "wJalrXUtnFEMI/K7MDENG+bPxRfiCY",
        "wJalrXUtnFEMIK7MDENGbPxRfiCY",
    ] {
        let text = backend_with(&format!(
            "access_key_id = \"a\"\nsecret_access_key_env = \"{pasted}\""
        ));
        let err = error_of(&text, &[]);
        assert!(
            err.starts_with("backends[0].secret_access_key_env: "),
            "{err}"
        );
        assert!(!err.contains(pasted), "{err}");
    }
}

#[test]
fn secret_file_is_read_and_trimmed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("secret");
    write_mode(&path, "from-file\n", 0o600);
    let text = backend_with(&format!(
        "access_key_id = \"a\"\nsecret_access_key_file = {:?}",
        path
    ));
    let c = from_toml_str(&text, &env_of(&[])).expect("valid");
    assert_eq!(c.backends[0].secret_access_key.expose(), "from-file");
}

#[test]
fn group_readable_secret_file_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("secret");
    write_mode(&path, "from-file", 0o640);
    let text = backend_with(&format!(
        "access_key_id = \"a\"\nsecret_access_key_file = {:?}",
        path
    ));
    let err = error_of(&text, &[]);
    assert!(
        err.starts_with("backends[0].secret_access_key_file: key file"),
        "{err}"
    );
    assert!(err.contains("mode 0640"), "{err}");
    assert!(!err.contains("from-file"), "{err}");
}

#[test]
fn oversized_key_file_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("secret");
    write_mode(&path, &"x".repeat(5000), 0o600);
    let text = backend_with(&format!(
        "access_key_id = \"a\"\nsecret_access_key_file = {:?}",
        path
    ));
    assert!(error_of(&text, &[]).contains("larger than 4096 bytes"));
}

#[test]
fn admin_token_file_is_checked_like_key_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("token");
    write_mode(&path, "tok", 0o644);
    let err = error_of(&format!("[admin]\ntoken_file = {:?}", path), &[]);
    assert!(err.starts_with("admin.token_file: key file"), "{err}");
    write_mode(&path, "tok", 0o600);
    let c =
        from_toml_str(&format!("[admin]\ntoken_file = {:?}", path), &env_of(&[])).expect("valid");
    assert_eq!(c.admin.token.expect("token").expose(), "tok");
}

#[test]
fn admin_token_sources_are_exclusive() {
    let err = error_of(
        "[admin]\ntoken_env = \"T\"\ntoken_file = \"/t\"",
        &[("T", "x")],
    );
    assert!(err.starts_with("admin.token_env: set only one"), "{err}");
}

#[test]
fn invalid_backend_ids_are_refused() {
    let err = error_of(
        &backend_with("").replace("id = \"b\"", "id = \"Bad Id\""),
        &[],
    );
    assert!(
        err.starts_with("backends[0].id: invalid backend id"),
        "{err}"
    );
}

#[test]
fn backends_built_in_code_are_validated() {
    let mut c = from_toml_str(BACKEND, &env_of(&[("SECRET", "s")])).expect("valid");
    c.backends.push(c.backends[0].clone());
    let err = c.validate().expect_err("duplicate");
    assert!(
        err.to_string().starts_with("backends[1].id: duplicate"),
        "{err}"
    );
    c.backends.truncate(1);
    c.backends[0].endpoint = "http://h:1/base".parse().expect("uri");
    let err = c.validate().expect_err("base path");
    assert!(
        err.to_string().starts_with("backends[0].endpoint: "),
        "{err}"
    );
}

fn write_mode(path: &std::path::Path, text: &str, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    let mut f = std::fs::File::create(path).expect("create");
    f.write_all(text.as_bytes()).expect("write");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}
