//! The S3 SigV4 documentation's worked examples (AKIAIOSFODNN7EXAMPLE, 20130524,
//! examplebucket) and the encoding rules they rely on. The expected values are the
//! published ones from
//! <https://docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-header-based-auth.html>,
//! `sigv4-query-string-auth.html`, `sigv4-streaming.html` and
//! `sigv4-streaming-trailers.html`.

use http::{HeaderMap, HeaderName, HeaderValue};

use super::*;

const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
const DATE: &str = "20130524T000000Z";
const SCOPE: &str = "20130524/us-east-1/s3/aws4_request";

fn key() -> SigningKey {
    derive_signing_key(&SecretKey::new(SECRET), "20130524", "us-east-1", "s3")
}

fn header_map(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    map
}

fn names(signed: &str) -> Vec<String> {
    signed.split(';').map(str::to_owned).collect()
}

/// One worked example: the request as sent and the published results.
struct Example<'a> {
    method: &'a str,
    path: &'a str,
    query: &'a str,
    headers: &'a [(&'a str, &'a str)],
    signed: &'a str,
    payload: &'a str,
    creq_hash: &'a str,
    signature: &'a str,
}

/// Builds the canonical request from raw request parts, checks the published string
/// to sign's hash and the published signature.
fn check_example(ex: &Example<'_>) -> String {
    let map = header_map(ex.headers);
    let block = canonical_headers(&map, &names(ex.signed), None).unwrap();
    let creq = canonical_request(
        ex.method,
        &canonical_uri(ex.path),
        &canonical_query(ex.query, true),
        &block,
        ex.signed,
        ex.payload,
    );
    let sts = string_to_sign(DATE, SCOPE, &creq);
    assert_eq!(
        sts,
        format!("AWS4-HMAC-SHA256\n{DATE}\n{SCOPE}\n{}", ex.creq_hash)
    );
    assert_eq!(signature(&key(), &sts), ex.signature);
    creq
}

#[test]
fn uri_encode_keeps_only_unreserved_characters() {
    assert_eq!(uri_encode("aZ09-_.~", true), "aZ09-_.~");
    assert_eq!(uri_encode("a b+c/d$é", false), "a%20b%2Bc/d%24%C3%A9");
    assert_eq!(uri_encode("a/b", true), "a%2Fb");
    assert_eq!(uri_encode("*", true), "%2A");
}

#[test]
fn canonical_uri_encodes_once_without_normalising() {
    assert_eq!(canonical_uri(""), "/");
    assert_eq!(canonical_uri("/"), "/");
    assert_eq!(canonical_uri("/test$file.text"), "/test%24file.text");
    assert_eq!(canonical_uri("/b/a%20b"), "/b/a%20b");
    assert_eq!(canonical_uri("/b/a b"), "/b/a%20b");
    assert_eq!(canonical_uri("/b/./x/../y//z/"), "/b/./x/../y//z/");
    assert_eq!(canonical_uri("/b/%E1%88%B4"), "/b/%E1%88%B4");
    assert_eq!(canonical_uri("/b/\u{1234}"), "/b/%E1%88%B4");
}

#[test]
fn canonical_uri_treats_plus_and_its_escapes_alike() {
    for raw in ["/b/a+b", "/b/a%2bb", "/b/a%2Bb"] {
        assert_eq!(canonical_uri(raw), "/b/a%2Bb", "{raw}");
    }
}

#[test]
fn canonical_uri_keeps_an_encoded_slash_inside_a_segment() {
    assert_eq!(canonical_uri("/b/a%2Fb"), "/b/a%2Fb");
    assert_eq!(canonical_uri("/b/a%2fb"), "/b/a%2Fb");
}

#[test]
fn canonical_uri_keeps_a_stray_percent_literal() {
    assert_eq!(canonical_uri("/b/100%"), "/b/100%25");
    assert_eq!(canonical_uri("/b/%zz"), "/b/%25zz");
}

