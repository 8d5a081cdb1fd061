//! The response edge: S3 error documents (the only place errors become XML), upstream
//! error bodies rebuilt so no upstream text (hostnames, admin key ids, string-to-sign)
//! reaches a tenant, and a body wrapper that counts bytes and finishes the metrics.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Full};
use prometheus::IntCounter;

use super::listener::ResponseBody;
use crate::error::S3Error;

/// Render `err` as an S3 error response. HEAD responses carry no body.
#[must_use]
pub fn error_response(
    err: &S3Error,
    resource: &str,
    request_id: &str,
    is_head: bool,
) -> Response<ResponseBody> {
    let mut resp = if is_head {
        Response::new(empty())
    } else {
        let xml = err.to_xml(resource, request_id);
        let mut r = Response::new(full(Bytes::from(xml)));
        r.headers_mut().insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/xml"),
        );
        r
    };
    *resp.status_mut() = err.status();
    if let Some(secs) = err.retry_after_secs() {
        resp.headers_mut()
            .insert(http::header::RETRY_AFTER, HeaderValue::from(secs));
    }
    set_request_id(&mut resp, request_id);
    resp
}

pub fn set_request_id<B>(resp: &mut Response<B>, request_id: &str) {
    if let Ok(v) = HeaderValue::from_str(request_id) {
        resp.headers_mut().insert("x-amz-request-id", v);
    }
}

#[must_use]
pub fn empty() -> ResponseBody {
    http_body_util::Empty::new()
        .map_err(|never| match never {})
        .boxed_unsync()
}

#[must_use]
pub fn full(bytes: Bytes) -> ResponseBody {
    Full::new(bytes)
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// Upstream error codes that mean the upstream refused the *proxy's* admin
/// credentials: an operator problem, never the tenant's, and never to be echoed.
const UPSTREAM_AUTH_CODES: &[&str] = &[
    "SignatureDoesNotMatch",
    "InvalidAccessKeyId",
    "AuthorizationHeaderMalformed",
    "RequestTimeTooSkewed",
    "InvalidToken",
    "ExpiredToken",
    "MissingSecurityHeader",
    "InvalidSecurity",
];

/// An upstream error, reduced to what may be shown: status, code and a message.
#[derive(Debug, PartialEq, Eq)]
pub struct UpstreamErrorView {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
}

/// Decide what the tenant sees for an upstream error body.
#[must_use]
pub fn view_upstream_error(
    status: StatusCode,
    body: &[u8],
    upstream_host: &str,
) -> UpstreamErrorView {
    let text = String::from_utf8_lossy(body);
    let code = extract(&text, "Code")
        .filter(|c| {
            !c.is_empty() && c.len() <= 64 && c.chars().all(|ch| ch.is_ascii_alphanumeric())
        })
        .unwrap_or_else(|| {
            status
                .canonical_reason()
                .unwrap_or("Error")
                .replace(' ', "")
        });
    if UPSTREAM_AUTH_CODES.contains(&code.as_str()) {
        return UpstreamErrorView {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: "InternalError".into(),
            message: S3Error::InternalError.message().into_owned(),
        };
    }
    if status.is_server_error() {
        let generic = if status == StatusCode::SERVICE_UNAVAILABLE {
            S3Error::ServiceUnavailable.message()
        } else {
            S3Error::InternalError.message()
        };
        return UpstreamErrorView {
            status,
            code,
            message: generic.into_owned(),
        };
    }
    let message = extract(&text, "Message")
        .filter(|m| m.len() <= 512 && !m.contains(upstream_host) && !m.contains("://"))
        .unwrap_or_else(|| "The request was rejected by the storage service.".into());
    UpstreamErrorView {
        status,
        code,
        message,
    }
}

/// Text between `<tag>` and `</tag>`, unescaped minimally (upstream XML is simple).
fn extract(xml: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&close)? + start;
    Some(
        xml[start..end]
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&amp;", "&"),
    )
}

/// Read at most `limit` bytes of a body; `None` when it fails or is longer.
pub async fn read_bounded<B>(mut body: B, limit: usize) -> Option<Bytes>
where
    B: Body<Data = Bytes> + Unpin,
{
    let mut buf = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else { return None };
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > limit {
                return None;
            }
            buf.extend_from_slice(&data);
        }
    }
    Some(buf.freeze())
}

/// Build the sanitised error document for an upstream error.
#[must_use]
pub fn upstream_error_response(
    view: &UpstreamErrorView,
    resource: &str,
    request_id: &str,
    is_head: bool,
) -> Response<ResponseBody> {
    let mut resp = if is_head {
        Response::new(empty())
    } else {
        let xml = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{}</Code><Message>{}</Message><Resource>{}</Resource><RequestId>{}</RequestId></Error>",
            crate::error::xml_escape(&view.code),
            crate::error::xml_escape(&view.message),
            crate::error::xml_escape(resource),
            crate::error::xml_escape(request_id),
        );
        let mut r = Response::new(full(Bytes::from(xml)));
        r.headers_mut().insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/xml"),
        );
        r
    };
    *resp.status_mut() = view.status;
    set_request_id(&mut resp, request_id);
    resp
}

