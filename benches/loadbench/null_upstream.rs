//! The "null" upstream: a minimal S3 responder that answers from memory, so a run
//! against it measures each proxy's own cost. It checks only that a request carries a
//! signature, and refuses the bench's deliberately forged one (all zeros); it does not
//! verify SigV4. Objects are sizes in a map; their bytes are slices of one shared
//! pattern buffer, so a 256 MiB GET copies nothing.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use super::body::SliceBody;

pub const BUCKET: &str = "bench";
pub const FORGED_SIGNATURE: &str =
    "0000000000000000000000000000000000000000000000000000000000000000";

struct State {
    pattern: Bytes,
    objects: Mutex<HashMap<String, usize>>,
}

/// Start it on its own runtime thread; returns its address. `seed` names the objects
/// that exist from the start, with their sizes.
pub fn spawn(pattern: Bytes, seed: &[(&str, usize)]) -> SocketAddr {
    let objects = seed.iter().map(|(k, n)| ((*k).to_owned(), *n)).collect();
    let state = Arc::new(State {
        pattern,
        objects: Mutex::new(objects),
    });
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind null upstream");
    std_listener.set_nonblocking(true).expect("nonblocking");
    let addr = std_listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("null upstream runtime");
        rt.block_on(async move {
            let listener = TcpListener::from_std(std_listener).expect("listener");
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let state = state.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| {
                        let state = state.clone();
                        async move { Ok::<_, Infallible>(answer(&state, req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
    });
    addr
}

fn xml(status: StatusCode, body: String) -> Response<SliceBody> {
    Response::builder()
        .status(status)
        .header("content-type", "application/xml")
        .body(SliceBody::new(Bytes::from(body), usize::MAX))
        .expect("response")
}

fn error(status: StatusCode, code: &str) -> Response<SliceBody> {
    xml(
        status,
        format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code></Error>"),
    )
}

fn empty(status: StatusCode) -> Response<SliceBody> {
    Response::builder()
        .status(status)
        .body(SliceBody::empty())
        .expect("response")
}

fn signature_of(req: &Request<Incoming>) -> Option<String> {
    if let Some(a) = req.headers().get("authorization") {
        let a = a.to_str().ok()?;
        return a.rsplit("Signature=").next().map(str::to_owned);
    }
    let q = req.uri().query()?;
    q.split('&')
        .find_map(|p| p.strip_prefix("X-Amz-Signature="))
        .map(str::to_owned)
}

async fn answer(state: &State, req: Request<Incoming>) -> Response<SliceBody> {
    match signature_of(&req) {
        None => return error(StatusCode::FORBIDDEN, "AccessDenied"),
        Some(s) if s == FORGED_SIGNATURE => {
            return error(StatusCode::FORBIDDEN, "SignatureDoesNotMatch");
        }
        Some(_) => {}
    }
    let path = req.uri().path().trim_start_matches('/').to_owned();
    let (bucket, key) = match path.split_once('/') {
        Some((b, k)) => (b.to_owned(), k.to_owned()),
        None => (path, String::new()),
    };
    if bucket.is_empty() {
        return xml(
            StatusCode::OK,
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?><ListAllMyBucketsResult><Owner><ID>null</ID></Owner>\
                 <Buckets><Bucket><Name>{BUCKET}</Name><CreationDate>2026-01-01T00:00:00.000Z</CreationDate></Bucket></Buckets>\
                 </ListAllMyBucketsResult>"
            ),
        );
    }
    if bucket != BUCKET {
        return error(StatusCode::NOT_FOUND, "NoSuchBucket");
    }
    if key.is_empty() {
        return bucket_op(state, &req);
    }
    object_op(state, req, key).await
}

fn bucket_op(state: &State, req: &Request<Incoming>) -> Response<SliceBody> {
    match *req.method() {
        http::Method::HEAD => empty(StatusCode::OK),
        http::Method::GET => {
            let objects = state.objects.lock().expect("objects");
            let mut keys: Vec<(&String, &usize)> = objects.iter().collect();
            keys.sort();
            let contents: String = keys
                .iter()
                .take(1000)
                .map(|(k, n)| {
                    format!(
                        "<Contents><Key>{k}</Key><LastModified>2026-01-01T00:00:00.000Z</LastModified>\
                         <ETag>\"0\"</ETag><Size>{n}</Size><StorageClass>STANDARD</StorageClass></Contents>"
                    )
                })
                .collect();
            xml(
                StatusCode::OK,
                format!(
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?><ListBucketResult><Name>{BUCKET}</Name>\
                     <Prefix></Prefix><KeyCount>{}</KeyCount><MaxKeys>1000</MaxKeys>\
                     <IsTruncated>false</IsTruncated>{contents}</ListBucketResult>",
                    keys.len()
                ),
            )
        }
        _ => error(StatusCode::NOT_IMPLEMENTED, "NotImplemented"),
    }
}

async fn object_op(state: &State, req: Request<Incoming>, key: String) -> Response<SliceBody> {
    let size = state.objects.lock().expect("objects").get(&key).copied();
    match *req.method() {
        http::Method::GET | http::Method::HEAD => {
            let Some(n) = size else {
                return error(StatusCode::NOT_FOUND, "NoSuchKey");
            };
            let body = if req.method() == http::Method::GET {
                SliceBody::new(state.pattern.slice(..n), 1 << 20)
            } else {
                SliceBody::empty()
            };
            Response::builder()
                .status(StatusCode::OK)
                .header("content-length", n)
                .header("etag", "\"0\"")
                .header("content-type", "application/octet-stream")
                .header("last-modified", "Thu, 01 Jan 2026 00:00:00 GMT")
                .body(body)
                .expect("response")
        }
        http::Method::PUT => {
            let mut body = req.into_body();
            let mut n = 0usize;
            while let Some(frame) = body.frame().await {
                match frame {
                    Ok(f) => n += f.data_ref().map_or(0, Bytes::len),
                    Err(_) => return error(StatusCode::BAD_REQUEST, "IncompleteBody"),
                }
            }
            state.objects.lock().expect("objects").insert(key, n);
            Response::builder()
                .status(StatusCode::OK)
                .header("etag", "\"0\"")
                .body(SliceBody::empty())
                .expect("response")
        }
        http::Method::DELETE => {
            state.objects.lock().expect("objects").remove(&key);
            empty(StatusCode::NO_CONTENT)
        }
        _ => error(StatusCode::NOT_IMPLEMENTED, "NotImplemented"),
    }
}
