//! Browser form uploads as a web page builds them: a POST policy (JSON, base64),
//! signed by the test's independent signer, and a `multipart/form-data` body with the
//! file last.

use base64::Engine as _;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::signer::{Req, Signer};

pub const BOUNDARY: &str = "----StowageFormBoundary7MA4YWxkTrZu0gW";

/// A form under construction: extra policy conditions, extra fields, the file.
pub struct Form {
    pub bucket: String,
    pub key: String,
    pub conditions: Vec<String>,
    pub fields: Vec<(String, String)>,
    pub filename: String,
    pub file: Vec<u8>,
    pub expires_in: time::Duration,
    /// Sign with this secret instead of the signer's.
    pub secret_override: Option<String>,
}

impl Form {
    pub fn new(bucket: &str, key: &str, file: &[u8]) -> Self {
        Self {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            conditions: vec![format!(r#"["starts-with","$key",""]"#)],
            fields: Vec::new(),
            filename: "photo.jpg".to_owned(),
            file: file.to_vec(),
            expires_in: time::Duration::minutes(10),
            secret_override: None,
        }
    }

    /// A field and an exact-match condition covering it.
    pub fn field(mut self, name: &str, value: &str) -> Self {
        self.conditions.push(format!(r#"{{"{name}":"{value}"}}"#));
        self.fields.push((name.to_owned(), value.to_owned()));
        self
    }

    /// A field no condition covers.
    pub fn uncovered(mut self, name: &str, value: &str) -> Self {
        self.fields.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn condition(mut self, json: &str) -> Self {
        self.conditions.push(json.to_owned());
        self
    }

    /// Every form field in order (the signing fields, the policy and its signature,
    /// then the extra fields); the file goes after them.
    pub fn signed_fields(&self, s: &Signer) -> Vec<(String, String)> {
        let expiration = (s.now + self.expires_in)
            .format(&Rfc3339)
            .expect("format expiration");
        let mut conditions = vec![
            format!(r#"{{"bucket":"{}"}}"#, self.bucket),
            r#"{"x-amz-algorithm":"AWS4-HMAC-SHA256"}"#.to_owned(),
            format!(r#"{{"x-amz-credential":"{}/{}"}}"#, s.access_key, s.scope()),
            format!(r#"{{"x-amz-date":"{}"}}"#, s.date()),
        ];
        conditions.extend(self.conditions.iter().cloned());
        let policy = format!(
            r#"{{"expiration":"{expiration}","conditions":[{}]}}"#,
            conditions.join(",")
        );
        let policy_b64 = base64::engine::general_purpose::STANDARD.encode(policy);
        let signer = match &self.secret_override {
            Some(secret) => Signer {
                secret_key: secret.clone(),
                ..s.clone()
            },
            None => s.clone(),
        };
        let mut fields = vec![
            ("key".to_owned(), self.key.clone()),
            ("x-amz-algorithm".to_owned(), "AWS4-HMAC-SHA256".to_owned()),
            (
                "x-amz-credential".to_owned(),
                format!("{}/{}", s.access_key, s.scope()),
            ),
            ("x-amz-date".to_owned(), s.date()),
            ("policy".to_owned(), policy_b64.clone()),
            (
                "x-amz-signature".to_owned(),
                signer.sign_policy(&policy_b64),
            ),
        ];
        fields.extend(self.fields.iter().cloned());
        fields
    }

    /// The multipart body and the request to the proxy.
    pub fn build(&self, s: &Signer, host: &str) -> Req {
        let fields = self.signed_fields(s);
        Req::new("POST", &format!("/{}", self.bucket), host)
            .header(
                "content-type",
                &format!("multipart/form-data; boundary={BOUNDARY}"),
            )
            .body(body(&fields, &self.filename, &self.file))
    }
}

pub fn body(fields: &[(String, String)], filename: &str, file: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for (n, v) in fields {
        out.extend_from_slice(
            format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{n}\"\r\n\r\n{v}\r\n")
                .as_bytes(),
        );
    }
    out.extend_from_slice(
        format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\n\
             Content-Type: application/octet-stream\r\n\r\n"
        )
        .as_bytes(),
    );
    out.extend_from_slice(file);
    out.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    out
}

/// An `OffsetDateTime` a little in the past, for expired policies.
pub fn minutes_ago(n: i64) -> OffsetDateTime {
    OffsetDateTime::now_utc() - time::Duration::minutes(n)
}
