//! The admin JSON API (bearer token) as the soak uses it: credential churn and quota
//! changes on the running proxy. See docs/admin-api.md.

use anyhow::{Context as _, bail};
use serde_json::{Value, json};

use crate::procs::BACKEND;

pub struct Admin {
    http: reqwest::Client,
    base: String,
    token: String,
}

/// The ledger's view of one bucket (`usage` of a quota row).
#[derive(Debug, Clone, Copy)]
pub struct Usage {
    pub bytes: u64,
    pub reserved_bytes: u64,
    pub known: bool,
}

impl Admin {
    pub fn new(base: &str, token: &str) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: base.to_owned(),
            token: token.to_owned(),
        }
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<(u16, Value)> {
        let mut req = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .header("authorization", format!("Bearer {}", self.token));
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let resp = req
            .send()
            .await
            .with_context(|| format!("{method} {path}"))?;
        let status = resp.status().as_u16();
        let text = resp.text().await.context("admin response body")?;
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).with_context(|| format!("{method} {path}: not JSON"))?
        };
        Ok((status, value))
    }

    async fn expect(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        want: u16,
    ) -> anyhow::Result<Value> {
        let (status, value) = self.call(method.clone(), path, body).await?;
        if status != want {
            bail!("{method} {path}: status {status}, wanted {want}: {value}");
        }
        Ok(value)
    }

    /// A new SQLite credential with these `(bucket, access)` scopes → (access key, secret).
    pub async fn create(&self, scopes: &[(&str, &str)]) -> anyhow::Result<(String, String)> {
        let scopes: Vec<Value> = scopes
            .iter()
            .map(|(b, a)| json!({"bucket": b, "access": a}))
            .collect();
        let body = json!({"backend": BACKEND, "scopes": scopes, "description": "soak"});
        let v = self
            .expect(
                reqwest::Method::POST,
                "/api/v1/credentials",
                Some(body),
                201,
            )
            .await?;
        Ok((field(&v, "access_key_id")?, field(&v, "secret_access_key")?))
    }

    /// A new secret for `ak`; the old one stops working at once.
    pub async fn rotate(&self, ak: &str) -> anyhow::Result<String> {
        let path = format!("/api/v1/credentials/{ak}/rotate-secret");
        let v = self.expect(reqwest::Method::POST, &path, None, 200).await?;
        field(&v, "secret_access_key")
    }

    pub async fn set_enabled(&self, ak: &str, enabled: bool) -> anyhow::Result<()> {
        let path = format!("/api/v1/credentials/{ak}");
        let body = json!({ "enabled": enabled });
        self.expect(reqwest::Method::PATCH, &path, Some(body), 200)
            .await?;
        Ok(())
    }

    pub async fn delete(&self, ak: &str) -> anyhow::Result<()> {
        let path = format!("/api/v1/credentials/{ak}");
        self.expect(reqwest::Method::DELETE, &path, None, 204)
            .await?;
        Ok(())
    }

    pub async fn put_quota(&self, bucket: &str, hard: u64, soft: u64) -> anyhow::Result<()> {
        let path = format!("/api/v1/quotas/{BACKEND}/{bucket}");
        let body = json!({"hard_bytes": hard, "soft_bytes": soft});
        self.expect(reqwest::Method::PUT, &path, Some(body), 200)
            .await?;
        Ok(())
    }

    pub async fn usage(&self, bucket: &str) -> anyhow::Result<Usage> {
        let path = format!("/api/v1/quotas/{BACKEND}/{bucket}");
        let v = self.expect(reqwest::Method::GET, &path, None, 200).await?;
        let u = &v["usage"];
        Ok(Usage {
            bytes: u["bytes"].as_u64().unwrap_or(0),
            reserved_bytes: u["reserved_bytes"].as_u64().unwrap_or(0),
            known: u["known"].as_bool().unwrap_or(false),
        })
    }

    /// `/metrics` as text (not protected in the soak's config).
    pub async fn metrics(&self) -> anyhow::Result<String> {
        let resp = self
            .http
            .get(format!("{}/metrics", self.base))
            .send()
            .await?;
        Ok(resp.text().await?)
    }
}

fn field(v: &Value, name: &str) -> anyhow::Result<String> {
    v[name]
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("admin response without `{name}`"))
}

/// Sum of the samples of a metric family whose label set contains `label` (all when
/// empty), from Prometheus text.
pub fn metric_sum(text: &str, name: &str, label: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter(|l| label.is_empty() || l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}
