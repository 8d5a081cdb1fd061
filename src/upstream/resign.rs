//! Re-signing the outbound request with the backend's admin key, with S3 settings:
//! the path is already S3-encoded once (no double encoding) and is never normalised;
//! the payload hash is the tenant's verified hex hash or `UNSIGNED-PAYLOAD`.
//!
//! aws-sigv4 derives the signing key and computes the signature
//! (`generate_signing_key`, `calculate_signature`). The key is derived once per UTC
//! day, not on every request as aws-sigv4's `sign` does; and the canonical request is
//! written into one buffer with the canonicalisation the inbound verifier uses
//! (`auth::sigv4`), instead of aws-sigv4's, which builds a `HeaderMap` and a dozen
//! strings per call. The unit tests check, for random requests, that the result is
//! byte for byte what aws-sigv4's own `sign` produces (docs/decisions.md, "Outbound
//! signing").

use std::sync::{Arc, PoisonError, RwLock};
use std::time::SystemTime;

use aws_sigv4::sign::v4::{calculate_signature, generate_signing_key};
use http::{HeaderName, HeaderValue, Request, Uri};

use crate::auth::sigv4::{ALGORITHM, UNSIGNED_PAYLOAD, canonical_header_value, canonical_query};
use crate::secret::{SecretKey, SigningKey};

const SERVICE: &str = "s3";

/// A configured backend, ready to sign for.
#[derive(Debug, Clone)]
pub struct UpstreamBackend {
    pub id: String,
    /// `scheme://authority`, from configuration only.
    pub scheme: http::uri::Scheme,
    pub authority: http::uri::Authority,
    pub region: String,
    access_key_id: String,
    secret: SecretKey,
    /// The authority as the outbound Host header.
    host: HeaderValue,
    /// The signing key of one UTC day, shared by clones.
    day_key: Arc<RwLock<Option<DayKey>>>,
}

/// A derived signing key and its UTC day (`YYYYMMDD`).
type DayKey = ([u8; 8], SigningKey);

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

/// `YYYYMMDDTHHMMSSZ` for `now` (UTC).
fn amz_date(now: SystemTime) -> Result<[u8; 16], ResignError> {
    crate::auth::parse::format_amz_date(time::OffsetDateTime::from(now))
        .as_bytes()
        .try_into()
        .map_err(|_| ResignError::Signing)
}

