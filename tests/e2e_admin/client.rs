//! The admin e2e harness: the proxy (with the fake Kubernetes API server, so both
//! credential sources are live) started with an admin token, and a small JSON client
//! for its admin listener.

use std::future::Future;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::Value;
use stowage::config::Config;
use stowage::secret::SecretKey;

use crate::support::{Kube, start_prepared};

pub const TOKEN: &str = "e2e-admin-token-7f3a9c1d5e8b2046";

/// A proxy with a token, plus an HTTP client that never follows redirects.
pub struct Admin {
    pub k: Kube,
    pub http: reqwest::Client,
    pub base: String,
}

/// Start with the admin token set, then `adjust`; wait until ready.
pub async fn start(adjust: impl FnOnce(&mut Config)) -> Admin {
    start_with_token(Some(TOKEN), adjust).await
}

pub async fn start_with_token(token: Option<&str>, adjust: impl FnOnce(&mut Config)) -> Admin {
    let bearer = token.map(|t| format!("Bearer {t}"));
    let token = token.map(SecretKey::new);
    let k = start_prepared(
        |_| {},
        |c| {
            c.admin.token = token;
            adjust(c);
        },
    )
    .await;
    let base = format!("http://{}", k.h.admin_addr);
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("http client");
    // With the token, so it also works when the probes are protected.
    let readyz = format!("{base}/readyz");
    let ready = within(Duration::from_secs(45), || async {
        let mut rb = http.get(&readyz);
        if let Some(b) = &bearer {
            rb = rb.header("authorization", b);
        }
        rb.send().await.is_ok_and(|r| r.status() == StatusCode::OK)
    })
    .await;
    assert!(ready, "/readyz turns 200");
    Admin { k, http, base }
}

/// A response: status, headers and the body parsed as JSON (`Null` when empty or not
/// JSON; `text` keeps the raw body).
pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub json: Value,
    pub text: String,
}

impl Admin {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A request with the bearer token.
    pub async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> Reply {
        let mut rb = self.http.request(method, self.url(path)).bearer_auth(TOKEN);
        if let Some(b) = body {
            rb = rb
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        reply(rb.send().await.expect("admin request")).await
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.call(Method::GET, path, None).await
    }

    /// Create a credential on the harness bucket with `access`; (ak, secret, reply).
    pub async fn create(&self, scopes: Value) -> (String, String, Reply) {
        let body = serde_json::json!({"backend": crate::common::BACKEND, "scopes": scopes});
        let r = self
            .call(Method::POST, "/api/v1/credentials", Some(&body))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        let ak = r.json["access_key_id"].as_str().expect("ak").to_owned();
        let sk = r.json["secret_access_key"]
            .as_str()
            .expect("secret")
            .to_owned();
        (ak, sk, r)
    }

    /// An unauthenticated request (or with these headers only).
    pub async fn raw(&self, method: Method, path: &str, headers: &[(&str, &str)]) -> Reply {
        let mut rb = self.http.request(method, self.url(path));
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        reply(rb.send().await.expect("admin request")).await
    }

    pub async fn shutdown(self) {
        self.k.shutdown().await;
    }
}

pub async fn reply(r: reqwest::Response) -> Reply {
    let status = r.status();
    let headers = r.headers().clone();
    let text = r.text().await.unwrap_or_default();
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    Reply {
        status,
        headers,
        json,
        text,
    }
}

/// Poll `check` every 50 ms until it holds or `timeout` passes; whether it held.
pub async fn within<F, Fut>(timeout: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The access keys of a listing page.
pub fn keys(page: &Value) -> Vec<String> {
    page["credentials"]
        .as_array()
        .expect("a credentials array")
        .iter()
        .map(|c| c["access_key_id"].as_str().expect("ak").to_owned())
        .collect()
}
