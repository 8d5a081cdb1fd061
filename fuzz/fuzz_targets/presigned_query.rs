//! The presigned-URL query parser and the SigV4 query canonicalisation on arbitrary
//! query strings: Ok, Ok(None) or a typed error, never a panic; accepted parameters
//! obey their documented shape, and the canonical query never carries the signature.

#![no_main]

use libfuzzer_sys::fuzz_target;
use stowage::auth::parse::{MAX_SIGNED_HEADERS, parse_presigned};
use stowage::auth::sigv4::{canonical_query, canonical_uri, query_pairs};
use stowage::error::S3Error;

fuzz_target!(|data: &[u8]| {
    // A request's query is `&str` from the URI (visible ASCII in practice); invalid
    // UTF-8 never reaches the parser, so it is skipped here rather than converted.
    let Ok(query) = std::str::from_utf8(data) else {
        return;
    };
    match parse_presigned(query) {
        Ok(Some(p)) => {
            assert!(query.contains("X-Amz-"));
            assert_eq!(p.signature.len(), 64);
            assert!(
                p.signature
                    .bytes()
                    .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
            );
            assert!(p.expires_secs <= 9_999_999_999);
            assert!(!p.signed_headers.is_empty() && p.signed_headers.len() <= MAX_SIGNED_HEADERS);
            assert!(p.credential.date.bytes().all(|b| b.is_ascii_digit()));
            // Neither the signature nor the token reaches Debug output, unless a field
            // that is shown (access key, scope, date, header names) spells it.
            let shown = format!("{p:?}");
            let visible = format!("{:?}{:?}{:?}", p.credential, p.amz_date, p.signed_headers);
            if !visible.contains(&p.signature) {
                assert!(!shown.contains(&p.signature));
            }
            if let Some(token) = p.security_token.as_deref().filter(|t| t.len() >= 8)
                && !visible.contains(token)
                && !p.signature.contains(token)
            {
                assert!(!shown.contains(token));
            }
        }
        Ok(None) => {}
        Err(e) => {
            let s3 = S3Error::from(e);
            // SigV2 and SigV4A are answered 501 NotImplemented; everything else is 4xx.
            assert!(
                s3.status().is_client_error() || s3.code() == "NotImplemented",
                "{}",
                s3.code()
            );
        }
    }
    let canonical = canonical_query(query, true);
    // Canonical form is `&`-joined `name=value` pairs sorted by (name, value), of unreserved or %XX text.
    let pairs: Vec<&str> = if canonical.is_empty() {
        Vec::new()
    } else {
        canonical.split('&').collect()
    };
    let split: Vec<(&str, &str)> = pairs.iter().filter_map(|p| p.split_once('=')).collect();
    assert!(
        split.windows(2).all(|w| w[0] <= w[1]),
        "unsorted: {canonical}"
    );
    // Names are matched raw (as `parse_presigned` matches them), so only a query
    // without escapes is sure to lose every `X-Amz-Signature` pair.
    if !query.contains(['%', '+']) {
        assert!(
            split.iter().all(|(name, _)| *name != "X-Amz-Signature"),
            "{canonical}"
        );
    }
    for pair in &pairs {
        assert_eq!(pair.matches('=').count(), 1, "{pair}");
        assert!(
            pair.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.~%=".contains(&b))
        );
    }
    assert!(pairs.len() <= query_pairs(query).count());
    let _ = canonical_uri(&format!("/{query}"));
});
