//! Helpers shared by the fault tests: raw signed GETs that report exactly how a
//! response ended, deadlines, and the checks every fault ends with.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::faulty::{Fault, FaultyProxy, harness_with_faults};
use crate::common::raw::{head_bytes, xml_tag};
use crate::common::signer::{Req, Signer, UNSIGNED};
use crate::common::{BUCKET, Harness, UpstreamKind, scope};
use stowage::credentials::model::Access;

/// How a raw exchange ended.
#[derive(Debug)]
pub struct Ending {
    pub status: u16,
    /// The Content-Length the proxy announced.
    pub declared: Option<usize>,
    pub body: Vec<u8>,
    pub elapsed: Duration,
}

impl Ending {
    /// The body is shorter than announced: the client can tell the transfer failed.
    pub fn truncated(&self) -> bool {
        self.declared.is_some_and(|n| self.body.len() < n)
    }

    pub fn code(&self) -> Option<String> {
        xml_tag(&String::from_utf8_lossy(&self.body), "Code")
    }
}

/// A harness behind a fault proxy plus one read-write credential on the bucket.
pub struct Faulted {
    pub h: Harness,
    pub fp: FaultyProxy,
    pub ak: String,
    pub sk: String,
}

impl Faulted {
    pub async fn start(adjust: impl FnOnce(&mut stowage::config::Config)) -> Self {
        let (h, fp) = harness_with_faults(UpstreamKind::S3sFs, adjust)
            .await
            .expect("s3s-fs always starts");
        let (ak, sk) = h.credential(vec![scope(BUCKET, Access::ReadWrite)]);
        Self { h, fp, ak, sk }
    }

    pub fn client(&self) -> aws_sdk_s3::Client {
        self.h.client(&self.ak, &self.sk)
    }

    /// Signed `method /BUCKET/key` written by hand; reads until the proxy closes.
    pub async fn raw(&self, method: &str, key: &str, body: &[u8]) -> Ending {
        let mut req = Req::new(
            method,
            &format!("/{BUCKET}/{key}"),
            &self.h.s3_addr.to_string(),
        )
        .body(body.to_vec());
        Signer::new(&self.ak, &self.sk).sign_header(&mut req, UNSIGNED, &[]);
        exchange(self.h.s3_addr, &req).await
    }

    /// Back to pass-through, then a normal write and read succeed: the proxy serves.
    pub async fn heals(&self, key: &str) {
        self.fp.set(Fault::Pass);
        let data = crate::common::pattern(4096, 9);
        self.client()
            .put_object()
            .bucket(BUCKET)
            .key(key)
            .body(data.clone().into())
            .send()
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "PUT after the fault: {}",
                    crate::common::clients::describe(&e)
                )
            });
        let got = self
            .client()
            .get_object()
            .bucket(BUCKET)
            .key(key)
            .send()
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "GET after the fault: {}",
                    crate::common::clients::describe(&e)
                )
            })
            .body
            .collect()
            .await
            .expect("body after the fault")
            .to_vec();
        assert_eq!(got, data, "the proxy serves correct bytes after the fault");
    }

    /// Nothing in an error body may reveal the upstream or the proxy's internals.
    pub fn assert_no_internal_text(&self, body: &[u8]) {
        let text = String::from_utf8_lossy(body).to_ascii_lowercase();
        let upstream_port = self.fp.addr.port().to_string();
        for needle in [
            "hyper",
            "parse",
            "connection",
            "reset",
            "ssh",
            "os error",
            "127.0.0.1",
            upstream_port.as_str(),
            &self.h.admin_access_key().to_ascii_lowercase(),
            &self.h.admin_secret().to_ascii_lowercase(),
        ] {
            assert!(
                !text.contains(needle),
                "error body shows {needle:?}: {text}"
            );
        }
    }

    pub async fn shutdown(self) {
        self.h.shutdown().await;
    }
}

/// Write `req` (with `connection: close`), then read everything until EOF or reset.
pub async fn exchange(addr: SocketAddr, req: &Req) -> Ending {
    let started = Instant::now();
    let mut stream = TcpStream::connect(addr)
        .await
        .expect("connect to the proxy");
    stream.set_nodelay(true).expect("nodelay");
    let mut wire = head_bytes(req);
    wire.extend_from_slice(&req.body);
    stream.write_all(&wire).await.expect("send the request");
    let mut got = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), async {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(
        read.is_ok(),
        "the proxy neither finished nor closed within 10 s"
    );
    let end = got
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head");
    let head = String::from_utf8_lossy(&got[..end]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let declared = head.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim()
            .eq_ignore_ascii_case("content-length")
            .then(|| v.trim().parse().ok())?
    });
    Ending {
        status,
        declared,
        body: got[end + 4..].to_vec(),
        elapsed: started.elapsed(),
    }
}

/// Poll `f` every 50 ms until it is true or `within` has passed.
pub async fn eventually<F, Fut>(within: Duration, what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("not within {within:?}: {what}");
}

/// `GET /readyz` on the admin listener: (status, body).
pub async fn readyz(h: &Harness) -> (u16, String) {
    let r = reqwest::get(format!("http://{}/readyz", h.admin_addr))
        .await
        .expect("readyz answers");
    (r.status().as_u16(), r.text().await.expect("readyz body"))
}
