//! Which requests the per-source-IP limit charges before signature work: those that
//! name no credential we know (see the module doc of [`crate::ratelimit`]).

use http::HeaderMap;

use crate::auth::parse::parse_presigned;
use crate::credentials::cache::CredentialLookup;

/// Whether the request names an access key that exists, by header or presigned query.
/// Parsing only (no cryptography): the verifier parses again and decides for real.
/// Anything malformed, anonymous or unknown is `false`.
#[must_use]
pub fn claims_known_key(
    headers: &HeaderMap,
    query: Option<&str>,
    creds: &dyn CredentialLookup,
) -> bool {
    known_claimed_key(headers, query, creds).is_some()
}

/// The access key id the request claims (Authorization header or presign query), when
/// it names a credential `creds` knows; nothing is verified.
#[must_use]
pub fn known_claimed_key(
    headers: &HeaderMap,
    query: Option<&str>,
    creds: &dyn CredentialLookup,
) -> Option<String> {
    let mut values = headers.get_all(http::header::AUTHORIZATION).iter();
    if let Some(value) = values.next() {
        if values.next().is_some() {
            return None;
        }
        let ak = header_access_key(value.to_str().ok()?)?;
        return creds.lookup(ak).map(|_| ak.to_owned());
    }
    let params = parse_presigned(query?).ok()??;
    let ak = params.credential.access_key_id;
    creds.lookup(&ak).is_some().then_some(ak)
}

/// The access key id of a SigV4 Authorization header, found without the full parse
/// the verifier does next (this runs on every request): the text between
/// `Credential=` and the first `/`. A header the verifier would refuse may still name a
/// known key here; such a request is then charged to its address when it fails
/// (`IpCharge::OnFailure`), so nothing gets past the limit this way.
fn header_access_key(value: &str) -> Option<&str> {
    let rest = value.strip_prefix(crate::auth::sigv4::ALGORITHM)?;
    let start = rest.find("Credential=")? + "Credential=".len();
    let ak = rest[start..].split('/').next()?;
    (!ak.is_empty() && !ak.contains([',', ' '])).then_some(ak)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::credentials::{Access, Credential, CredentialSource, Scope};
    use crate::secret::SecretKey;

    const KNOWN: &str = "AKIAKNOWN0000000";
    const SIG: &str = "0000000000000000000000000000000000000000000000000000000000000000";

    /// Knows exactly one access key.
    struct One;

    impl CredentialLookup for One {
        fn lookup(&self, ak: &str) -> Option<Arc<Credential>> {
            (ak == KNOWN).then(|| {
                Arc::new(Credential {
                    access_key_id: KNOWN.into(),
                    secret: SecretKey::new("secret"),
                    backend: "b".into(),
                    scopes: vec![Scope {
                        bucket: "b".into(),
                        access: Access::ReadOnly,
                        prefix: None,
                    }],
                    expires_at: None,
                    enabled: true,
                    source: CredentialSource::Sqlite,
                    description: String::new(),
                })
            })
        }
    }

    fn header(ak: &str) -> String {
        format!(
            "AWS4-HMAC-SHA256 Credential={ak}/20240101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature={SIG}"
        )
    }

    fn headers(auth: &[String]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for a in auth {
            h.append(http::header::AUTHORIZATION, a.parse().expect("value"));
        }
        h
    }

    fn presign(ak: &str) -> String {
        format!(
            "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential={ak}%2F20240101%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20240101T000000Z&X-Amz-Expires=60&X-Amz-SignedHeaders=host&X-Amz-Signature={SIG}"
        )
    }

    #[test]
    fn a_header_or_presigned_url_naming_a_known_key_is_recognised() {
        assert!(claims_known_key(&headers(&[header(KNOWN)]), None, &One));
        assert!(claims_known_key(
            &HeaderMap::new(),
            Some(&presign(KNOWN)),
            &One
        ));
    }

    #[test]
    fn unknown_anonymous_or_malformed_requests_name_no_known_key() {
        assert!(!claims_known_key(
            &headers(&[header("AKIAOTHER")]),
            None,
            &One
        ));
        assert!(!claims_known_key(
            &HeaderMap::new(),
            Some(&presign("AKIAOTHER")),
            &One
        ));
        assert!(!claims_known_key(&HeaderMap::new(), None, &One));
        assert!(!claims_known_key(
            &HeaderMap::new(),
            Some("list-type=2"),
            &One
        ));
        let garbage = vec![format!("AWS {KNOWN}:c2ln")];
        assert!(!claims_known_key(&headers(&garbage), None, &One));
        let twice = vec![header(KNOWN), header(KNOWN)];
        assert!(!claims_known_key(&headers(&twice), None, &One));
    }
}
