//! The `Authorization` header parser (and the date parsers next to it) on arbitrary
//! text: it answers Ok or a typed error, never panics, and whatever it accepts obeys
//! the documented shape.

#![no_main]

use libfuzzer_sys::fuzz_target;
use stowage::auth::parse::{
    MAX_AUTHORIZATION_LEN, MAX_SIGNED_HEADERS, format_amz_date, parse_amz_date,
    parse_authorization, parse_http_date,
};
use stowage::error::S3Error;

fn is_lower_hex(s: &str) -> bool {
    s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    match parse_authorization(&text) {
        Ok(h) => {
            assert!(text.len() <= MAX_AUTHORIZATION_LEN);
            assert!(text.starts_with("AWS4-HMAC-SHA256"));
            assert_eq!(h.signature.len(), 64);
            assert!(is_lower_hex(&h.signature));
            assert!(!h.signed_headers.is_empty());
            assert!(h.signed_headers.len() <= MAX_SIGNED_HEADERS);
            for (i, name) in h.signed_headers.iter().enumerate() {
                assert!(!name.is_empty());
                assert!(!name.bytes().any(|b| b.is_ascii_uppercase() || b == b';'));
                assert!(!h.signed_headers[..i].contains(name), "duplicate {name}");
            }
            let c = &h.credential;
            assert!(!c.access_key_id.is_empty() && !c.access_key_id.contains('/'));
            assert!(c.date.len() == 8 && c.date.bytes().all(|b| b.is_ascii_digit()));
            assert!(!c.region.is_empty() && !c.region.contains('/'));
            assert!(!c.service.is_empty() && !c.service.contains('/'));
            assert_eq!(
                c.scope(),
                format!("{}/{}/{}/aws4_request", c.date, c.region, c.service)
            );
            // The signature never reaches Debug output (and so never a log line), unless
            // a field that is shown (the access key, scope, header names) spells it.
            let shown = format!("{:?}{:?}", h.credential, h.signed_headers);
            if !shown.contains(&h.signature) {
                assert!(!format!("{h:?}").contains(&h.signature));
            }
        }
        Err(e) => {
            let _ = e.reason();
            let s3 = S3Error::from(e);
            // SigV2 and SigV4A are answered 501 NotImplemented; everything else is 4xx.
            assert!(
                s3.status().is_client_error() || s3.code() == "NotImplemented",
                "{}",
                s3.code()
            );
            let _ = s3.to_xml("/", "req");
        }
    }
    if let Ok(t) = parse_amz_date(&text) {
        assert_eq!(format_amz_date(t), *text);
    }
    let _ = parse_http_date(&text);
});
