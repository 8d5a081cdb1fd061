//! `stowage cors …` and `stowage anonymous …` as an operator runs them: the built
//! binary against a real config and database, checking exit codes, messages and what
//! landed in the store a running proxy reads.

use std::path::PathBuf;
use std::process::{Command, Output};

use stowage::credentials::anonymous::AnonymousMode;
use stowage::credentials::seal::load_root_key;
use stowage::credentials::sqlite::SqliteStore;

const ONE_BACKEND: &str = r#"
[database]
path = "stowage.db"
secret_key_file = "stowage.key"

[[backends]]
id = "local"
endpoint = "http://127.0.0.1:9"
access_key_id = "admin"
secret_access_key_env = "BROWSER_CLI_BACKEND_SECRET"
"#;

const SECOND_BACKEND: &str = r#"
[[backends]]
id = "archive"
endpoint = "http://127.0.0.1:10"
access_key_id = "admin"
secret_access_key_env = "BROWSER_CLI_BACKEND_SECRET"
"#;

/// What `aws s3api get-bucket-cors` prints (and `put-bucket-cors` takes).
const AWS_CLI_RULES: &str = r#"{
    "CORSRules": [
        {
            "ID": "web",
            "AllowedHeaders": ["*"],
            "AllowedMethods": ["GET", "PUT", "POST"],
            "AllowedOrigins": ["https://app.example.com"],
            "ExposeHeaders": ["ETag", "x-amz-meta-owner"],
            "MaxAgeSeconds": 3000
        }
    ]
}"#;

struct Env {
    dir: tempfile::TempDir,
    config: PathBuf,
}

fn env(config: &str) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stowage.toml");
    std::fs::write(&path, config).unwrap();
    Env { dir, config: path }
}

