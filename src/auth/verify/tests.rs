//! Tests of the classifier: helpers here, the security invariants in `invariants`,
//! payload modes in `payload_modes`. Requests are signed with the spec functions of
//! `sigv4`; `tests/sigv4_property.rs` signs with the independent aws-sigv4 crate, and
//! the first two invariants use AWS's published examples.

use std::collections::HashMap;
use std::sync::Arc;

use http::request::Parts;
use time::OffsetDateTime;
use time::macros::datetime;

use super::*;
use crate::credentials::{Access, Credential, CredentialSource, Scope};
use crate::secret::SecretKey;

const AK: &str = "AKIAIOSFODNN7EXAMPLE";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
const NOW: OffsetDateTime = datetime!(2013-05-24 0:00 UTC);
const AMZ_DATE: &str = "20130524T000000Z";
const HOST: &str = "examplebucket.s3.amazonaws.com";

struct Creds(HashMap<String, Arc<Credential>>);

impl CredentialLookup for Creds {
    fn lookup(&self, ak: &str) -> Option<Arc<Credential>> {
        self.0.get(ak).cloned()
    }
}

fn credential(enabled: bool, expires_at: Option<OffsetDateTime>) -> Credential {
    Credential {
        access_key_id: AK.into(),
        secret: SecretKey::new(SECRET),
        backend: "b".into(),
        scopes: vec![Scope {
            bucket: "examplebucket".into(),
            access: Access::ReadWrite,
            prefix: None,
        }],
        expires_at,
        enabled,
        source: CredentialSource::Sqlite,
        description: String::new(),
    }
}

fn creds_with(c: Credential) -> Creds {
    Creds(HashMap::from([(c.access_key_id.clone(), Arc::new(c))]))
}

fn creds() -> Creds {
    creds_with(credential(true, None))
}

fn auth(parts: &Parts, now: OffsetDateTime) -> Result<VerifiedRequest, AuthError> {
    auth_with(parts, &creds(), now)
}

fn auth_with(parts: &Parts, c: &Creds, now: OffsetDateTime) -> Result<VerifiedRequest, AuthError> {
    authenticate(
        parts,
        c,
        &SigningKeyCache::new(),
        &AuthOptions::default(),
        now,
    )
}

/// A request to sign: defaults are a GET of `/test.txt` signed at [`NOW`].
struct Spec {
    method: &'static str,
    uri: String,
    headers: Vec<(String, String)>,
    /// `None` signs every header given.
    signed: Option<Vec<&'static str>>,
    secret: &'static str,
    scope_date: &'static str,
    region: &'static str,
    service: &'static str,
    amz_date: &'static str,
}

impl Spec {
    fn get() -> Self {
        Self {
            method: "GET",
            uri: "/test.txt".into(),
            headers: vec![],
            signed: None,
            secret: SECRET,
            scope_date: "20130524",
            region: "us-east-1",
            service: "s3",
            amz_date: AMZ_DATE,
        }
    }

    /// Header auth adds host, x-amz-date and an empty-body x-amz-content-sha256.
    fn header() -> Self {
        Self::get()
            .with("x-amz-content-sha256", sigv4::EMPTY_SHA256)
            .with("x-amz-date", AMZ_DATE)
    }

    fn with(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    fn parts(&self) -> Parts {
        let mut b = http::Request::builder()
            .method(self.method)
            .uri(&self.uri)
            .header("host", HOST);
        for (n, v) in &self.headers {
            b = b.header(n, v);
        }
        b.body(()).unwrap().into_parts().0
    }

    fn signed_names(&self, parts: &Parts) -> Vec<String> {
        let mut names: Vec<String> = match &self.signed {
            Some(s) => s.iter().map(|s| (*s).to_owned()).collect(),
            None => parts
                .headers
                .keys()
                .map(|k| k.as_str().to_owned())
                .collect(),
        };
        names.sort();
        names.dedup();
        names
    }

    fn signature(&self, parts: &Parts, signed: &[String], query: &str, payload: &str) -> String {
        let block = sigv4::canonical_headers(&parts.headers, signed, None).unwrap();
        let creq = sigv4::canonical_request(
            self.method,
            &sigv4::canonical_uri(parts.uri.path()),
            query,
            &block,
            &signed.join(";"),
            payload,
        );
        let scope = sigv4::credential_scope(self.scope_date, self.region, self.service);
        let sts = sigv4::string_to_sign(self.amz_date, &scope, &creq);
        let key = sigv4::derive_signing_key(
            &SecretKey::new(self.secret),
            self.scope_date,
            self.region,
            self.service,
        );
        sigv4::signature(&key, &sts)
    }

    fn scope(&self) -> String {
        sigv4::credential_scope(self.scope_date, self.region, self.service)
    }

    /// Signed with an Authorization header.
    fn sign(&self) -> Parts {
        let mut parts = self.parts();
        let signed = self.signed_names(&parts);
        let payload = parts
            .headers
            .get("x-amz-content-sha256")
            .map_or(sigv4::UNSIGNED_PAYLOAD, |v| v.to_str().unwrap());
        let query = sigv4::canonical_query(parts.uri.query().unwrap_or(""), false);
        let sig = self.signature(&parts, &signed, &query, payload);
        let value = format!(
            "AWS4-HMAC-SHA256 Credential={AK}/{}, SignedHeaders={}, Signature={sig}",
            self.scope(),
            signed.join(";")
        );
        parts
            .headers
            .insert(http::header::AUTHORIZATION, value.parse().unwrap());
        parts
    }

    /// Signed as a presigned URL valid for `expires` seconds.
    fn presign(mut self, expires: u64) -> Parts {
        let probe = self.parts();
        let signed = self.signed_names(&probe);
        let sep = if self.uri.contains('?') { '&' } else { '?' };
        self.uri = format!(
            "{}{sep}X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential={}&X-Amz-Date={}&X-Amz-Expires={expires}&X-Amz-SignedHeaders={}",
            self.uri,
            sigv4::uri_encode(&format!("{AK}/{}", self.scope()), true),
            self.amz_date,
            sigv4::uri_encode(&signed.join(";"), true),
        );
        let parts = self.parts();
        let payload = if signed.iter().any(|h| h == "x-amz-content-sha256") {
            parts.headers["x-amz-content-sha256"]
                .to_str()
                .unwrap()
                .to_owned()
        } else {
            sigv4::UNSIGNED_PAYLOAD.to_owned()
        };
        let query = sigv4::canonical_query(parts.uri.query().unwrap(), true);
        let sig = self.signature(&parts, &signed, &query, &payload);
        self.uri = format!("{}&X-Amz-Signature={sig}", self.uri);
        self.parts()
    }
}

fn minutes(m: i64) -> time::Duration {
    time::Duration::minutes(m)
}

fn hex_bytes(s: &str) -> [u8; 32] {
    let mut out = [0; 32];
    hex::decode_to_slice(s, &mut out).unwrap();
    out
}

/// A header-auth request with the given streaming `x-amz-content-sha256`.
fn streaming(mode: &str) -> Spec {
    let mut spec = Spec::header().with("content-encoding", "aws-chunked");
    spec.headers[0].1 = mode.into();
    spec
}

mod invariants;
mod payload_modes;
