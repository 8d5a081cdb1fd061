//! The browser-facing steps of the pipeline: CORS preflights (answered before
//! authentication), the anonymous entry for unsigned reads on bound buckets, and the
//! `Access-Control-*` headers of every answer.

use bytes::Bytes;
use http::request::Parts;
use http::{HeaderMap, Method, Response, StatusCode};

use super::listener::ResponseBody;
use super::response::{full, set_request_id};
use super::stack::Exchange;
use super::state::ProxyState;
use crate::auth::VerifiedRequest;
use crate::cors::{self, CorsConfiguration};
use crate::credentials::anonymous::AnonymousMode;
use crate::error::S3Error;
use crate::policy::route::Route;
use crate::quota::BucketKey;

/// Step 2b: a CORS preflight (`OPTIONS`), answered from the bucket's rules before any
/// authentication (browsers send no credentials on preflights). Charged to the source
/// address like other unauthenticated traffic.
pub(super) fn preflight(
    state: &ProxyState,
    ex: &Exchange,
    parts: &Parts,
    route: &Route,
) -> Result<Response<ResponseBody>, S3Error> {
    state
        .rate_limits
        .check(crate::ratelimit::Subject::SourceIp(ex.client_ip))?;
    let header = |n: &str| parts.headers.get(n).and_then(|v| v.to_str().ok());
    let (Some(origin), Some(method)) = (header("origin"), header("access-control-request-method"))
    else {
        return Err(S3Error::InvalidRequest(
            "Insufficient information. Origin request header needed.".into(),
        ));
    };
    let requested = cors::requested_headers(&parts.headers);
    let rules = route
        .bucket
        .as_deref()
        .and_then(|b| state.cors.for_bucket(b));
    let rule = rules
        .as_ref()
        .and_then(|c| c.matching(origin, method, &requested))
        .ok_or(S3Error::CorsForbidden)?;
    let mut resp = Response::new(full(Bytes::new()));
    *resp.status_mut() = StatusCode::OK;
    cors::apply(resp.headers_mut(), rule, origin, Some(&requested));
    set_request_id(&mut resp, &ex.request_id);
    Ok(resp)
}

/// Does the request carry any credential (header, presigned query, session token)?
/// Such a request is never served anonymously, whatever its bucket's binding.
#[must_use]
pub fn carries_credentials(parts: &Parts) -> bool {
    const QUERY: &[&str] = &[
        "x-amz-algorithm",
        "x-amz-credential",
        "x-amz-signature",
        "x-amz-security-token",
        "awsaccesskeyid",
        "signature",
    ];
    parts.headers.contains_key(http::header::AUTHORIZATION)
        || parts.headers.contains_key("x-amz-security-token")
        || crate::auth::sigv4::query_pairs(parts.uri.query().unwrap_or(""))
            .any(|(k, _)| QUERY.iter().any(|q| k.eq_ignore_ascii_case(q)))
}

/// Step 3, for a request without credentials on a bound bucket: the operation
/// allowlist, the source-address limits, then a read-only identity for the rest of
/// the pipeline. `Ok(None)`: not an anonymous request (authenticate as usual).
pub(super) fn anonymous(
    state: &ProxyState,
    ex: &Exchange,
    parts: &Parts,
    route: &Route,
) -> Result<Option<VerifiedRequest>, S3Error> {
    if !state.anonymous_enabled || carries_credentials(parts) {
        return Ok(None);
    }
    let Some(binding) = route
        .bucket
        .as_deref()
        .and_then(|b| state.bindings.for_bucket(b))
    else {
        return Ok(None);
    };
    if binding.mode == AnonymousMode::None {
        return Err(S3Error::AccessDenied("Access Denied".into()));
    }
    crate::policy::anonymous::check(ex.operation, parts.uri.query())?;
    state
        .rate_limits
        .admit_anonymous(ex.client_ip, &binding.bucket, binding.per_source_ip_rps)?;
    Ok(Some(VerifiedRequest::anonymous(&binding)))
}