/// How a response body ended, for the exchange's audit row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyEnd {
    /// Body bytes handed to the connection.
    pub bytes: u64,
    pub how: BodyEndKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyEndKind {
    /// Every byte was produced.
    Complete,
    /// The inner body failed (the upstream broke off mid-stream).
    Failed,
    /// Dropped before its end: the client went away.
    Abandoned,
}

type OnDone = Box<dyn FnOnce(BodyEnd) + Send>;

/// Counts body bytes as they pass and runs `on_done` once, when the body ends, fails,
/// or is dropped (client went away).
pub struct CountingBody<B> {
    inner: B,
    counter: IntCounter,
    bytes: u64,
    /// The inner body said it is at its end (hyper may then drop it unpolled).
    end_seen: bool,
    on_done: Option<OnDone>,
}

impl<B: Body> CountingBody<B> {
    pub fn new(inner: B, counter: IntCounter, on_done: OnDone) -> Self {
        Self {
            end_seen: inner.is_end_stream(),
            inner,
            counter,
            bytes: 0,
            on_done: Some(on_done),
        }
    }
}

impl<B> CountingBody<B> {
    fn done(&mut self, how: BodyEndKind) {
        if let Some(f) = self.on_done.take() {
            f(BodyEnd {
                bytes: self.bytes,
                how,
            });
        }
    }
}

impl<B> Drop for CountingBody<B> {
    fn drop(&mut self) {
        // hyper drops a body that says it is at its end without polling it again
        // (HEAD, empty and fixed-length bodies): that one is complete, not abandoned.
        let how = if self.end_seen {
            BodyEndKind::Complete
        } else {
            BodyEndKind::Abandoned
        };
        self.done(how);
    }
}

impl<B> Body for CountingBody<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(d) = frame.data_ref() {
                    let n = d.len() as u64;
                    this.counter.inc_by(n);
                    this.bytes += n;
                }
                this.end_seen = this.inner.is_end_stream();
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.done(BodyEndKind::Failed);
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(None) => {
                this.done(BodyEndKind::Complete);
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_auth_failures_become_internal_errors_without_upstream_text() {
        let body = b"<Error><Code>SignatureDoesNotMatch</Code><Message>x</Message><AWSAccessKeyId>ADMINKEY</AWSAccessKeyId><StringToSign>AWS4</StringToSign></Error>";
        let v = view_upstream_error(StatusCode::FORBIDDEN, body, "10.0.0.5:3900");
        assert_eq!(v.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(v.code, "InternalError");
        let resp = upstream_error_response(&v, "/b/k", "rid", false);
        assert_eq!(resp.status(), 500);
    }

    #[test]
    fn upstream_not_found_keeps_code_and_message_but_not_hostnames() {
        let body = b"<Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message></Error>";
        let v = view_upstream_error(StatusCode::NOT_FOUND, body, "10.0.0.5:3900");
        assert_eq!(v.code, "NoSuchKey");
        assert_eq!(v.message, "The specified key does not exist.");
        let body = b"<Error><Code>PermanentRedirect</Code><Message>use http://10.0.0.5:3900/x</Message></Error>";
        let v = view_upstream_error(StatusCode::MOVED_PERMANENTLY, body, "10.0.0.5:3900");
        assert!(!v.message.contains("10.0.0.5"));
    }

    #[test]
    fn upstream_server_errors_get_generic_messages() {
        let body = b"<Error><Code>InternalError</Code><Message>io error at /var/lib/garage/data: disk full</Message></Error>";
        let v = view_upstream_error(StatusCode::INTERNAL_SERVER_ERROR, body, "h");
        assert!(!v.message.contains("/var/lib"));
        let v = view_upstream_error(StatusCode::SERVICE_UNAVAILABLE, b"", "h");
        assert_eq!(v.status, 503);
    }

    #[test]
    fn error_responses_carry_request_id_and_retry_after_when_retryable() {
        let r = error_response(&S3Error::SlowDown, "/b", "RID1", false);
        assert_eq!(r.status(), 503);
        assert_eq!(r.headers()["retry-after"], "1");
        assert_eq!(r.headers()["x-amz-request-id"], "RID1");
        let r = error_response(&S3Error::AccessDenied("no".into()), "/b", "RID1", true);
        assert_eq!(r.status(), 403);
        assert!(r.body().is_end_stream());
    }

    #[test]
    fn a_rate_limit_refusal_carries_the_limiters_wait_as_retry_after() {
        let err = S3Error::RateLimited {
            retry_after_secs: 7,
        };
        let r = error_response(&err, "/b", "RID1", false);
        assert_eq!(r.status(), 503);
        assert_eq!(r.headers()["retry-after"], "7");
        let r = error_response(&S3Error::AccessDenied("no".into()), "/b", "RID1", false);
        assert!(r.headers().get("retry-after").is_none());
    }
}
