//! `stowage quota set|show|clear|recount` as an operator runs them: the built binary
//! against a real config and database, checking exit codes and messages.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

use stowage::credentials::seal::load_root_key;
use stowage::credentials::sqlite::SqliteStore;
use stowage::quota::BucketKey;
use stowage::quota::ledger::Usage;

const ONE_BACKEND: &str = r#"
[database]
path = "stowage.db"
secret_key_file = "stowage.key"

[[backends]]
id = "local"
endpoint = "http://127.0.0.1:9"
access_key_id = "admin"
secret_access_key_env = "QUOTA_CLI_BACKEND_SECRET"
"#;

const SECOND_BACKEND: &str = r#"
[[backends]]
id = "archive"
endpoint = "http://127.0.0.1:10"
access_key_id = "admin"
secret_access_key_env = "QUOTA_CLI_BACKEND_SECRET"
"#;

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
            .arg("quota")
            .args(args)
            .arg("--config")
            .arg(&self.config)
            .env("QUOTA_CLI_BACKEND_SECRET", "backend-secret")
            .env_remove("STOWAGE_SECRET_KEY")
            .env_remove("STOWAGE_CONFIG")
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        String::from_utf8(out.stdout).unwrap()
    }

    fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            !out.status.success(),
            "{args:?} succeeded: {}",
            stdout(&out)
        );
        stderr(&out)
    }

    /// The store as a running proxy would open it.
    fn store(&self) -> SqliteStore {
        let key = load_root_key(None, &self.dir.path().join("stowage.key")).unwrap();
        SqliteStore::open(&self.dir.path().join("stowage.db"), key).unwrap()
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn row<'a>(table: &'a str, bucket: &str) -> &'a str {
    table
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some(bucket))
        .unwrap_or_else(|| panic!("no row for {bucket} in\n{table}"))
}

#[test]
fn set_then_show_lists_the_bucket_limits() {
    let e = env(ONE_BACKEND);
    e.ok(&[
        "set",
        "photos",
        "--hard",
        "10GiB",
        "--soft",
        "500MB",
        "--max-objects",
        "1000",
    ]);
    let table = e.ok(&["show"]);
    let photos = row(&table, "photos");
    assert!(photos.starts_with("local"), "{photos}");
    assert!(
        photos.contains("10 GiB") && photos.contains("1000"),
        "{photos}"
    );
    assert!(
        photos.contains("476.8 MiB"),
        "500MB is shown in binary units: {photos}"
    );
    let limits = e.store().list_limits().unwrap();
    assert_eq!(limits[0].limits.soft_bytes, Some(500_000_000));
}

#[test]
fn set_edits_only_the_given_caps_and_none_removes_one() {
    let e = env(ONE_BACKEND);
    e.ok(&["set", "photos", "--hard", "10GiB"]);
    e.ok(&["set", "photos", "--soft", "1GiB"]);
    let l = e.store().list_limits().unwrap()[0].limits;
    assert_eq!(
        (l.hard_bytes, l.soft_bytes),
        (Some(10 << 30), Some(1 << 30))
    );
    e.ok(&["set", "photos", "--hard", "none"]);
    let l = e.store().list_limits().unwrap()[0].limits;
    assert_eq!((l.hard_bytes, l.soft_bytes), (None, Some(1 << 30)));
}

#[test]
fn soft_above_hard_is_refused_naming_the_field() {
    let e = env(ONE_BACKEND);
    let err = e.fails(&["set", "photos", "--hard", "1GiB", "--soft", "2GiB"]);
    assert!(
        err.contains("--soft") && err.contains("soft_bytes"),
        "{err}"
    );
    assert!(e.store().list_limits().unwrap().is_empty());
}

#[test]
fn malformed_sizes_and_counts_are_refused_naming_the_flag() {
    let e = env(ONE_BACKEND);
    let err = e.fails(&["set", "photos", "--hard", "10XB"]);
    assert!(err.contains("--hard") && err.contains("10XB"), "{err}");
    let err = e.fails(&["set", "photos", "--max-objects", "many"]);
    assert!(err.contains("--max-objects"), "{err}");
    let err = e.fails(&["set", "photos", "--hard", "0"]);
    assert!(
        err.contains("--hard") && err.contains("hard_bytes"),
        "{err}"
    );
    let err = e.fails(&["set", "photos"]);
    assert!(err.contains("at least one"), "{err}");
}

#[test]
fn clear_removes_the_limits_and_a_second_clear_fails() {
    let e = env(ONE_BACKEND);
    e.ok(&["set", "photos", "--hard", "1MiB"]);
    assert!(e.ok(&["clear", "photos"]).contains("cleared"));
    let err = e.fails(&["show", "photos"]);
    assert!(err.contains("photos"), "{err}");
    let err = e.fails(&["clear", "photos"]);
    assert!(err.contains("no quota"), "{err}");
}

