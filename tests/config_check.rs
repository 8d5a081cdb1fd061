//! What `stowage config check FILE` reports: every refused config names the key path
//! of the problem (and never a secret).

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use stowage::config::{self, ConfigError};

const BACKEND: &str = r#"
[[backends]]
id = "minio"
endpoint = "http://127.0.0.1:9000"
access_key_id = "admin"
secret_access_key_env = "BACKEND_SECRET"
"#;

fn env_of(vars: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
    move |name| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| (*v).to_owned())
    }
}

fn refused(text: &str, vars: &'static [(&'static str, &'static str)]) -> String {
    match config::from_toml_str(text, &env_of(vars)) {
        Ok(c) => panic!("accepted: {c:?}"),
        Err(e) => e.to_string(),
    }
}

fn write_file(dir: &Path, name: &str, text: &str, mode: u32) -> PathBuf {
    let path = dir.join(name);
    let mut f = std::fs::File::create(&path).expect("create");
    f.write_all(text.as_bytes()).expect("write");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    path
}

#[test]
fn unknown_top_level_key_is_named() {
    let err = refused(
        &format!("listen = \"0.0.0.0:1\"\n{BACKEND}"),
        &[("BACKEND_SECRET", "s")],
    );
    assert!(err.starts_with("listen: unknown field `listen`"), "{err}");
}

#[test]
fn unknown_nested_key_is_named_with_its_path() {
    let err = refused("[s3_proxy]\nlisen = \"0.0.0.0:9000\"\n", &[]);
    assert!(
        err.starts_with("s3_proxy.lisen: unknown field `lisen`"),
        "{err}"
    );
    assert!(
        err.contains("`listen`"),
        "the message lists the valid keys: {err}"
    );
}

#[test]
fn invalid_duration_is_named() {
    let err = refused("[s3_proxy]\nmax_clock_skew = \"abc\"\n", &[]);
    assert!(
        err.starts_with("s3_proxy.max_clock_skew: invalid duration \"abc\""),
        "{err}"
    );
}

#[test]
fn invalid_listen_address_is_named() {
    let err = refused("[s3_proxy]\nlisten = \"0.0.0.0:99999\"\n", &[]);
    assert!(
        err.starts_with("s3_proxy.listen: invalid listen address"),
        "{err}"
    );
}

#[test]
fn world_readable_key_file_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = write_file(dir.path(), "backend.key", "very-secret-value\n", 0o644);
    let text = BACKEND.replace(
        "secret_access_key_env = \"BACKEND_SECRET\"",
        &format!("secret_access_key_file = {:?}", key.display().to_string()),
    );
    let err = refused(&text, &[]);
    assert!(
        err.starts_with("backends[0].secret_access_key_file: key file "),
        "{err}"
    );
    assert!(
        err.contains(&key.display().to_string()),
        "names the file: {err}"
    );
    assert!(!err.contains("very-secret-value"), "{err}");
}

#[test]
fn inline_secret_is_refused_without_echo() {
    let text = BACKEND.replace(
        "secret_access_key_env = \"BACKEND_SECRET\"",
        "secret_access_key = \"wJalrXUtnFEMI/K7MDENG\"",
    );
    let err = refused(&text, &[]);
    assert!(
        err.starts_with("backends[0].secret_access_key: inline secrets are not accepted"),
        "{err}"
    );
    assert!(
        err.contains("secret_access_key_env") && err.contains("secret_access_key_file"),
        "{err}"
    );
    assert!(!err.contains("wJalrXUtnFEMI"), "{err}");
}

#[test]
fn missing_backend_id_is_named() {
    let err = refused(
        &BACKEND.replace("id = \"minio\"\n", ""),
        &[("BACKEND_SECRET", "s")],
    );
    assert!(err.starts_with("backends[0].id: missing"), "{err}");
}

#[test]
fn duplicate_backend_ids_are_named() {
    let err = refused(&format!("{BACKEND}{BACKEND}"), &[("BACKEND_SECRET", "s")]);
    assert!(
        err.starts_with("backends[1].id: duplicate backend id \"minio\""),
        "{err}"
    );
}

#[test]
fn env_override_is_applied() {
    let env = env_of(&[
        ("BACKEND_SECRET", "s"),
        ("STOWAGE_S3_PROXY__LISTEN", "127.0.0.1:9000"),
    ]);
    let c = config::from_toml_str(BACKEND, &env).expect("valid");
    assert_eq!(c.s3_proxy.listen.to_string(), "127.0.0.1:9000");
}

#[test]
fn env_override_is_validated_and_names_key_and_variable() {
    let err = refused(
        BACKEND,
        &[
            ("BACKEND_SECRET", "s"),
            ("STOWAGE_S3_PROXY__LISTEN", "nowhere"),
        ],
    );
    assert!(
        err.starts_with("s3_proxy.listen: invalid listen address \"nowhere\""),
        "{err}"
    );
    assert!(err.contains("STOWAGE_S3_PROXY__LISTEN"), "{err}");
}

#[test]
fn check_loads_a_file_and_resolves_relative_paths_next_to_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_file(dir.path(), "backend.key", "s\n", 0o600);
    let text = BACKEND.replace(
        "secret_access_key_env = \"BACKEND_SECRET\"",
        "secret_access_key_file = \"backend.key\"",
    );
    let path = write_file(dir.path(), "stowage.toml", &text, 0o644);
    let c = config::check(&path).expect("valid");
    assert_eq!(c.database.path, dir.path().join("stowage.db"));
    assert_eq!(c.database.secret_key_file, dir.path().join("stowage.key"));
    assert_eq!(c.backends[0].secret_access_key.expose(), "s");
}

#[test]
fn check_requires_a_backend() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write_file(dir.path(), "stowage.toml", "", 0o644);
    let err = config::check(&path).expect_err("no backend");
    assert!(err.to_string().starts_with("backends: "), "{err}");
}

#[test]
fn missing_file_is_a_read_error() {
    let err = config::load(Path::new("/nonexistent/stowage.toml")).expect_err("missing");
    assert!(matches!(err, ConfigError::Read { .. }), "{err:?}");
    assert!(
        err.to_string().contains("/nonexistent/stowage.toml"),
        "{err}"
    );
}
