use super::*;

fn checker() -> HeadChecker {
    HeadChecker::new(HeadLimits {
        max_header_bytes: 256,
        max_headers: 4,
    })
}

fn code(r: Result<(), S3Error>) -> &'static str {
    r.err().map_or("ok", |e| e.code())
}

#[test]
fn content_length_with_transfer_encoding_is_refused_in_either_order() {
    for head in [
        "POST /b/k HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
        "POST /b/k HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
        "POST /b/k HTTP/1.1\r\nHost: h\r\ntRaNsFeR-eNcOdInG: chunked\r\ncontent-length: 5\r\n\r\n",
    ] {
        assert_eq!(
            code(checker().feed(head.as_bytes())),
            "InvalidRequest",
            "{head:?}"
        );
    }
}

#[test]
fn two_content_lengths_are_refused_even_when_equal() {
    let head = "PUT /b/k HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx";
    assert_eq!(code(checker().feed(head.as_bytes())), "InvalidRequest");
}

#[test]
fn a_transfer_encoding_other_than_plain_chunked_is_refused() {
    for te in ["chunked, identity", "gzip, chunked", "identity"] {
        let head = format!("PUT /b/k HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: {te}\r\n\r\n");
        assert_eq!(
            code(checker().feed(head.as_bytes())),
            "InvalidRequest",
            "{te}"
        );
    }
}

#[test]
fn a_transfer_encoding_on_a_get_is_refused() {
    let head = "GET /b/k HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
    assert_eq!(code(checker().feed(head.as_bytes())), "InvalidRequest");
}

#[test]
fn an_obs_folded_header_is_refused() {
    let head = "PUT /b/k HTTP/1.1\r\nHost: h\r\nTransfer-Encoding:\r\n chunked\r\n\r\n";
    assert_eq!(code(checker().feed(head.as_bytes())), "InvalidRequest");
}

#[test]
fn a_head_over_the_byte_or_count_limit_is_431() {
    let long = format!("GET /{} HTTP/1.1\r\nHost: h\r\n\r\n", "a".repeat(300));
    let err = checker().feed(long.as_bytes()).expect_err("too long");
    assert_eq!(err, S3Error::RequestHeaderSectionTooLarge);
    assert_eq!(err.status(), 431);
    // Never completed: refused as soon as the buffer passes the limit.
    let endless = format!("GET / HTTP/1.1\r\nX: {}", "a".repeat(300));
    assert_eq!(
        code(checker().feed(endless.as_bytes())),
        "RequestHeaderSectionTooLarge"
    );
    let many = "GET / HTTP/1.1\r\nA: 1\r\nB: 1\r\nC: 1\r\nD: 1\r\nE: 1\r\n\r\n";
    assert_eq!(
        code(checker().feed(many.as_bytes())),
        "RequestHeaderSectionTooLarge"
    );
    let four = "GET / HTTP/1.1\r\nA: 1\r\nB: 1\r\nC: 1\r\nD: 1\r\n\r\n";
    assert_eq!(code(checker().feed(four.as_bytes())), "ok");
}

#[test]
fn framing_is_followed_across_keep_alive_requests_split_anywhere() {
    let stream = b"PUT /b/1 HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n\r\nbodyGET /b/2 HTTP/1.1\r\nHost: h\r\n\r\nPOST /b/3 HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n";
    for split in 1..stream.len() {
        let mut c = checker();
        let (a, b) = stream.split_at(split);
        let result = c.feed(a).and_then(|()| c.feed(b));
        assert_eq!(code(result), "InvalidRequest", "split at {split}");
        assert_eq!(c.claim("PUT", "/b/1").map(|f| f.chunked), Some(false));
        assert!(c.claim("GET", "/b/2").is_some(), "split at {split}");
    }
}

#[test]
fn a_body_that_looks_like_a_head_is_not_checked() {
    let body = "GET / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n";
    let head = format!(
        "PUT /b/k HTTP/1.1\r\nHost: h\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut c = HeadChecker::new(HeadLimits {
        max_header_bytes: 1024,
        max_headers: 8,
    });
    assert_eq!(code(c.feed(head.as_bytes())), "ok");
}

#[test]
fn after_a_chunked_head_checking_stops_and_claims_do_not_vouch() {
    let mut c = checker();
    let head = "PUT /b/k HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
    assert_eq!(code(c.feed(head.as_bytes())), "ok");
    assert_eq!(c.claim("PUT", "/b/k").map(|f| f.chunked), Some(true));
    let next = "POST /b/k HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n";
    assert_eq!(code(c.feed(next.as_bytes())), "ok");
    assert_eq!(c.claim("POST", "/b/k"), None);
}

#[test]
fn a_claim_for_a_different_request_does_not_vouch() {
    let mut c = checker();
    assert_eq!(code(c.feed(b"GET /a HTTP/1.1\r\nHost: h\r\n\r\n")), "ok");
    assert_eq!(c.claim("GET", "/other"), None);
}
