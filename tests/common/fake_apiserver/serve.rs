//! The fake API server's HTTP surface: routing, query parsing, the paginated LIST,
//! single GET, and the chunked newline-delimited WATCH stream. Errors are `Status`
//! JSON with the real codes and reasons, so kube's error paths are exercised too.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

use super::selector::Selector;
use super::state::{Msg, State, Sub, status_json};

pub type Shared = Arc<Mutex<State>>;
pub type Body = BoxBody<Bytes, std::io::Error>;
type Reply = Result<Response<Body>, std::io::Error>;

pub fn lock(shared: &Shared) -> MutexGuard<'_, State> {
    shared.lock().unwrap_or_else(|e| e.into_inner())
}

/// Serves one request. An `Err` makes hyper drop the connection (used while down).
pub fn handle<B>(shared: &Shared, req: Request<B>) -> Reply {
    let uri = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let mut st = lock(shared);
    if st.down {
        return Err(std::io::Error::other("fake apiserver is down"));
    }
    st.requests.push(uri);
    if req.method() != Method::GET {
        return Ok(status(
            405,
            "MethodNotAllowed",
            "the fake apiserver only serves GET",
        ));
    }
    let q = parse_query(req.uri().query().unwrap_or(""));
    let segs: Vec<&str> = req.uri().path().trim_matches('/').split('/').collect();
    let (ns, name) = match segs.as_slice() {
        ["api", "v1", "namespaces", ns, "secrets"] => (*ns, None),
        ["api", "v1", "namespaces", ns, "secrets", name] => (*ns, Some(*name)),
        _ => {
            return Ok(status(
                404,
                "NotFound",
                "the server could not find the requested resource",
            ));
        }
    };
    if ns != st.namespace {
        let msg = format!(
            "secrets is forbidden: cannot list resource \"secrets\" in the namespace \"{ns}\""
        );
        return Ok(status(403, "Forbidden", &msg));
    }
    let selector = match Selector::parse(q.get("labelSelector").map_or("", |s| s.as_str())) {
        Ok(s) => s,
        Err(e) => {
            return Ok(status(
                400,
                "BadRequest",
                &format!("unable to parse requirement: {e}"),
            ));
        }
    };
    if q.get("fieldSelector").is_some_and(|f| !f.is_empty()) {
        return Ok(status(
            400,
            "BadRequest",
            "field selectors are not supported by the fake",
        ));
    }
    match name {
        Some(name) => Ok(get_one(&st, name)),
        None if q.get("watch").is_some_and(|w| w == "true" || w == "1") => {
            st.watch_count += 1;
            drop(st);
            watch(shared, selector, &q)
        }
        None => {
            st.list_count += 1;
            Ok(list(&st, &selector, &q))
        }
    }
}

fn get_one(st: &State, name: &str) -> Response<Body> {
    match st.secrets.get(name) {
        Some(s) => json(200, serde_json::to_vec(&**s).expect("serialize secret")),
        None => status(404, "NotFound", &format!("secrets \"{name}\" not found")),
    }
}

