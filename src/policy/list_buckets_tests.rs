use time::macros::datetime;

use super::*;
use crate::credentials::model::{Access, CredentialSource, Scope};
use crate::secret::SecretKey;

fn cred(buckets: &[&str]) -> Credential {
    Credential {
        access_key_id: "AKIATEST".into(),
        secret: SecretKey::new("secret"),
        backend: "main".into(),
        scopes: buckets
            .iter()
            .map(|b| Scope {
                bucket: (*b).into(),
                access: Access::ReadOnly,
                prefix: None,
            })
            .collect(),
        expires_at: None,
        enabled: true,
        source: CredentialSource::Sqlite,
        description: String::new(),
    }
}

fn upstream(names: &[&str]) -> Vec<UpstreamBucket> {
    names
        .iter()
        .map(|n| UpstreamBucket {
            name: (*n).into(),
            creation_date: Some(datetime!(2024-05-06 7:08:09.5 UTC)),
        })
        .collect()
}

fn query(raw: &str) -> ListBucketsQuery {
    ListBucketsQuery::parse((!raw.is_empty()).then_some(raw)).unwrap()
}

/// The bucket names of a rendered answer, in order.
fn names(xml: &str) -> Vec<String> {
    xml.split("<Name>")
        .skip(1)
        .map(|s| s.split("</Name>").next().unwrap().to_owned())
        .collect()
}

fn between<'a>(xml: &'a str, tag: &str) -> Option<&'a str> {
    let open = format!("<{tag}>");
    let start = xml.find(&open)? + open.len();
    Some(&xml[start..start + xml[start..].find(&format!("</{tag}>"))?])
}

#[test]
fn exact_scopes_list_their_buckets_sorted_and_deduplicated() {
    let c = cred(&["zeta", "alpha", "alpha", "mid"]);
    assert!(!needs_upstream_list(&c));
    let xml = list_buckets_xml(&c, None, &query(""), "owner-1").unwrap();
    assert_eq!(names(&xml), ["alpha", "mid", "zeta"]);
    assert!(xml.contains("<CreationDate>2006-03-01T00:00:00.000Z</CreationDate>"));
    assert!(xml.contains("<Owner><ID>owner-1</ID><DisplayName>owner-1</DisplayName></Owner>"));
    assert!(xml.starts_with("<?xml") && xml.contains("<ListAllMyBucketsResult xmlns="));
    assert_eq!(between(&xml, "ContinuationToken"), None);
    assert_eq!(between(&xml, "Prefix"), None);
}

#[test]
fn pattern_scopes_list_matching_upstream_buckets_only() {
    let c = cred(&["team-a-*", "shared"]);
    assert!(needs_upstream_list(&c));
    let up = upstream(&[
        "team-a-logs",
        "team-b-logs",
        "team-a-web",
        "shared",
        "other",
    ]);
    let xml = list_buckets_xml(&c, Some(&up), &query(""), "o").unwrap();
    assert_eq!(names(&xml), ["shared", "team-a-logs", "team-a-web"]);
    assert!(xml.contains("<CreationDate>2024-05-06T07:08:09.500Z</CreationDate>"));
    // Without the upstream list, patterns add nothing.
    let xml = list_buckets_xml(&c, None, &query(""), "o").unwrap();
    assert_eq!(names(&xml), ["shared"]);
}

#[test]
fn prefix_filters_and_is_echoed() {
    let c = cred(&["logs-a", "logs-b", "web"]);
    let xml = list_buckets_xml(&c, None, &query("prefix=logs-"), "o").unwrap();
    assert_eq!(names(&xml), ["logs-a", "logs-b"]);
    assert_eq!(between(&xml, "Prefix"), Some("logs-"));
}

#[test]
fn pagination_walks_every_bucket_once_with_opaque_tokens() {
    let all = ["b01", "b02", "b03", "b04", "b05"];
    let c = cred(&all);
    let mut seen = Vec::new();
    let mut raw = "max-buckets=2".to_owned();
    for _ in 0..10 {
        let xml = list_buckets_xml(&c, None, &query(&raw), "o").unwrap();
        let page = names(&xml);
        assert!(page.len() <= 2);
        seen.extend(page);
        match between(&xml, "ContinuationToken") {
            Some(token) => {
                assert!(!token.contains("b0"), "token should be opaque: {token}");
                raw = format!("max-buckets=2&continuation-token={token}");
            }
            None => break,
        }
    }
    assert_eq!(seen, all);
}

