//! `stowage quickstart` as a user runs it: the real binary, its printed `export` lines
//! used by the real aws-sdk-s3 client, Ctrl-C, and a second run that reuses the data
//! and the same credential.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::primitives::ByteStream;

/// A free loopback port (bound, then released for the child to take).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

struct Quickstart {
    child: Child,
    exports: HashMap<String, String>,
}

impl Quickstart {
    /// Start the binary and read its banner until the last `export` line.
    fn start(dir: &std::path::Path, port: u16, admin_port: u16) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_stowage"))
            .args(["quickstart", "--data-dir"])
            .arg(dir)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--admin-listen", &format!("127.0.0.1:{admin_port}")])
            .env_remove("STOWAGE_SECRET_KEY")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("quickstart starts");
        let stdout = child.stdout.take().expect("stdout");
        let mut exports = HashMap::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut lines = BufReader::new(stdout).lines();
        for line in lines.by_ref() {
            let line = line.expect("banner line");
            if let Some(kv) = line.strip_prefix("export ") {
                let (k, v) = kv.split_once('=').expect("NAME=value");
                exports.insert(k.to_owned(), v.to_owned());
                if k == "AWS_ENDPOINT_URL" {
                    break;
                }
            }
            assert!(Instant::now() < deadline, "banner took too long");
        }
        // Keep reading, as a terminal would, so the child never writes to a closed pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Self { child, exports }
    }

    fn client(&self) -> aws_sdk_s3::Client {
        let e = &self.exports;
        let conf = aws_sdk_s3::config::Builder::new()
            .behavior_version(BehaviorVersion::latest())
            .endpoint_url(&e["AWS_ENDPOINT_URL"])
            .region(Region::new(e["AWS_REGION"].clone()))
            .credentials_provider(Credentials::new(
                &e["AWS_ACCESS_KEY_ID"],
                &e["AWS_SECRET_ACCESS_KEY"],
                None,
                None,
                "quickstart-banner",
            ))
            .force_path_style(true)
            .build();
        aws_sdk_s3::Client::from_conf(conf)
    }

    /// Ctrl-C, then wait for a clean exit.
    fn interrupt(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .expect("kill");
        assert!(sent.success());
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "quickstart did not exit after Ctrl-C"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn quickstart_banner_works_as_printed_and_a_second_run_reuses_the_data() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (port, admin_port) = (free_port(), free_port());

    let first = Quickstart::start(dir.path(), port, admin_port);
    assert_eq!(
        first.exports["AWS_ENDPOINT_URL"],
        format!("http://127.0.0.1:{port}")
    );
    let s3 = first.client();
    s3.put_object()
        .bucket("demo")
        .key("hello.txt")
        .body(ByteStream::from_static(b"hello from the quickstart"))
        .send()
        .await
        .expect("put through the printed credential");
    let listed = s3.list_buckets().send().await.expect("list buckets");
    let names: Vec<_> = listed.buckets().iter().filter_map(|b| b.name()).collect();
    assert_eq!(names, ["demo"]);
    let first_key = first.exports["AWS_ACCESS_KEY_ID"].clone();
    assert!(first.interrupt().success(), "Ctrl-C exits cleanly");

    let second = Quickstart::start(dir.path(), port, admin_port);
    assert_eq!(
        second.exports["AWS_ACCESS_KEY_ID"], first_key,
        "same demo credential"
    );
    let got = second
        .client()
        .get_object()
        .bucket("demo")
        .key("hello.txt")
        .send()
        .await
        .expect("the object survives a restart");
    let body = got.body.collect().await.expect("body").into_bytes();
    assert_eq!(&body[..], b"hello from the quickstart");
    assert!(second.interrupt().success());
}