/// One page, in name order, starting after the continue token's name. Later pages
/// report the first page's resourceVersion (as a real continue does) but show the
/// current objects; the watch from that version replays whatever changed since.
fn list(st: &State, sel: &Selector, q: &HashMap<String, String>) -> Response<Body> {
    let limit = match q.get("limit").map(|l| l.parse::<usize>()) {
        None => usize::MAX,
        Some(Ok(0)) => usize::MAX,
        Some(Ok(n)) => n,
        Some(Err(_)) => return status(400, "BadRequest", "limit must be a number"),
    };
    let (list_rv, after) = match q.get("continue").filter(|c| !c.is_empty()) {
        None => (st.rv, None),
        Some(tok) => match decode_token(tok) {
            Some((rv, _)) if rv < st.compacted => {
                let msg = "The provided continue parameter is too old to display a consistent list result.";
                return status(410, "Expired", msg);
            }
            Some((rv, start)) => (rv, Some(start)),
            None => return status(400, "BadRequest", "invalid continue token"),
        },
    };
    let range = match &after {
        Some(start) => st
            .secrets
            .range::<String, _>((std::ops::Bound::Excluded(start), std::ops::Bound::Unbounded)),
        None => st.secrets.range::<String, _>(..),
    };
    let mut matching = range.filter(|(_, s)| sel.matches(s.metadata.labels.as_ref()));
    let mut body = Vec::with_capacity(64 * 1024);
    body.extend_from_slice(br#"{"apiVersion":"v1","kind":"SecretList","items":["#);
    let mut last = None;
    for (i, (name, secret)) in matching.by_ref().take(limit).enumerate() {
        if i > 0 {
            body.push(b',');
        }
        serde_json::to_writer(&mut body, &**secret).expect("serialize secret");
        last = Some(name.clone());
    }
    let more = matching.next().is_some();
    let mut meta = serde_json::json!({ "resourceVersion": list_rv.to_string() });
    if let (true, Some(last)) = (more, last) {
        meta["continue"] = serde_json::Value::String(encode_token(list_rv, &last));
    }
    body.extend_from_slice(b"],\"metadata\":");
    serde_json::to_writer(&mut body, &meta).expect("serialize list meta");
    body.push(b'}');
    json(200, body)
}

fn encode_token(rv: u64, start: &str) -> String {
    let raw = serde_json::json!({ "v": "meta.k8s.io/v1", "rv": rv, "start": start });
    URL_SAFE_NO_PAD.encode(raw.to_string())
}

fn decode_token(tok: &str) -> Option<(u64, String)> {
    let raw = URL_SAFE_NO_PAD.decode(tok).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&raw).ok()?;
    Some((
        v.get("rv")?.as_u64()?,
        v.get("start")?.as_str()?.to_string(),
    ))
}

/// Opens a watch: replay from the history (or the 410), then live events, ended by
/// `timeoutSeconds` with a BOOKMARK.
fn watch(shared: &Shared, selector: Selector, q: &HashMap<String, String>) -> Reply {
    let from = match q.get("resourceVersion").filter(|r| !r.is_empty()) {
        None => None,
        Some(rv) => match rv.parse::<u64>() {
            Ok(rv) => Some(rv),
            Err(_) => {
                return Ok(status(
                    400,
                    "BadRequest",
                    "resourceVersion must be a number",
                ));
            }
        },
    };
    let bookmarks = q.get("allowWatchBookmarks").is_some_and(|b| b == "true");
    let timeout = q.get("timeoutSeconds").and_then(|t| t.parse::<u64>().ok());
    let (tx, rx) = unbounded_channel();
    let id = lock(shared).open_watch(
        from,
        Sub {
            id: 0,
            selector,
            bookmarks,
            tx,
        },
    );
    if let (Some(id), Some(secs)) = (id, timeout) {
        let shared = shared.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(secs)).await;
            lock(&shared).finish_watch(id);
        });
    }
    let body = WatchBody { rx }.boxed();
    Ok(Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .body(body)
        .expect("valid response"))
}

/// A watch stream: each message is one chunk; `Abort` breaks the chunked encoding.
struct WatchBody {
    rx: UnboundedReceiver<Msg>,
}

impl http_body::Body for WatchBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(Msg::Line(b))) => Poll::Ready(Some(Ok(Frame::data(b)))),
            Poll::Ready(Some(Msg::Abort)) => Poll::Ready(Some(Err(std::io::Error::other(
                "watch dropped by the fake",
            )))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

fn json(code: u16, body: Vec<u8>) -> Response<Body> {
    let body = Full::new(Bytes::from(body))
        .map_err(|never| match never {})
        .boxed();
    Response::builder()
        .status(StatusCode::from_u16(code).expect("valid status"))
        .header("content-type", "application/json")
        .body(body)
        .expect("valid response")
}

fn status(code: u16, reason: &str, message: &str) -> Response<Body> {
    json(
        code,
        status_json(code, reason, message).to_string().into_bytes(),
    )
}

/// `application/x-www-form-urlencoded` query decoding (`+` is a space), as kube
/// encodes its parameters.
fn parse_query(q: &str) -> HashMap<String, String> {
    let decode = |s: &str| {
        let s = s.replace('+', " ");
        percent_encoding::percent_decode_str(&s)
            .decode_utf8_lossy()
            .into_owned()
    };
    q.split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => (decode(k), decode(v)),
            None => (decode(kv), String::new()),
        })
        .collect()
}