#[test]
fn bad_query_values_are_invalid_argument() {
    for raw in [
        "max-buckets=0",
        "max-buckets=10001",
        "max-buckets=-1",
        "max-buckets=ten",
        "max-buckets=1&max-buckets=2",
        "continuation-token=%%%",
        "continuation-token=!!!",
        "continuation-token=__8",
    ] {
        let err = ListBucketsQuery::parse(Some(raw)).unwrap_err();
        assert_eq!(err.code(), "InvalidArgument", "{raw}");
    }
    let long = format!("continuation-token={}", "A".repeat(200));
    assert!(ListBucketsQuery::parse(Some(&long)).is_err());
    assert_eq!(
        query("max-buckets=10000&x-id=ListBuckets").max_buckets,
        10_000
    );
    assert_eq!(query("").max_buckets, MAX_BUCKETS_PER_PAGE);
}

#[test]
fn names_owner_and_prefix_are_xml_escaped() {
    let c = cred(&["a<b&c*"]);
    let up = upstream(&["a<b&c\"d"]);
    let q = ListBucketsQuery {
        prefix: Some("a<".into()),
        max_buckets: 10,
        start_after: None,
    };
    let xml = list_buckets_xml(&c, Some(&up), &q, "o&<").unwrap();
    assert!(xml.contains("<Name>a&lt;b&amp;c&quot;d</Name>"));
    assert!(xml.contains("<ID>o&amp;&lt;</ID>"));
    assert!(xml.contains("<Prefix>a&lt;</Prefix>"));
    assert!(!xml.contains("a<b"));
}

#[test]
fn upstream_list_is_parsed_with_namespaces_entities_and_cdata() {
    let xml = br#"<?xml version="1.0" encoding="UTF-8"?>
<ListAllMyBucketsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Owner><ID>admin</ID><DisplayName>admin</DisplayName></Owner>
  <Buckets>
    <Bucket><Name>alpha</Name><CreationDate>2019-10-12T17:50:30.000Z</CreationDate></Bucket>
    <Bucket><Name>b&amp;c</Name><CreationDate>not a date</CreationDate></Bucket>
    <s3:Bucket xmlns:s3="x"><s3:Name><![CDATA[cdata-name]]></s3:Name></s3:Bucket>
  </Buckets>
</ListAllMyBucketsResult>"#;
    let got = parse_upstream_list_buckets(xml).unwrap();
    assert_eq!(got.len(), 3);
    assert_eq!(got[0].name, "alpha");
    assert_eq!(
        got[0].creation_date,
        Some(datetime!(2019-10-12 17:50:30 UTC))
    );
    assert_eq!((got[1].name.as_str(), got[1].creation_date), ("b&c", None));
    assert_eq!(got[2].name, "cdata-name");
}

#[test]
fn bad_upstream_lists_are_refused() {
    let malformed: &[&[u8]] = &[
        b"<Buckets><Bucket><Name>a</Bucket>",
        b"<Buckets><Bucket><Name>&unknown;</Name></Bucket></Buckets>",
    ];
    for xml in malformed {
        assert_eq!(
            parse_upstream_list_buckets(xml),
            Err(ListBucketsParseError::Malformed)
        );
    }
    assert_eq!(
        parse_upstream_list_buckets(b"<Buckets><Bucket><Name/></Bucket></Buckets>"),
        Err(ListBucketsParseError::MissingName)
    );
    let big = vec![b' '; MAX_UPSTREAM_XML_BYTES + 1];
    assert_eq!(
        parse_upstream_list_buckets(&big),
        Err(ListBucketsParseError::TooLarge)
    );
    let many = "<Bucket><Name>x</Name></Bucket>".repeat(MAX_UPSTREAM_BUCKETS + 1);
    assert_eq!(
        parse_upstream_list_buckets(format!("<Buckets>{many}</Buckets>").as_bytes()),
        Err(ListBucketsParseError::TooManyBuckets)
    );
}
