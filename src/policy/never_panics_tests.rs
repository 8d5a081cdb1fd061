//! Property tests: every policy parser answers (Ok or an S3 error) on any input.

use http::{HeaderMap, Method};
use proptest::prelude::*;

use super::key_path::{readings, spellings};
use super::list_buckets::{ListBucketsQuery, parse_upstream_list_buckets};
use super::operation::classify;
use super::route::{encode_path, route};
use super::scope::parse_copy_source;

/// Text biased towards the characters that matter to these parsers.
fn tricky() -> impl Strategy<Value = String> {
    proptest::string::string_regex("[a-z0-9/%.?&=+ _\\-A-F\\\\\u{0}\u{e9}]{0,64}").unwrap()
}

proptest! {
    #[test]
    fn routing_and_classification_never_panic(host in tricky(), path in tricky(), query in tricky()) {
        let suffixes = vec!["s3.example.com".to_owned()];
        if let Ok(r) = route(Some(&host), &format!("/{path}"), &suffixes) {
            for m in [Method::GET, Method::PUT, Method::POST, Method::DELETE, Method::HEAD] {
                let _ = classify(&m, &r, Some(&query), &HeaderMap::new());
            }
            let encoded = encode_path(r.bucket.as_deref(), r.key.as_deref());
            let again = route(None, &encoded, &[]).unwrap();
            prop_assert_eq!(again.bucket, r.bucket);
            prop_assert_eq!(again.key, r.key);
        }
    }

    #[test]
    fn other_parsers_never_panic(s in tricky(), bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = parse_copy_source(&s);
        let _ = ListBucketsQuery::parse(Some(&s));
        let _ = readings(&s);
        let spelled = spellings(&s, "a%41\\/");
        prop_assert_eq!(spelled[0].0.as_ref(), s.as_str());
        prop_assert!(spelled.len() <= 4);
        let _ = parse_upstream_list_buckets(&bytes);
        let _ = parse_upstream_list_buckets(format!("<Bucket><Name>{s}</Name></Bucket>").as_bytes());
    }
}