impl Env {
    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_stowage"))
            .args(args)
            .arg("--config")
            .arg(&self.config)
            .env("BROWSER_CLI_BACKEND_SECRET", "backend-secret")
            .env_remove("STOWAGE_SECRET_KEY")
            .env_remove("STOWAGE_CONFIG")
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        text(&out.stdout)
    }

    fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            !out.status.success(),
            "{args:?} succeeded: {}",
            text(&out.stdout)
        );
        text(&out.stderr)
    }

    fn store(&self) -> SqliteStore {
        let key = load_root_key(None, &self.dir.path().join("stowage.key")).unwrap();
        SqliteStore::open(&self.dir.path().join("stowage.db"), key).unwrap()
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn cors_set_from_aws_cli_output_then_show_and_clear() {
    let e = env(ONE_BACKEND);
    let file = e.dir.path().join("rules.json");
    std::fs::write(&file, AWS_CLI_RULES).unwrap();
    let set = e.ok(&["cors", "set", "photos", "--file", file.to_str().unwrap()]);
    assert!(set.contains("https://app.example.com"), "{set}");
    let stored = e.store().list_cors().unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(
        (stored[0].0.backend.as_str(), stored[0].0.bucket.as_str()),
        ("local", "photos")
    );
    assert_eq!(stored[0].1.rules[0].id.as_deref(), Some("web"));

    let table = e.ok(&["cors", "show"]);
    let row = table.lines().find(|l| l.contains("photos")).expect(&table);
    assert!(
        row.starts_with("local") && row.contains("GET,PUT,POST"),
        "{row}"
    );
    // One bucket's --json is S3's shape: it round-trips into `cors set`.
    let json = e.ok(&["cors", "show", "photos", "--json"]);
    let theirs: serde_json::Value = serde_json::from_str(AWS_CLI_RULES).unwrap();
    let ours: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(ours, theirs);
    e.ok(&["cors", "set", "assets", "--json", &json]);
    let lines = e.ok(&["cors", "show", "--json"]);
    assert_eq!(lines.lines().count(), 2, "{lines}");

    let cleared = e.ok(&["cors", "clear", "photos"]);
    assert!(cleared.contains("local/photos"), "{cleared}");
    assert!(
        e.fails(&["cors", "show", "photos"])
            .contains("no CORS rules")
    );
    assert!(
        e.fails(&["cors", "clear", "photos"])
            .contains("no CORS rules")
    );
    assert_eq!(e.store().list_cors().unwrap().len(), 1, "assets stays");
}

#[test]
fn invalid_rules_are_refused_naming_the_field_and_store_nothing() {
    let e = env(ONE_BACKEND);
    for (json, field) in [
        (r#"{"CORSRules":[]}"#, "(CORSRules)"),
        (
            r#"{"CORSRules":[{"AllowedOrigins":["*"],"AllowedMethods":["PATCH"]}]}"#,
            "(CORSRules[0].AllowedMethods)",
        ),
        (
            r#"{"CORSRules":[{"AllowedOrigins":["*"]}]}"#,
            "(CORSRules[0].AllowedMethods)",
        ),
        (
            r#"{"CORSRules":[{"AllowedOrigins":["*"],"AllowedMethods":["GET"],"AllowedHeader":["*"]}]}"#,
            "(CORSRules[0].AllowedHeader)",
        ),
        ("{not json", "(body)"),
    ] {
        let err = e.fails(&["cors", "set", "photos", "--json", json]);
        assert!(err.contains(&format!("--json {field}")), "{json}: {err}");
    }
    let err = e.fails(&["cors", "set", "photos"]);
    assert!(err.contains("--file") && err.contains("--json"), "{err}");
    let missing = e.dir.path().join("absent.json");
    let err = e.fails(&["cors", "set", "photos", "--file", missing.to_str().unwrap()]);
    assert!(err.contains("absent.json"), "{err}");
    assert!(e.store().list_cors().unwrap().is_empty());
}

#[test]
fn unknown_backends_are_named_with_the_configured_ones() {
    let e = env(&format!("{ONE_BACKEND}{SECOND_BACKEND}"));
    let rules = r#"{"CORSRules":[{"AllowedOrigins":["*"],"AllowedMethods":["GET"]}]}"#;
    for args in [
        &[
            "cors",
            "set",
            "photos",
            "--backend",
            "nope",
            "--json",
            rules,
        ][..],
        &[
            "anonymous",
            "set",
            "photos",
            "--backend",
            "nope",
            "--mode",
            "ReadOnly",
        ][..],
        &["anonymous", "remove", "photos", "--backend", "nope"][..],
    ] {
        let err = e.fails(args);
        assert!(err.contains("`nope`"), "{args:?}: {err}");
        assert!(err.contains("local, archive"), "{args:?}: {err}");
    }
    // Two backends: --backend is required.
    let err = e.fails(&["cors", "set", "photos", "--json", rules]);
    assert!(
        err.contains("--backend") && err.contains("2 backends"),
        "{err}"
    );
    e.ok(&[
        "cors",
        "set",
        "photos",
        "--backend",
        "archive",
        "--json",
        rules,
    ]);
    let table = e.ok(&["cors", "show", "--backend", "archive"]);
    assert!(table.lines().any(|l| l.starts_with("archive")), "{table}");
    assert!(
        !e.ok(&["cors", "show", "--backend", "local"])
            .contains("photos")
    );
}

#[test]
fn anonymous_set_list_remove() {
    let e = env(ONE_BACKEND);
    let out = e.run(&[
        "anonymous",
        "set",
        "public",
        "--mode",
        "ReadOnly",
        "--rps",
        "5",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("ReadOnly"));
    assert!(
        text(&out.stderr).contains("s3_proxy.anonymous_enabled is false"),
        "the kill switch is pointed out"
    );
    e.ok(&["anonymous", "set", "locked", "--mode", "none"]);
    let b = e.store().list_anonymous().unwrap();
    assert_eq!(b.len(), 2);
    let public = b.iter().find(|b| b.bucket == "public").unwrap();
    assert_eq!(
        (
            public.backend.as_str(),
            public.mode,
            public.per_source_ip_rps
        ),
        ("local", AnonymousMode::ReadOnly, Some(5.0))
    );

    let out = e.run(&["anonymous", "list"]);
    let table = text(&out.stdout);
    assert!(
        table.contains("public") && table.contains("locked"),
        "{table}"
    );
    assert!(
        text(&out.stderr).contains("managed by those Secrets"),
        "{}",
        text(&out.stderr)
    );
    let lines = e.ok(&["anonymous", "list", "--json"]);
    let first: serde_json::Value = serde_json::from_str(lines.lines().next().unwrap()).unwrap();
    assert_eq!(first["bucket"], "locked");
    assert_eq!(
        (&first["mode"], &first["source"]),
        (&"None".into(), &"sqlite".into())
    );

    let removed = e.ok(&["anonymous", "remove", "public"]);
    assert!(removed.contains("local/public"), "{removed}");
    let err = e.fails(&["anonymous", "remove", "public"]);
    assert!(err.contains("no anonymous binding"), "{err}");
    assert_eq!(e.store().list_anonymous().unwrap().len(), 1);
}

#[test]
fn bad_binding_arguments_are_refused_naming_the_argument() {
    let e = env(ONE_BACKEND);
    let err = e.fails(&["anonymous", "set", "public", "--mode", "write"]);
    assert!(
        err.contains("--mode") && err.contains("ReadOnly or None"),
        "{err}"
    );
    let err = e.fails(&[
        "anonymous",
        "set",
        "public",
        "--mode",
        "ReadOnly",
        "--rps=-1",
    ]);
    assert!(err.contains("--rps (per_source_ip_rps)"), "{err}");
    let err = e.fails(&["anonymous", "set", "Not_A_Bucket", "--mode", "ReadOnly"]);
    assert!(
        err.contains("BUCKET") && err.contains("Not_A_Bucket"),
        "{err}"
    );
    assert!(e.store().list_anonymous().unwrap().is_empty());
}