#[test]
fn backend_must_be_named_when_the_config_has_several() {
    let e = env(&format!("{ONE_BACKEND}{SECOND_BACKEND}"));
    let err = e.fails(&["set", "photos", "--hard", "1MiB"]);
    assert!(
        err.contains("--backend") && err.contains("archive"),
        "{err}"
    );
    let err = e.fails(&["set", "photos", "--hard", "1MiB", "--backend", "nope"]);
    assert!(err.contains("--backend") && err.contains("nope"), "{err}");
    e.ok(&["set", "photos", "--hard", "1MiB", "--backend", "archive"]);
    let table = e.ok(&["show", "--backend", "archive"]);
    assert!(row(&table, "photos").starts_with("archive"));
}

#[test]
fn recount_without_a_running_proxy_times_out_and_says_so() {
    let e = env(ONE_BACKEND);
    let err = e.fails(&["recount", "photos", "--timeout", "300ms"]);
    assert!(err.contains("no running proxy"), "{err}");
}

#[test]
fn recount_prints_the_usage_a_running_proxy_reports() {
    let e = env(ONE_BACKEND);
    let proxy = e.store();
    let answer = std::thread::spawn(move || {
        for _ in 0..1000 {
            if let Some((key, requested)) = proxy.pending_recounts().unwrap().pop() {
                let usage = Usage {
                    bytes: 3 << 20,
                    objects: 7,
                };
                proxy.record_recount_done(&key, usage, requested).unwrap();
                return key;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("the CLI never asked for a recount");
    });
    let table = e.ok(&["recount", "photos", "--timeout", "20s"]);
    assert_eq!(answer.join().unwrap(), BucketKey::new("local", "photos"));
    let photos = row(&table, "photos");
    assert!(
        photos.contains("3 MiB") && photos.contains(" 7 "),
        "{photos}"
    );
    // The answered usage is also what `show` reports.
    assert!(row(&e.ok(&["show", "photos"]), "photos").contains("3 MiB"));
}

/// The proxy as `stowage serve` starts it on this config, on ephemeral ports.
async fn start_proxy(e: &Env) -> stowage::app::Running {
    let env =
        |name: &str| (name == "QUOTA_CLI_BACKEND_SECRET").then(|| "backend-secret".to_owned());
    let mut cfg = stowage::config::from_toml_str(ONE_BACKEND, &env).unwrap();
    cfg.database.path = e.dir.path().join("stowage.db");
    cfg.database.secret_key_file = e.dir.path().join("stowage.key");
    cfg.s3_proxy.listen = "127.0.0.1:0".parse().unwrap();
    cfg.admin.listen = "127.0.0.1:0".parse().unwrap();
    cfg.server.drain_delay = std::time::Duration::ZERO;
    let key = load_root_key(None, &cfg.database.secret_key_file).unwrap();
    stowage::app::start(&cfg, key).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_proxy_follows_cli_limits_and_keeps_usage_across_a_restart() {
    let e = env(ONE_BACKEND);
    let key = BucketKey::new("local", "photos");
    let running = start_proxy(&e).await;

    e.ok(&["set", "photos", "--hard", "1MiB", "--soft", "1KiB"]);
    let mut seen = false;
    for _ in 0..50 {
        seen = running.quota_limits.effective(&key).is_some();
        if seen {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(seen, "the CLI's limit never reached the running proxy");

    // What a scan and a landed write leave in the ledger.
    let epoch = running.ledger.begin_scan(&key);
    let at = time::OffsetDateTime::now_utc();
    let scanned = Usage {
        bytes: 1000,
        objects: 3,
    };
    running.ledger.finish_scan(&key, epoch, scanned, at);
    running.ledger.adjust(&key, 24, 1);
    let text = running.metrics.render(&running.cache);
    let labels = "backend=\"local\",bucket=\"photos\"";
    assert!(
        text.contains(&format!("stowage_quota_used_bytes{{{labels}}} 1024")),
        "{text}"
    );
    assert!(text.contains(&format!(
        "stowage_quota_limit_bytes{{{labels},kind=\"hard\"}} 1048576"
    )));
    running.shutdown().await;

    let photos = e.ok(&["show", "photos"]);
    assert!(
        row(&photos, "photos").contains("1 KiB"),
        "usage persisted at shutdown: {photos}"
    );

    let restarted = start_proxy(&e).await;
    let view = restarted.ledger.view(&key).expect("usage restored");
    assert!(view.known);
    assert_eq!(
        view.used,
        Usage {
            bytes: 1024,
            objects: 4
        }
    );
    assert!(
        restarted.quota_limits.effective(&key).is_some(),
        "limits loaded at start"
    );
    restarted.shutdown().await;
}
