//! `x-amz-copy-source`: parsing into the bucket, key and version a copy reads, and
//! the canonical re-encoding to forward so the backend reads exactly what was
//! authorized.

use std::borrow::Cow;

use http::HeaderMap;

use crate::error::S3Error;

use super::encoding::{percent_decode_strict, s3_encode_into};
use super::route::{MAX_KEY_BYTES, decode_key, validate_bucket};

/// Longest header value accepted: a 63-byte bucket, a fully escaped 1024-byte key and
/// a version id fit with room to spare.
pub const MAX_COPY_SOURCE_BYTES: usize = 8 * 1024;

/// What a CopyObject / UploadPartCopy reads: decoded bucket, key and version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopySource {
    pub bucket: String,
    pub key: String,
    pub version_id: Option<String>,
}

impl CopySource {
    /// The canonical header value (`/bucket/key[?versionId=v]`, S3 encoding). Forward
    /// this instead of the tenant's text: backends differ on how they read `+` and
    /// unencoded characters, and the source must be the one that was authorized.
    #[must_use]
    pub fn to_header_value(&self) -> String {
        let mut out = String::with_capacity(self.bucket.len() + self.key.len() * 3 + 2);
        out.push('/');
        s3_encode_into(&mut out, &self.bucket, false);
        out.push('/');
        s3_encode_into(&mut out, &self.key, true);
        if let Some(v) = &self.version_id {
            out.push_str("?versionId=");
            s3_encode_into(&mut out, v, false);
        }
        out
    }
}

/// Parse `x-amz-copy-source`: `/bucket/key?versionId=v` or `bucket/key`, the key
/// percent-decoded with the same rules as a URL key. Access-point ARNs and any query
/// parameter other than `versionId` are refused.
pub fn parse_copy_source(header_value: &str) -> Result<CopySource, S3Error> {
    if header_value.len() > MAX_COPY_SOURCE_BYTES {
        return Err(invalid("The x-amz-copy-source header is too long."));
    }
    let (path, query) = match header_value.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (header_value, None),
    };
    let path = path.strip_prefix('/').unwrap_or(path);
    let Some((bucket, raw_key)) = path.split_once('/') else {
        return Err(invalid(
            "The x-amz-copy-source header must name a bucket and a key.",
        ));
    };
    validate_bucket(bucket).map_err(|_| invalid("The copy source bucket name is not valid."))?;
    let Some(key) = decode_key(raw_key)? else {
        return Err(invalid(
            "The x-amz-copy-source header must name a bucket and a key.",
        ));
    };
    Ok(CopySource {
        bucket: bucket.to_owned(),
        key,
        version_id: query.map(parse_version_id).transpose()?,
    })
}

/// The copy source of a request, if it names one. A repeated header is refused:
/// backends disagree on which copy wins.
pub fn copy_source_from_headers(headers: &HeaderMap) -> Result<Option<CopySource>, S3Error> {
    let mut values = headers.get_all("x-amz-copy-source").iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(invalid("The x-amz-copy-source header must appear once."));
    }
    let text = value
        .to_str()
        .map_err(|_| invalid("The x-amz-copy-source header is not valid text."))?;
    parse_copy_source(text).map(Some)
}

fn parse_version_id(query: &str) -> Result<String, S3Error> {
    let bad = || invalid("The copy source may only carry a versionId parameter.");
    let raw = query.strip_prefix("versionId=").ok_or_else(bad)?;
    if raw.contains('&') {
        return Err(bad());
    }
    let version = percent_decode_strict(raw).map_err(|_| bad())?;
    if version.is_empty() || version.len() > MAX_KEY_BYTES || version.contains('\0') {
        return Err(bad());
    }
    Ok(version.into_owned())
}

fn invalid(msg: &'static str) -> S3Error {
    S3Error::InvalidArgument(Cow::Borrowed(msg))
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn src(bucket: &str, key: &str, version: Option<&str>) -> CopySource {
        CopySource {
            bucket: bucket.into(),
            key: key.into(),
            version_id: version.map(Into::into),
        }
    }

    #[test]
    fn copy_source_accepts_both_forms_and_decodes_the_key() {
        let cases = [
            ("/srcb/a/b.txt", src("srcb", "a/b.txt", None)),
            ("srcb/a%2F..%2Fb", src("srcb", "a/../b", None)),
            (
                "/srcb/a%20b+c?versionId=v%2B1",
                src("srcb", "a b+c", Some("v+1")),
            ),
            ("srcb/%3Fq?versionId=3", src("srcb", "?q", Some("3"))),
        ];
        for (value, want) in cases {
            assert_eq!(parse_copy_source(value), Ok(want), "{value}");
        }
    }

    #[test]
    fn malformed_copy_sources_are_refused() {
        let long = format!("/srcb/{}", "k".repeat(MAX_COPY_SOURCE_BYTES));
        for bad in [
            "",
            "/",
            "/srcb",
            "/srcb/",
            "arn:aws:s3:us-east-1:1:accesspoint/ap/object/k",
            "/ab/k",
            "/srcb/k%00",
            "/srcb/k%zz",
            "/srcb/k?acl",
            "/srcb/k?versionId=",
            "/srcb/k?versionId=1&x=2",
            long.as_str(),
        ] {
            let err = parse_copy_source(bad).unwrap_err();
            assert_eq!(err.code(), "InvalidArgument", "{bad}");
        }
    }

    #[test]
    fn canonical_header_value_round_trips() {
        for s in [
            src("srcb", "a b+c/d?e", Some("v 1")),
            src("srcb", "k", None),
        ] {
            let value = s.to_header_value();
            assert_eq!(parse_copy_source(&value), Ok(s.clone()), "{value}");
        }
        assert_eq!(
            src("srcb", "a b+c", None).to_header_value(),
            "/srcb/a%20b%2Bc"
        );
    }

    #[test]
    fn repeated_copy_source_headers_are_refused() {
        let mut h = HeaderMap::new();
        assert_eq!(copy_source_from_headers(&h), Ok(None));
        h.append("x-amz-copy-source", HeaderValue::from_static("/srcb/k"));
        assert_eq!(
            copy_source_from_headers(&h),
            Ok(Some(src("srcb", "k", None)))
        );
        h.append("x-amz-copy-source", HeaderValue::from_static("/other/k"));
        assert!(copy_source_from_headers(&h).is_err());
    }
}
