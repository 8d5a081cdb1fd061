//! Operation-specific steps of the pipeline: ListBuckets synthesis, the DeleteObjects
//! key check for prefix-scoped credentials, the ACL-grant gate, and the
//! CompleteMultipartUpload `<Location>` rewrite.

use std::time::SystemTime;

use bytes::Bytes;
use http::request::Parts;
use http::{Method, Request, Response};
use http_body_util::BodyExt;

use super::listener::ResponseBody;
use super::response::{error_response, read_bounded, set_request_id};
use super::stack::{Exchange, empty_out};
use super::state::ProxyState;
use crate::auth::VerifiedRequest;
use crate::error::S3Error;
use crate::policy::list_buckets;
use crate::policy::operation::S3Operation;
use crate::policy::route::Route;
use crate::policy::scope::authorize_keys;
use crate::upstream::UpstreamBackend;
use crate::upstream::client::OutBody;

/// Canned ACLs that grant nothing beyond the bucket owner; tools send them by default.
const HARMLESS_ACLS: &[&str] = &["private", "bucket-owner-full-control"];

pub(super) fn check_acl_headers(
    verified: &VerifiedRequest,
    route: &Route,
    headers: &http::HeaderMap,
) -> Result<(), S3Error> {
    let grants = headers
        .keys()
        .any(|k| k.as_str().starts_with("x-amz-grant-"));
    let public_acl = headers
        .get("x-amz-acl")
        .is_some_and(|v| !HARMLESS_ACLS.contains(&v.to_str().unwrap_or_default()));
    if !grants && !public_acl {
        return Ok(());
    }
    let admin = route.bucket.as_deref().is_some_and(|b| {
        verified.credential.scopes.iter().any(|s| {
            s.matches_bucket(b)
                && s.access == crate::credentials::Access::Admin
                && s.prefix.is_none()
        })
    });
    if admin {
        Ok(())
    } else {
        Err(S3Error::AccessDenied(
            "Granting access through ACLs requires an admin scope on the bucket.".into(),
        ))
    }
}

/// Largest DeleteObjects body read for a key check: 1000 keys of 1 KiB plus XML.
const MAX_DELETE_BODY: usize = 2 * 1024 * 1024;

/// Read the verified DeleteObjects body, check every key against the credential's
/// prefixes, and put the bytes back as the outbound body.
pub(super) async fn check_delete_keys(
    req: Request<OutBody>,
    verified: &VerifiedRequest,
    route: &Route,
    op: S3Operation,
) -> Result<Request<OutBody>, S3Error> {
    let (req, bytes) = buffer_delete_body(req).await?;
    let keys = delete_object_keys(&bytes)?;
    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    let bucket = route.bucket.as_deref().unwrap_or_default();
    authorize_keys(&verified.credential, bucket, op, &refs)?;
    Ok(req)
}

/// Read the whole verified DeleteObjects body (bounded) and put the bytes back as the
/// outbound body; also used by quota accounting, which needs the keys.
pub(super) async fn buffer_delete_body(
    req: Request<OutBody>,
) -> Result<(Request<OutBody>, Bytes), S3Error> {
    let (parts, mut body) = req.into_parts();
    let mut buf = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| match e.downcast_ref::<crate::auth::body::BodyError>() {
            Some(b) => b.s3_error(),
            None => S3Error::IncompleteBody,
        })?;
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > MAX_DELETE_BODY {
                return Err(S3Error::EntityTooLarge(
                    "The DeleteObjects request body is too large.".into(),
                ));
            }
            buf.extend_from_slice(&data);
        }
    }
    let bytes = buf.freeze();
    let body = http_body_util::Full::new(bytes.clone())
        .map_err(|never| match never {})
        .boxed_unsync();
    Ok((Request::from_parts(parts, body), bytes))
}

