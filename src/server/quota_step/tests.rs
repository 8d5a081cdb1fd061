//! Unit tests of the pure parts of quota accounting: lengths, ranges, plans and what
//! an unsure outcome settles at.

use super::plan::{Plan, body_length, copy_range_len, query_param};
use super::*;
use crate::auth::PayloadMode;

fn parts(headers: &[(&str, &str)]) -> Parts {
    let mut b = Request::builder()
        .method("PUT")
        .uri("/b/k?uploadId=a%2Bb&partNumber=1");
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(()).unwrap().into_parts().0
}

#[test]
fn incoming_is_the_decoded_length_else_content_length() {
    let streaming = PayloadMode::Streaming {
        signed: true,
        trailer: None,
        decoded_length: 7,
    };
    let p = parts(&[("content-length", "120")]);
    assert_eq!(body_length(&p, &streaming), Ok(7));
    assert_eq!(body_length(&p, &PayloadMode::Unsigned), Ok(120));
    assert_eq!(body_length(&parts(&[]), &PayloadMode::Unsigned), Ok(0));
}

#[test]
fn a_chunked_body_without_a_length_is_411_and_a_bad_length_is_400() {
    let p = parts(&[("transfer-encoding", "chunked")]);
    assert_eq!(
        body_length(&p, &PayloadMode::Unsigned),
        Err(S3Error::MissingContentLength)
    );
    let p = parts(&[("content-length", "-1")]);
    assert_eq!(
        body_length(&p, &PayloadMode::Unsigned).unwrap_err().code(),
        "InvalidArgument"
    );
}

#[test]
fn copy_source_range_is_validated_and_measured() {
    let h = |v: &str| parts(&[("x-amz-copy-source-range", v)]).headers;
    assert_eq!(copy_range_len(&parts(&[]).headers), Ok(None));
    assert_eq!(copy_range_len(&h("bytes=0-99")), Ok(Some(100)));
    assert_eq!(copy_range_len(&h("bytes=5-5")), Ok(Some(1)));
    for bad in [
        "bytes=5-4",
        "bytes=-5",
        "bytes=1-",
        "bytes=+1-2",
        "items=0-1",
        "bytes=0-18446744073709551615",
        "bytes=0-1,3-4",
    ] {
        assert!(copy_range_len(&h(bad)).is_err(), "{bad}");
    }
}

#[test]
fn query_parameters_are_decoded() {
    let p = parts(&[]);
    assert_eq!(
        query_param(p.uri.query(), "uploadId").as_deref(),
        Some("a+b")
    );
    assert_eq!(query_param(p.uri.query(), "versionId"), None);
}

#[test]
fn overwrites_reserve_the_whole_body_but_no_new_object() {
    let new = Plan::Object {
        incoming: 10,
        old: None,
    };
    let overwrite = Plan::Object {
        incoming: 10,
        old: Some(30),
    };
    assert_eq!(
        new.charge(),
        Some(Charge {
            bytes: 10,
            objects: 1
        })
    );
    assert_eq!(
        overwrite.charge(),
        Some(Charge {
            bytes: 10,
            objects: 0
        })
    );
    assert_eq!(Plan::Delete { old: Some(3) }.charge(), None);
    assert_eq!(Plan::Abort { parts: Some(3) }.charge(), None);
}

#[test]
fn an_unknown_outcome_never_settles_below_the_truth() {
    // A shrinking overwrite either happened (−20) or not (0): settle at 0.
    let shrink = Plan::Object {
        incoming: 10,
        old: Some(30),
    };
    assert_eq!(shrink.upper_bound(), (0, 0));
    let new = Plan::Object {
        incoming: 10,
        old: None,
    };
    assert_eq!(new.upper_bound(), (10, 1));
    let complete = Plan::Complete {
        object: "k".into(),
        parts: Some(100),
        old: None,
    };
    assert_eq!(complete.upper_bound(), (0, 1));
    assert_eq!(Plan::Delete { old: Some(5) }.upper_bound(), (0, 0));
}

#[test]
fn a_body_that_did_not_go_out_whole_cannot_have_committed() {
    let h = BodyHandle::default();
    assert!(!may_have_committed(Some(&h), 10), "nothing released");
    assert!(may_have_committed(Some(&h), 0));
    assert!(
        may_have_committed(None, 10),
        "no body handle: assume it may have"
    );
}