/// The rules that apply to an answer: the credential's backend's when it is known,
/// else every backend's rules for the bucket name.
fn rules_for(state: &ProxyState, ex: &Exchange) -> Option<CorsConfiguration> {
    let bucket = ex.bucket.as_deref()?;
    match &ex.backend {
        Some(backend) => state
            .cors
            .get(&BucketKey::new(backend.clone(), bucket.to_owned()))
            .map(|c| (*c).clone()),
        None => state.cors.for_bucket(bucket),
    }
}

/// Last step, on every answer: the upstream's CORS headers out, ours in when the
/// request's `Origin` matches a rule of the bucket (errors included, so a script can
/// read why it failed).
pub(super) fn decorate(
    state: &ProxyState,
    ex: &Exchange,
    origin: Option<&str>,
    headers: &mut HeaderMap,
) {
    decorate_with(&ex.method, origin, headers, || {
        if state.cors.is_empty() {
            None
        } else {
            rules_for(state, ex)
        }
    });
}

/// [`decorate`] given the bucket's rules (looked up only when needed). A preflight's
/// answer is the proxy's own (`OPTIONS` never reaches the upstream) and already
/// carries its `Access-Control-*` headers: it is left alone, since stripping it
/// would leave the browser a 200 with no CORS answer at all.
fn decorate_with(
    method: &Method,
    origin: Option<&str>,
    headers: &mut HeaderMap,
    rules: impl FnOnce() -> Option<CorsConfiguration>,
) {
    if method == Method::OPTIONS {
        return;
    }
    cors::strip_upstream(headers);
    let Some(origin) = origin else { return };
    if let Some(rules) = rules()
        && let Some(rule) = rules.matching(origin, method.as_str(), &[])
    {
        cors::apply(headers, rule, origin, None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cors::CorsRule;

    const ORIGIN: &str = "http://app.example";

    fn rules() -> Option<CorsConfiguration> {
        Some(CorsConfiguration {
            rules: vec![CorsRule {
                id: None,
                allowed_origins: vec![ORIGIN.into()],
                allowed_methods: vec!["GET".into()],
                allowed_headers: vec!["*".into()],
                expose_headers: Vec::new(),
                max_age_seconds: Some(60),
            }],
        })
    }

    #[test]
    fn a_preflight_answer_keeps_its_cors_headers() {
        let rules = rules().expect("rules");
        let rule = &rules.rules[0];
        let mut h = HeaderMap::new();
        cors::apply(&mut h, rule, ORIGIN, Some(&["x-custom".to_owned()]));
        let before = h.clone();
        decorate_with(&Method::OPTIONS, Some(ORIGIN), &mut h, || {
            panic!("a preflight needs no second lookup")
        });
        assert_eq!(h, before);
        assert_eq!(h["access-control-allow-origin"], ORIGIN);
        assert_eq!(h["access-control-allow-methods"], "GET");
        assert_eq!(h["access-control-allow-headers"], "x-custom");
    }

    #[test]
    fn an_actual_answer_swaps_the_upstreams_cors_headers_for_the_rules() {
        let mut h = HeaderMap::new();
        h.insert("access-control-allow-origin", "*".parse().expect("value"));
        h.insert("etag", "\"abc\"".parse().expect("value"));
        decorate_with(&Method::GET, Some(ORIGIN), &mut h, rules);
        assert_eq!(h["access-control-allow-origin"], ORIGIN);
        assert_eq!(h.get_all("access-control-allow-origin").iter().count(), 1);
        let expose = h["access-control-expose-headers"].to_str().expect("ascii");
        assert!(expose.split(", ").any(|e| e == "etag"), "{expose}");

        let mut h = HeaderMap::new();
        h.insert("access-control-allow-origin", "*".parse().expect("value"));
        decorate_with(
            &Method::GET,
            Some("http://elsewhere.example"),
            &mut h,
            rules,
        );
        assert!(h.is_empty(), "no rule matches: {h:?}");
    }
}