/// The `<Key>` values of a DeleteObjects request.
fn delete_object_keys(xml: &[u8]) -> Result<Vec<String>, S3Error> {
    use quick_xml::events::Event;
    let malformed = || S3Error::InvalidRequest("The XML you provided was not well-formed.".into());
    let is_key = |name: quick_xml::name::LocalName<'_>| name.as_ref() == b"Key";
    let mut reader = quick_xml::Reader::from_reader(xml);
    let mut keys = Vec::new();
    // The key being read. Its text is every piece of character data inside the
    // element, references decoded and CDATA sections included, joined as any XML
    // parser behind the proxy joins them.
    let mut key: Option<String> = None;
    loop {
        match reader.read_event().map_err(|_| malformed())? {
            // No element inside a key: parsers disagree on what its text would be.
            Event::Start(_) | Event::Empty(_) if key.is_some() => return Err(malformed()),
            Event::Start(e) if is_key(e.local_name()) => key = Some(String::new()),
            Event::Empty(e) if is_key(e.local_name()) => keys.push(String::new()),
            Event::End(e) if is_key(e.local_name()) => keys.extend(key.take()),
            Event::Text(t) => {
                if let Some(k) = key.as_mut() {
                    k.push_str(&t.unescape().map_err(|_| malformed())?);
                }
            }
            Event::CData(c) => {
                if let Some(k) = key.as_mut() {
                    k.push_str(std::str::from_utf8(&c).map_err(|_| malformed())?);
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    // A body in which no key was found (another encoding, an unclosed key) is refused
    // rather than authorised as deleting nothing.
    if key.is_some() || keys.is_empty() {
        return Err(malformed());
    }
    Ok(keys)
}

/// Largest CompleteMultipartUpload result read for the rewrite (it is a few hundred
/// bytes, plus any whitespace keep-alives the upstream sends while it assembles).
const MAX_COMPLETE_RESULT: usize = 1024 * 1024;

/// The CompleteMultipartUpload result names the object by an upstream URL in
/// `<Location>`; tenants get the URL they addressed instead.
pub(super) async fn complete_multipart_response<B>(
    ex: &Exchange,
    mut parts: http::response::Parts,
    body: B,
) -> Response<ResponseBody>
where
    B: http_body::Body<Data = Bytes> + Unpin,
{
    let Some(bytes) = read_bounded(body, MAX_COMPLETE_RESULT).await else {
        return error_response(
            &S3Error::ServiceUnavailable,
            &ex.resource,
            &ex.request_id,
            false,
        );
    };
    let text = String::from_utf8_lossy(&bytes);
    let rewritten = match (text.find("<Location>"), text.find("</Location>")) {
        (Some(a), Some(b)) if a < b => format!(
            "{}<Location>{}</Location>{}",
            &text[..a],
            crate::error::xml_escape(&ex.public_url),
            &text[b + "</Location>".len()..]
        ),
        _ => text.into_owned(),
    };
    parts.headers.remove(http::header::CONTENT_LENGTH);
    let mut resp = Response::from_parts(parts, super::response::full(Bytes::from(rewritten)));
    set_request_id(&mut resp, &ex.request_id);
    resp
}

/// ListBuckets from the credential's scopes; the upstream list is fetched (with the
/// admin key) only when a pattern scope needs it.
pub(super) async fn synthesize_list_buckets(
    state: &ProxyState,
    verified: &VerifiedRequest,
    parts: &Parts,
) -> Result<Response<ResponseBody>, S3Error> {
    let cred = &verified.credential;
    let upstream = if list_buckets::needs_upstream_list(cred) {
        let backend = state
            .backends
            .get(&cred.backend)
            .ok_or(S3Error::ServiceUnavailable)?;
        Some(fetch_upstream_buckets(state, backend).await?)
    } else {
        None
    };
    let query = list_buckets::ListBucketsQuery::parse(parts.uri.query())?;
    let xml =
        list_buckets::list_buckets_xml(cred, upstream.as_deref(), &query, &cred.access_key_id)?;
    let mut resp = Response::new(super::response::full(Bytes::from(xml)));
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/xml"),
    );
    Ok(resp)
}

async fn fetch_upstream_buckets(
    state: &ProxyState,
    backend: &UpstreamBackend,
) -> Result<Vec<list_buckets::UpstreamBucket>, S3Error> {
    let uri = backend.uri("/", "").map_err(|_| S3Error::InternalError)?;
    let mut req = Request::builder()
        .method(Method::GET)
        .uri(uri)
        .body(empty_out())
        .map_err(|_| S3Error::InternalError)?;
    backend
        .sign(&mut req, None, SystemTime::now())
        .map_err(|_| S3Error::InternalError)?;
    let resp = state.client.send(req).await.map_err(|e| e.s3_error())?;
    if !resp.status().is_success() {
        return Err(S3Error::ServiceUnavailable);
    }
    let bytes = read_bounded(resp.into_body(), list_buckets::MAX_UPSTREAM_XML_BYTES)
        .await
        .ok_or(S3Error::ServiceUnavailable)?;
    list_buckets::parse_upstream_list_buckets(&bytes).map_err(|_| S3Error::ServiceUnavailable)
}

#[cfg(test)]
mod tests {
    use super::delete_object_keys;

    fn keys(xml: &str) -> Option<Vec<String>> {
        delete_object_keys(xml.as_bytes()).ok()
    }

    fn one(key: &str) -> Option<Vec<String>> {
        Some(vec![key.to_owned()])
    }

    #[test]
    fn delete_keys_are_read_as_xml_parsers_read_them() {
        let cases = [
            (
                "<Delete><Object><Key>a/b</Key></Object></Delete>",
                one("a/b"),
            ),
            (
                "<Delete><Object><Key><![CDATA[x/y]]></Key></Object></Delete>",
                one("x/y"),
            ),
            (
                "<Delete><Object><Key>t/<![CDATA[../x]]></Key></Object></Delete>",
                one("t/../x"),
            ),
            (
                "<Delete><Object><Key>&#111;&amp;</Key></Object></Delete>",
                one("o&"),
            ),
            (
                "<Delete><Object><Key>t/<!-- c -->../x</Key></Object></Delete>",
                one("t/../x"),
            ),
            (
                "<s3:Delete xmlns:s3=\"urn:x\"><s3:Object><s3:Key>k</s3:Key></s3:Object></s3:Delete>",
                one("k"),
            ),
            ("<Delete><Object><Key/></Object></Delete>", one("")),
            (
                "<Delete><Object><Key>a</Key></Object><Object><Key>b</Key></Object></Delete>",
                Some(vec!["a".to_owned(), "b".to_owned()]),
            ),
        ];
        for (xml, want) in cases {
            assert_eq!(keys(xml), want, "{xml}");
        }
    }

    #[test]
    fn delete_bodies_without_a_readable_key_are_malformed() {
        for xml in [
            "<Delete></Delete>",
            "<Delete><Object><Key>a<b/>c</Key></Object></Delete>",
            "<Delete><Object><Key>a<i>b</i></Key></Object></Delete>",
            "<Delete><Object><Key>a",
            "<Delete><Object><Key>&bogus;</Key></Object></Delete>",
            "\u{feff}",
        ] {
            assert_eq!(keys(xml), None, "{xml}");
        }
        let utf16: Vec<u8> = "<Delete><Object><Key>x</Key></Object></Delete>"
            .encode_utf16()
            .flat_map(u16::to_le_bytes)
            .collect();
        assert!(delete_object_keys(&[&[0xff, 0xfe][..], &utf16].concat()).is_err());
    }
}