#[test]
fn canonical_query_sorts_by_encoded_name_then_value() {
    assert_eq!(
        canonical_query("prefix=J&max-keys=2", false),
        "max-keys=2&prefix=J"
    );
    assert_eq!(canonical_query("a=2&a=1&B=0", false), "B=0&a=1&a=2");
    assert_eq!(canonical_query("", false), "");
}

#[test]
fn canonical_query_gives_valueless_parameters_an_empty_value() {
    assert_eq!(canonical_query("uploads", false), "uploads=");
    assert_eq!(
        canonical_query("acl&&versionId=3", false),
        "acl=&versionId=3"
    );
}

#[test]
fn canonical_query_reencodes_names_and_values() {
    assert_eq!(canonical_query("k=a%2bb", false), "k=a%2Bb");
    assert_eq!(canonical_query("k=a+b", false), "k=a%20b");
    assert_eq!(canonical_query("k=a/b&p=%7E", false), "k=a%2Fb&p=~");
    assert_eq!(canonical_query("k=%FF", false), "k=%FF");
}

#[test]
fn canonical_query_drops_only_the_signature_when_asked() {
    let q = "X-Amz-Signature=abc&X-Amz-Date=1";
    assert_eq!(canonical_query(q, true), "X-Amz-Date=1");
    assert_eq!(
        canonical_query(q, false),
        "X-Amz-Date=1&X-Amz-Signature=abc"
    );
}

#[test]
fn header_values_are_trimmed_and_space_runs_collapsed() {
    assert_eq!(canonical_header_value("  a   b  c "), "a b c");
    assert_eq!(canonical_header_value("\"a   b\""), "\"a b\"");
    assert_eq!(canonical_header_value("a\tb"), "a\tb");
}

#[test]
fn canonical_headers_join_repeated_values_in_order() {
    let map = header_map(&[("x-a", "2"), ("host", "h"), ("x-a", " 1 ")]);
    let block = canonical_headers(&map, &names("host;x-a"), None).unwrap();
    assert_eq!(block, "host:h\nx-a:2,1\n");
}

#[test]
fn canonical_headers_report_an_absent_signed_header() {
    let map = header_map(&[("host", "h")]);
    assert_eq!(
        canonical_headers(&map, &names("host;x-amz-date"), None),
        Err(HeaderProblem::Absent)
    );
}

#[test]
fn canonical_headers_take_host_from_the_authority_when_missing() {
    let map = header_map(&[]);
    let block = canonical_headers(&map, &names("host"), Some("b.example:9000")).unwrap();
    assert_eq!(block, "host:b.example:9000\n");
}

#[test]
fn canonical_headers_refuse_values_that_are_not_text() {
    let mut map = HeaderMap::new();
    map.insert(
        "x-amz-meta-a",
        HeaderValue::from_bytes(b"\xff\xfe").unwrap(),
    );
    assert_eq!(
        canonical_headers(&map, &names("x-amz-meta-a"), None),
        Err(HeaderProblem::NotText)
    );
}

