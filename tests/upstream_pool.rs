//! The upstream pool closes idle connections after `upstream.pool_idle_timeout`
//! (the soak found that without a pool timer they stayed open until reused). A minimal
//! keep-alive HTTP/1.1 server on 127.0.0.1:0 answers one request; the test then waits
//! for the client side of that connection to close.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty};
use stowage::upstream::client::{ClientOptions, OutBody, UpstreamClient};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

/// Accept one connection, answer one request with keep-alive, then report how long
/// after the answer the client closed the connection (`None`: still open at `limit`).
async fn serve_one(listener: TcpListener, limit: Duration) -> Option<Duration> {
    let (mut sock, _) = listener.accept().await.expect("accept");
    let mut buf = vec![0u8; 8192];
    let mut head = Vec::new();
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = sock.read(&mut buf).await.expect("read request");
        assert!(n > 0, "client closed before sending a request");
        head.extend_from_slice(&buf[..n]);
    }
    sock.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        .await
        .expect("answer");
    let answered = Instant::now();
    match tokio::time::timeout(limit, sock.read(&mut buf)).await {
        Ok(Ok(0)) => Some(answered.elapsed()),
        Ok(Ok(n)) => panic!("unexpected {n} more bytes on an idle connection"),
        Ok(Err(_)) => Some(answered.elapsed()),
        Err(_) => None,
    }
}

fn options(idle: Duration) -> ClientOptions {
    ClientOptions {
        connect_timeout: Duration::from_secs(5),
        response_header_timeout: Duration::from_secs(5),
        pool_idle_timeout: idle,
        pool_max_idle_per_host: 8,
        read_timeout: Duration::from_secs(5),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_upstream_connection_is_closed_after_pool_idle_timeout() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(serve_one(listener, Duration::from_secs(5)));

    let client = UpstreamClient::new(&options(Duration::from_millis(300)));
    let body: OutBody = Empty::<Bytes>::new()
        .map_err(|never| match never {})
        .boxed_unsync();
    let req = http::Request::get(format!("http://{addr}/bucket/key"))
        .body(body)
        .expect("request");
    let resp = client.send(req).await.expect("the upstream answers");
    assert_eq!(resp.status(), 200);
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    assert_eq!(&bytes[..], b"ok");

    // The client stays alive (a running proxy keeps its pool), so only the idle
    // reaper can close the connection.
    let closed_after = server.await.expect("server task");
    drop(client);
    let closed_after = closed_after.expect("the idle connection was still open 5 s later");
    assert!(
        closed_after < Duration::from_secs(3),
        "closed only after {closed_after:?}"
    );
}
