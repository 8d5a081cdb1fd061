//! Raw HTTP/1.1 over TCP, for requests no client library would write: exact headers,
//! exact bytes, `Expect: 100-continue` without a body.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::signer::Req;

/// A parsed response.
#[derive(Debug, Clone)]
pub struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// `<Code>` of an S3 error document.
    pub fn code(&self) -> Option<String> {
        xml_tag(&self.text(), "Code")
    }

    /// `(status, code)` for exact assertions.
    pub fn status_code(&self) -> (u16, Option<String>) {
        (self.status, self.code())
    }
}

/// Text of the first `<tag>…</tag>`.
pub fn xml_tag(xml: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&format!("</{tag}>"))? + start;
    Some(xml[start..end].to_owned())
}

/// The request head as bytes (with `Connection: close`).
pub fn head_bytes(req: &Req) -> Vec<u8> {
    let mut head = format!("{} {} HTTP/1.1\r\n", req.method, req.target());
    for (n, v) in &req.headers {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    if req.get_header("connection").is_none() {
        head.push_str("connection: close\r\n");
    }
    if req.get_header("content-length").is_none() && !req.body.is_empty() {
        head.push_str(&format!("content-length: {}\r\n", req.body.len()));
    }
    head.push_str("\r\n");
    head.into_bytes()
}

/// Send `req` and read the response. The body is written while the response is read,
/// so an early answer (a refusal before the body) is still seen.
pub async fn send(addr: SocketAddr, req: &Req) -> RawResponse {
    let stream = TcpStream::connect(addr)
        .await
        .expect("connect to the proxy");
    stream.set_nodelay(true).expect("nodelay");
    let (mut rd, mut wr) = stream.into_split();
    let head = head_bytes(req);
    let body = req.body.clone();
    let writer = tokio::spawn(async move {
        wr.write_all(&head).await?;
        wr.write_all(&body).await?;
        wr.flush().await?;
        Ok::<_, std::io::Error>(wr)
    });
    let resp = tokio::time::timeout(Duration::from_secs(30), read_response(&mut rd))
        .await
        .expect("a response within 30 s");
    // The write half lived until the response was in; whatever it still had to send
    // no longer matters (the server may have stopped reading).
    writer.abort();
    resp.expect("a parseable HTTP response")
}

/// Read one response: status line, headers, then a Content-Length or chunked body (or
/// up to EOF). `100 Continue` interim responses are returned as they are.
pub async fn read_response<R: AsyncReadExt + Unpin>(rd: &mut R) -> Option<RawResponse> {
    let mut buf = Vec::new();
    let head_end = loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i;
        }
        let mut tmp = [0u8; 8192];
        let n = rd.read(&mut tmp).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&tmp[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let status: u16 = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut resp = RawResponse {
        status,
        headers,
        body: buf[head_end + 4..].to_vec(),
    };
    if status == 100 || status == 204 || status == 304 {
        return Some(resp);
    }
    let len = resp
        .header("content-length")
        .and_then(|v| v.parse::<usize>().ok());
    let chunked = resp
        .header("transfer-encoding")
        .is_some_and(|v| v.contains("chunked"));
    loop {
        if let Some(n) = len {
            if resp.body.len() >= n {
                resp.body.truncate(n);
                return Some(resp);
            }
        } else if let Some(decoded) = chunked.then(|| dechunk(&resp.body)).flatten() {
            resp.body = decoded;
            return Some(resp);
        }
        let mut tmp = [0u8; 65536];
        match rd.read(&mut tmp).await {
            Ok(0) | Err(_) => {
                return (len.is_none() && !chunked).then_some(resp);
            }
            Ok(n) => resp.body.extend_from_slice(&tmp[..n]),
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Decode a complete chunked body; `None` while incomplete.
fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = find(data, b"\r\n")?;
        let size_text = std::str::from_utf8(&data[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        data = &data[line_end + 2..];
        if size == 0 {
            return find(data, b"\r\n").map(|_| out);
        }
        if data.len() < size + 2 {
            return None;
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}