/// Headers the outbound signature covers: the ones S3 requires or that carry meaning,
/// and that nothing between proxy and upstream rewrites.
fn signed(name: &str) -> bool {
    name == "host" || name == "content-md5" || name == "content-type" || name.starts_with("x-amz-")
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
        let host =
            HeaderValue::from_str(authority.as_str()).map_err(|_| ResignError::InvalidUri)?;
        Ok(Self {
            id: id.to_owned(),
            scheme,
            authority,
            region: region.to_owned(),
            access_key_id: access_key_id.to_owned(),
            secret: secret.clone(),
            host,
            day_key: Arc::default(),
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
            let mut pq = String::with_capacity(encoded_path.len() + 1 + query.len());
            pq.push_str(encoded_path);
            pq.push('?');
            pq.push_str(query);
            pq
        };
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(pq)
            .build()
            .map_err(|_| ResignError::InvalidUri)
    }

    /// The signing key of `date` (`YYYYMMDD`): cached for the day, derived by aws-sigv4.
    fn key_for(&self, date: [u8; 8], now: SystemTime) -> SigningKey {
        if let Some((d, key)) = &*self.day_key.read().unwrap_or_else(PoisonError::into_inner)
            && *d == date
        {
            return key.clone();
        }
        let derived = generate_signing_key(self.secret.expose(), now, &self.region, SERVICE);
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(derived.as_ref());
        let key = SigningKey::from_bytes(bytes);
        *self.day_key.write().unwrap_or_else(PoisonError::into_inner) = Some((date, key.clone()));
        key
    }

    /// Sign `req` in place: set `host`, `x-amz-date`, `x-amz-content-sha256` and
    /// `authorization`. Only `host`, `content-md5`, `content-type` and `x-amz-*`
    /// headers are signed.
    ///
    /// # Errors
    /// When a header cannot be signed (a value that is not visible ASCII text).
    pub fn sign<B>(
        &self,
        req: &mut Request<B>,
        payload_sha256_hex: Option<&str>,
        now: SystemTime,
    ) -> Result<(), ResignError> {
        let stamp = amz_date(now)?;
        let stamp = std::str::from_utf8(&stamp).map_err(|_| ResignError::Signing)?;
        let payload = payload_sha256_hex.unwrap_or(UNSIGNED_PAYLOAD);
        let headers = req.headers_mut();
        headers.insert(http::header::HOST, self.host.clone());
        headers.insert(
            HeaderName::from_static("x-amz-date"),
            HeaderValue::from_str(stamp).map_err(|_| ResignError::Signing)?,
        );
        headers.insert(
            HeaderName::from_static("x-amz-content-sha256"),
            HeaderValue::from_str(payload).map_err(|_| ResignError::InvalidHeader)?,
        );

        let headers = req.headers();
        let mut names: Vec<&str> = headers
            .keys()
            .map(HeaderName::as_str)
            .filter(|n| signed(n))
            .collect();
        names.sort_unstable();
        let uri = req.uri();
        let (signed_headers, digest) = crate::auth::sigv4::with_scratch(|creq| {
            creq.push_str(req.method().as_str());
            creq.push('\n');
            creq.push_str(if uri.path().is_empty() {
                "/"
            } else {
                uri.path()
            });
            creq.push('\n');
            creq.push_str(&canonical_query(uri.query().unwrap_or_default(), false));
            creq.push('\n');
            for name in &names {
                creq.push_str(name);
                creq.push(':');
                for (i, value) in headers.get_all(*name).iter().enumerate() {
                    let text = value.to_str().map_err(|_| ResignError::InvalidHeader)?;
                    if i > 0 {
                        creq.push(',');
                    }
                    creq.push_str(&canonical_header_value(text));
                }
                creq.push('\n');
            }
            creq.push('\n');
            let signed_headers = names.join(";");
            creq.push_str(&signed_headers);
            creq.push('\n');
            creq.push_str(payload);
            Ok::<_, ResignError>((
                signed_headers,
                crate::auth::sigv4::sha256_hex(creq.as_bytes()),
            ))
        })?;
        let date: [u8; 8] = stamp.as_bytes()[..8]
            .try_into()
            .map_err(|_| ResignError::Signing)?;
        let mut scope = String::with_capacity(32 + self.region.len());
        for part in [
            &stamp[..8],
            "/",
            &self.region,
            "/",
            SERVICE,
            "/aws4_request",
        ] {
            scope.push_str(part);
        }
        let mut string_to_sign = String::with_capacity(128 + scope.len());
        for part in [ALGORITHM, "\n", stamp, "\n", &scope, "\n", &digest] {
            string_to_sign.push_str(part);
        }
        let key = self.key_for(date, now);
        let signature = calculate_signature(key.expose(), string_to_sign.as_bytes());
        let mut authorization = String::with_capacity(
            64 + self.access_key_id.len() + scope.len() + signed_headers.len() + signature.len(),
        );
        for part in [
            ALGORITHM,
            " Credential=",
            &self.access_key_id,
            "/",
            &scope,
            ", SignedHeaders=",
            &signed_headers,
            ", Signature=",
            &signature,
        ] {
            authorization.push_str(part);
        }
        let mut value =
            HeaderValue::from_str(&authorization).map_err(|_| ResignError::InvalidHeader)?;
        // Keep the signature out of any header dump (hyper/http honour the flag).
        value.set_sensitive(true);
        req.headers_mut().insert(http::header::AUTHORIZATION, value);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use aws_credential_types::Credentials;
    use aws_sigv4::http_request::{
        PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings,
        UriPathNormalizationMode, sign,
    };
    use aws_sigv4::sign::v4;
    use aws_smithy_runtime_api::client::identity::Identity;
    use proptest::prelude::*;

    use super::*;

    /// The reference: aws-sigv4's own `sign`, with S3 settings, over the same headers.
    fn aws_sigv4_sign<B>(
        b: &UpstreamBackend,
        req: &mut Request<B>,
        payload: Option<&str>,
        now: SystemTime,
    ) {
        req.headers_mut().insert(http::header::HOST, b.host.clone());
        let signable: Vec<(&str, &str)> = req
            .headers()
            .iter()
            .filter(|(n, _)| signed(n.as_str()))
            .map(|(n, v)| (n.as_str(), v.to_str().unwrap()))
            .collect();
        let body = payload.map_or(SignableBody::UnsignedPayload, |h| {
            SignableBody::Precomputed(h.to_owned())
        });
        let uri = req.uri().to_string();
        let request =
            SignableRequest::new(req.method().as_str(), uri, signable.into_iter(), body).unwrap();
        let mut settings = SigningSettings::default();
        settings.percent_encoding_mode = PercentEncodingMode::Single;
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
        let identity: Identity =
            Credentials::new(&b.access_key_id, b.secret.expose(), None, None, "test").into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&b.region)
            .name("s3")
            .time(now)
            .settings(settings)
            .build()
            .unwrap()
            .into();
        let (instructions, _) = sign(request, &params).unwrap().into_parts();
        for h in instructions.into_parts().0 {
            req.headers_mut().insert(
                HeaderName::from_static(h.name()),
                HeaderValue::from_str(h.value()).unwrap(),
            );
        }
    }

    fn backend() -> UpstreamBackend {
        UpstreamBackend::new(
            "local",
            &"http://127.0.0.1:9000".parse().unwrap(),
            "garage",
            "GKADMINKEY",
            &SecretKey::new("adminsecret/with+odd=chars"),
        )
        .unwrap()
    }

    /// Path segments as `encode_path` produces them, and raw query pieces as tenants
    /// send them (encoded or not, `+`, value-less names, repeats).
    fn segment() -> impl Strategy<Value = String> {
        proptest::string::string_regex("([A-Za-z0-9._~-]|%2[0-9A-F]|%[3-7][0-9A-F]|%C3%A9){1,12}")
            .unwrap()
    }
    fn query_piece() -> impl Strategy<Value = String> {
        proptest::string::string_regex(
            "[a-z-]{1,10}(=([A-Za-z0-9._~*+-]|%2[0-9A-F]|%3[A-F]|%E2%82%AC){0,12})?",
        )
        .unwrap()
    }
    fn header_value() -> impl Strategy<Value = String> {
        proptest::string::string_regex("[ -~]{0,24}").unwrap()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        #[test]
        fn outbound_signature_equals_aws_sigv4s_for_random_requests(
            method in prop::sample::select(vec!["GET", "PUT", "POST", "DELETE", "HEAD"]),
            segments in prop::collection::vec(segment(), 0..4),
            query in prop::collection::vec(query_piece(), 0..5),
            meta in prop::collection::vec(("[a-z]{1,6}", header_value()), 0..4),
            content_type in prop::option::of(header_value()),
            other in prop::option::of(header_value()),
            payload in prop::option::of("[0-9a-f]{64}"),
            secs in 0u64..4_000_000_000,
        ) {
            let b = backend();
            let path = format!("/{}", segments.join("/"));
            let uri = b.uri(&path, &query.join("&")).unwrap();
            let mut builder = Request::builder().method(method).uri(uri);
            for (name, value) in &meta {
                // Repeats of one name are joined with ',' in order.
                builder = builder.header(format!("x-amz-meta-{name}"), value.as_str());
            }
            if let Some(ct) = &content_type {
                builder = builder.header("content-type", ct.as_str());
            }
            if let Some(v) = &other {
                builder = builder.header("user-agent", v.as_str()).header("range", v.as_str());
            }
            let mut ours = builder.body(()).unwrap();
            let mut theirs = Request::builder()
                .method(ours.method())
                .uri(ours.uri().clone())
                .body(())
                .unwrap();
            *theirs.headers_mut() = ours.headers().clone();
            let now = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(secs);
            b.sign(&mut ours, payload.as_deref(), now).unwrap();
            aws_sigv4_sign(&b, &mut theirs, payload.as_deref(), now);
            for name in ["authorization", "x-amz-date", "x-amz-content-sha256", "host"] {
                prop_assert_eq!(ours.headers().get(name), theirs.headers().get(name), "{}", name);
            }
        }
    }

    #[test]
    fn the_cached_day_key_is_replaced_when_the_day_changes() {
        let b = backend();
        let day = std::time::Duration::from_secs(86_400);
        for now in [
            SystemTime::UNIX_EPOCH + day * 20_000,
            SystemTime::UNIX_EPOCH + day * 20_000 + std::time::Duration::from_secs(5),
            SystemTime::UNIX_EPOCH + day * 20_001,
            SystemTime::UNIX_EPOCH + day * 20_000,
        ] {
            let mut ours = Request::builder()
                .uri(b.uri("/b/k", "").unwrap())
                .body(())
                .unwrap();
            let mut theirs = Request::builder()
                .uri(b.uri("/b/k", "").unwrap())
                .body(())
                .unwrap();
            b.sign(&mut ours, None, now).unwrap();
            aws_sigv4_sign(&b, &mut theirs, None, now);
            assert_eq!(
                ours.headers()["authorization"],
                theirs.headers()["authorization"]
            );
        }
    }

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
