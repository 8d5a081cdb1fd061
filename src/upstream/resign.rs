//! Re-signing the outbound request with the backend's admin key, using aws-sigv4 with
//! S3 settings: the path is already S3-encoded once (no double encoding) and is never
//! normalised; the payload hash is the tenant's verified hex hash or `UNSIGNED-PAYLOAD`.

use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings,
    UriPathNormalizationMode, sign,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use http::{HeaderName, HeaderValue, Request, Uri};

use crate::secret::SecretKey;

/// A configured backend, ready to sign for.
#[derive(Debug, Clone)]
pub struct UpstreamBackend {
    pub id: String,
    /// `scheme://authority`, from configuration only.
    pub scheme: http::uri::Scheme,
    pub authority: http::uri::Authority,
    pub region: String,
    identity: Identity,
}

/// Why a request could not be signed (a header value the signer cannot take).
#[derive(Debug, thiserror::Error)]
pub enum ResignError {
    #[error("a header value is not valid for signing")]
    InvalidHeader,
    #[error("the outbound URI is invalid")]
    InvalidUri,
    #[error("signing failed")]
    Signing,
}

impl UpstreamBackend {
    /// Build from configuration values.
    ///
    /// # Errors
    /// When the endpoint lacks a scheme or authority.
    pub fn new(
        id: &str,
        endpoint: &Uri,
        region: &str,
        access_key_id: &str,
        secret: &SecretKey,
    ) -> Result<Self, ResignError> {
        let scheme = endpoint.scheme().cloned().ok_or(ResignError::InvalidUri)?;
        let authority = endpoint
            .authority()
            .cloned()
            .ok_or(ResignError::InvalidUri)?;
        let creds = Credentials::new(access_key_id, secret.expose(), None, None, "stowage-config");
        Ok(Self {
            id: id.to_owned(),
            scheme,
            authority,
            region: region.to_owned(),
            identity: creds.into(),
        })
    }

    /// The outbound URI for an already S3-encoded path and query.
    ///
    /// # Errors
    /// When the pieces do not form a valid URI.
    pub fn uri(&self, encoded_path: &str, query: &str) -> Result<Uri, ResignError> {
        let pq = if query.is_empty() {
            encoded_path.to_owned()
        } else {
            format!("{encoded_path}?{query}")
        };
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(pq)
            .build()
            .map_err(|_| ResignError::InvalidUri)
    }

    /// Sign `req` in place. Only `host`, `content-md5`, `content-type` and `x-amz-*`
    /// headers are signed: they are the ones S3 requires or that carry meaning, and
    /// nothing between proxy and upstream rewrites them.
    ///
    /// # Errors
    /// When a header cannot be signed.
    pub fn sign<B>(
        &self,
        req: &mut Request<B>,
        payload_sha256_hex: Option<&str>,
        now: SystemTime,
    ) -> Result<(), ResignError> {
        let host = HeaderValue::from_str(self.authority.as_str())
            .map_err(|_| ResignError::InvalidHeader)?;
        req.headers_mut().insert(http::header::HOST, host);
        let mut signable: Vec<(&str, &str)> = Vec::with_capacity(req.headers().len());
        for (name, value) in req.headers() {
            let n = name.as_str();
            if n == "host" || n == "content-md5" || n == "content-type" || n.starts_with("x-amz-") {
                signable.push((n, value.to_str().map_err(|_| ResignError::InvalidHeader)?));
            }
        }
        let body = match payload_sha256_hex {
            Some(h) => SignableBody::Precomputed(h.to_owned()),
            None => SignableBody::UnsignedPayload,
        };
        let uri = req.uri().to_string();
        let request = SignableRequest::new(req.method().as_str(), uri, signable.into_iter(), body)
            .map_err(|_| ResignError::Signing)?;
        let mut settings = SigningSettings::default();
        settings.percent_encoding_mode = PercentEncodingMode::Single;
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
        let params = v4::SigningParams::builder()
            .identity(&self.identity)
            .region(&self.region)
            .name("s3")
            .time(now)
            .settings(settings)
            .build()
            .map_err(|_| ResignError::Signing)?
            .into();
        let (instructions, _sig) = sign(request, &params)
            .map_err(|_| ResignError::Signing)?
            .into_parts();
        let (headers, _params) = instructions.into_parts();
        for h in headers {
            let name = HeaderName::from_static(h.name());
            let mut value =
                HeaderValue::from_str(h.value()).map_err(|_| ResignError::InvalidHeader)?;
            // Keep the signature out of any header dump (hyper/http honour the flag).
            value.set_sensitive(h.sensitive() || name == http::header::AUTHORIZATION);
            req.headers_mut().insert(name, value);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_request_carries_admin_authorization_for_the_configured_host() {
        let b = UpstreamBackend::new(
            "local",
            &"http://127.0.0.1:9000".parse().unwrap(),
            "us-east-1",
            "ADMINKEY",
            &SecretKey::new("adminsecret"),
        )
        .unwrap();
        let mut req = Request::builder()
            .method("PUT")
            .uri(b.uri("/bucket/a%20b", "partNumber=1&uploadId=x").unwrap())
            .header("x-amz-meta-k", "v")
            .body(())
            .unwrap();
        b.sign(&mut req, None, SystemTime::UNIX_EPOCH).unwrap();
        let auth = req.headers()["authorization"].to_str().unwrap();
        assert!(auth.starts_with("AWS4-HMAC-SHA256 Credential=ADMINKEY/19700101/us-east-1/s3/"));
        assert!(auth.contains("host;x-amz-content-sha256;x-amz-date;x-amz-meta-k"));
        assert!(req.headers()["authorization"].is_sensitive());
        assert_eq!(req.headers()["host"], "127.0.0.1:9000");
        assert_eq!(req.headers()["x-amz-content-sha256"], "UNSIGNED-PAYLOAD");
        assert_eq!(req.uri().path(), "/bucket/a%20b");
    }
}