#[test]
fn signing_key_matches_the_published_derivation() {
    // IAM guide example: secret wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY, 20150830,
    // us-east-1, iam.
    let k = derive_signing_key(
        &SecretKey::new("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
        "20150830",
        "us-east-1",
        "iam",
    );
    assert_eq!(
        hex::encode(k.expose()),
        "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9"
    );
}

#[test]
fn doc_example_get_object_with_range() {
    let creq = check_example(&Example {
        method: "GET",
        path: "/test.txt",
        query: "",
        headers: &[
            ("host", "examplebucket.s3.amazonaws.com"),
            ("range", "bytes=0-9"),
            ("x-amz-content-sha256", EMPTY_SHA256),
            ("x-amz-date", DATE),
        ],
        signed: "host;range;x-amz-content-sha256;x-amz-date",
        payload: EMPTY_SHA256,
        creq_hash: "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972",
        signature: "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41",
    });
    assert!(
        creq.starts_with(
            "GET\n/test.txt\n\nhost:examplebucket.s3.amazonaws.com\nrange:bytes=0-9\n"
        )
    );
}

#[test]
fn doc_example_put_object() {
    let body_hash = "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072";
    assert_eq!(sha256_hex(b"Welcome to Amazon S3."), body_hash);
    let creq = check_example(&Example {
        method: "PUT",
        path: "/test$file.text",
        query: "",
        headers: &[
            ("date", "Fri, 24 May 2013 00:00:00 GMT"),
            ("host", "examplebucket.s3.amazonaws.com"),
            ("x-amz-content-sha256", body_hash),
            ("x-amz-date", DATE),
            ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
        ],
        signed: "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class",
        payload: body_hash,
        creq_hash: "9e0e90d9c76de8fa5b200d8c849cd5b8dc7a3be3951ddb7f6a76b4158342019d",
        signature: "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd",
    });
    assert!(creq.starts_with("PUT\n/test%24file.text\n\n"));
}

#[test]
fn doc_example_get_bucket_lifecycle() {
    let creq = check_example(&Example {
        method: "GET",
        path: "/",
        query: "lifecycle",
        headers: &[
            ("host", "examplebucket.s3.amazonaws.com"),
            ("x-amz-content-sha256", EMPTY_SHA256),
            ("x-amz-date", DATE),
        ],
        signed: "host;x-amz-content-sha256;x-amz-date",
        payload: EMPTY_SHA256,
        creq_hash: "9766c798316ff2757b517bc739a67f6213b4ab36dd5da2f94eaebf79c77395ca",
        signature: "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543",
    });
    assert!(creq.starts_with("GET\n/\nlifecycle=\n"));
}

#[test]
fn doc_example_list_objects() {
    let creq = check_example(&Example {
        method: "GET",
        path: "/",
        query: "max-keys=2&prefix=J",
        headers: &[
            ("host", "examplebucket.s3.amazonaws.com"),
            ("x-amz-content-sha256", EMPTY_SHA256),
            ("x-amz-date", DATE),
        ],
        signed: "host;x-amz-content-sha256;x-amz-date",
        payload: EMPTY_SHA256,
        creq_hash: "df57d21db20da04d7fa30298dd4488ba3a2b47ca3a489c74750e0f1e7df1b9b7",
        signature: "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7",
    });
    assert!(creq.starts_with("GET\n/\nmax-keys=2&prefix=J\n"));
}

#[test]
fn doc_example_presigned_url() {
    let query = "X-Amz-Algorithm=AWS4-HMAC-SHA256\
        &X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request\
        &X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host\
        &X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404";
    let creq = check_example(&Example {
        method: "GET",
        path: "/test.txt",
        query,
        headers: &[("host", "examplebucket.s3.amazonaws.com")],
        signed: "host",
        payload: UNSIGNED_PAYLOAD,
        creq_hash: "3bfa292879f6447bbcda7001decf97f4a54dc650c8942174ae0a9121cf58ad04",
        signature: "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404",
    });
    assert!(creq.contains("\nX-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host\n"));
}

#[test]
fn doc_example_chunked_upload_seed_and_chunk_signatures() {
    let seed = check_example(&Example {
        method: "PUT",
        path: "/examplebucket/chunkObject.txt",
        query: "",
        headers: &[
            ("content-encoding", "aws-chunked"),
            ("content-length", "66824"),
            ("host", "s3.amazonaws.com"),
            ("x-amz-content-sha256", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"),
            ("x-amz-date", DATE),
            ("x-amz-decoded-content-length", "66560"),
            ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
        ],
        signed: "content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;x-amz-storage-class",
        payload: "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
        creq_hash: "cee3fed04b70f867d036f722359b0b1f2f0e5dc0efadbc082b76c4c60e316455",
        signature: "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9",
    });
    assert!(seed.ends_with("\nSTREAMING-AWS4-HMAC-SHA256-PAYLOAD"));
    let chain = chain_chunks("4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9");
    assert_eq!(
        chain,
        [
            "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",
            "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497",
            "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9",
        ]
    );
}

/// Signs the documentation's three chunks (64 KiB of `a`, 1 KiB of `a`, empty),
/// chaining from `seed`.
fn chain_chunks(seed: &str) -> Vec<String> {
    let mut prev = seed.to_owned();
    let mut out = Vec::new();
    for chunk in [vec![b'a'; 65536], vec![b'a'; 1024], Vec::new()] {
        let sts = chunk_string_to_sign(DATE, SCOPE, &prev, &sha256_hex(&chunk));
        prev = signature(&key(), &sts);
        out.push(prev.clone());
    }
    out
}

#[test]
fn chunk_string_to_sign_has_the_empty_hash_line() {
    let sts = chunk_string_to_sign(DATE, SCOPE, "prev", "hash");
    assert_eq!(
        sts,
        format!("AWS4-HMAC-SHA256-PAYLOAD\n{DATE}\n{SCOPE}\nprev\n{EMPTY_SHA256}\nhash")
    );
}

#[test]
fn doc_example_chunked_upload_with_trailer() {
    check_example(&Example {
        method: "PUT",
        path: "/examplebucket/chunkObject.txt",
        query: "",
        headers: &[
            ("content-encoding", "aws-chunked"),
            ("host", "s3.amazonaws.com"),
            (
                "x-amz-content-sha256",
                "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER",
            ),
            ("x-amz-date", DATE),
            ("x-amz-decoded-content-length", "66560"),
            ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
            ("x-amz-trailer", "x-amz-checksum-crc32c"),
        ],
        signed: "content-encoding;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;x-amz-storage-class;x-amz-trailer",
        payload: "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER",
        creq_hash: "44d48b8c2f70eae815a0198cc73d7a546a73a93359c070abbaa5e6c7de112559",
        signature: "106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e",
    });
    let chain = chain_chunks("106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e");
    assert_eq!(
        chain,
        [
            "b474d8862b1487a5145d686f57f013e54db672cee1c953b3010fb58501ef5aa2",
            "1c1344b170168f8e65b41376b44b20fe354e373826ccbbe2c1d40a8cae51e5c7",
            "2ca2aba2005185cf7159c6277faf83795951dd77a3a99e6e65d5c9f85863f992",
        ]
    );
    let trailer_hash = sha256_hex(b"x-amz-checksum-crc32c:sOO8/Q==\n");
    assert_eq!(
        trailer_hash,
        "1e376db7e1a34a8ef1c4bcee131a2d60a1cb62503747488624e10995f448d774"
    );
    let sts = trailer_string_to_sign(DATE, SCOPE, &chain[2], &trailer_hash);
    assert_eq!(
        signature(&key(), &sts),
        "d81f82fc3505edab99d459891051a732e8730629a2e4a59689829ca17fe2e435"
    );
}

#[test]
fn hex32_matches_the_hex_crate() {
    for seed in 0u8..=255 {
        let bytes: [u8; 32] = std::array::from_fn(|i| {
            seed.wrapping_mul(31)
                .wrapping_add((i as u8).wrapping_mul(17))
        });
        assert_eq!(hex32(&bytes), hex::encode(bytes));
    }
}

#[test]
fn the_scratch_buffer_starts_empty_each_time_and_survives_nesting() {
    with_scratch(|b| b.push_str("left over"));
    let inner = with_scratch(|outer| {
        outer.push_str("outer");
        // A nested use gets its own buffer instead of panicking on the borrow.
        let inner = with_scratch(|b| {
            b.push_str("inner");
            b.clone()
        });
        (outer.clone(), inner)
    });
    assert_eq!(inner, ("outer".to_owned(), "inner".to_owned()));
    with_scratch(|b| b.push_str(&"x".repeat(100_000)));
    assert!(with_scratch(|b| b.is_empty() && b.capacity() <= 64 * 1024));
}
