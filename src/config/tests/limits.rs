//! The resource-limit keys: each names itself when out of range, and the bounds
//! themselves are accepted.

use std::time::Duration;

use super::{error_of, parse};

#[test]
fn every_limit_key_out_of_range_is_refused_with_its_path() {
    for (section, key, bad) in [
        ("s3_proxy", "max_url_bytes", "65535"),
        ("s3_proxy", "max_delete_objects_body_bytes", "1023"),
        ("s3_proxy", "max_delete_objects_body_bytes", "2097153"),
        ("s3_proxy", "max_complete_multipart_body_bytes", "1023"),
        ("s3_proxy", "max_complete_multipart_body_bytes", "67108865"),
        ("s3_proxy", "body_read_timeout", "\"0s\""),
        ("admin", "max_connections", "0"),
        ("admin", "max_header_bytes", "100"),
        ("admin", "max_headers", "0"),
        ("admin", "header_read_timeout", "\"0s\""),
        ("admin", "idle_timeout", "\"0s\""),
    ] {
        let err = error_of(&format!("[{section}]\n{key} = {bad}"), &[]);
        assert!(
            err.starts_with(&format!("{section}.{key}: ")),
            "{key} = {bad}: {err}"
        );
    }
}

#[test]
fn limit_keys_take_their_bounds_and_the_defaults_are_documented_values() {
    let c = parse(
        "[s3_proxy]\nmax_url_bytes = 65534\nmax_delete_objects_body_bytes = 1024\nmax_complete_multipart_body_bytes = 67108864\nbody_read_timeout = \"250ms\"\n[admin]\nmax_connections = 1\nidle_timeout = \"1s\"",
    )
    .expect("bounds are valid");
    assert_eq!(c.s3_proxy.max_url_bytes, 65_534);
    assert_eq!(c.s3_proxy.body_read_timeout, Duration::from_millis(250));
    assert_eq!(c.admin.max_connections, 1);
    let d = parse("").expect("defaults");
    assert_eq!(d.s3_proxy.max_delete_objects_body_bytes, 2 * 1024 * 1024);
    assert_eq!(
        d.s3_proxy.max_complete_multipart_body_bytes,
        4 * 1024 * 1024
    );
    assert_eq!(d.s3_proxy.body_read_timeout, Duration::from_secs(30));
    assert_eq!(d.admin.max_connections, 64);
    assert_eq!(d.admin.header_read_timeout, Duration::from_secs(10));
    assert_eq!(d.admin.idle_timeout, Duration::from_secs(60));
}
