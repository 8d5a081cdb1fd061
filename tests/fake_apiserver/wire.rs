//! The fake's wire protocol seen through kube's `Api` (list, get, raw watch) and a
//! raw TCP request: pagination, selectors, Status errors, chunked event streams,
//! history replay, BOOKMARKs and the in-stream 410.

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams, WatchEvent, WatchParams};

use super::common::fake_apiserver::selector::Selector;
use super::common::fake_apiserver::{FakeApiServer, secret};
use super::{NS, SEL, WAIT, api, vc};

#[tokio::test]
async fn list_applies_the_label_selector_and_sets_resource_versions() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeApiServer::start(NS).await;
    fake.upsert(vc("a", "AK1"));
    fake.upsert(secret("b", "anonymous-binding", &[], &[]));
    fake.upsert(secret("c", "something-else", &[], &[]));
    let list = api(&fake, dir.path())
        .await
        .list(&ListParams::default().labels(SEL))
        .await
        .unwrap();
    let names: Vec<_> = list
        .items
        .iter()
        .map(|s| s.metadata.name.clone().unwrap())
        .collect();
    assert_eq!(names, ["a", "b"]);
    assert_eq!(list.metadata.resource_version.as_deref(), Some("3"));
    assert!(
        list.items
            .iter()
            .all(|s| s.metadata.resource_version.is_some())
    );
    assert!(
        list.items
            .iter()
            .all(|s| s.metadata.namespace.as_deref() == Some(NS))
    );
    assert!(list.items.iter().all(|s| s.metadata.uid.is_some()));
    assert_eq!(fake.list_count(), 1);
    assert!(fake.requests()[0].starts_with("/api/v1/namespaces/stowage-system/secrets?"));
}

#[test]
fn selector_operators_evaluate_like_the_apiserver() {
    let labels = |pairs: &[(&str, &str)]| {
        Some(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    };
    let l = labels(&[("role", "vc"), ("tier", "gold")]);
    let m = |s: &str| Selector::parse(s).unwrap().matches(l.as_ref());
    assert!(m("") && m("role") && m("!missing") && m("role=vc") && m("role==vc"));
    assert!(m("role!=x") && m("missing!=x") && m("role in (a,vc)") && m("role notin (a,b)"));
    assert!(m("missing notin (a)") && m("role in (vc), tier=gold"));
    assert!(!m("missing") && !m("!role") && !m("role=x") && !m("role!=vc"));
    assert!(!m("role in (a,b)") && !m("missing in (a)") && !m("role notin (vc)"));
    assert!(!m("role=vc,tier=silver"));
    for bad in ["role in (a", "role in a,b)", "ro le=x", "role=a b", "=x"] {
        assert!(Selector::parse(bad).is_err(), "{bad:?} must not parse");
    }
}

#[tokio::test]
async fn bad_selector_missing_secret_and_foreign_namespace_are_status_errors() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeApiServer::start(NS).await;
    fake.upsert(vc("a", "AK1"));
    let api = api(&fake, dir.path()).await;
    assert_eq!(
        api.get("a").await.unwrap().metadata.name.as_deref(),
        Some("a")
    );
    let code = |e: kube::Error| match e {
        kube::Error::Api(s) => (s.code, s.reason.clone()),
        other => panic!("expected a Status error, got {other}"),
    };
    assert_eq!(
        code(api.get("nope").await.unwrap_err()),
        (404, "NotFound".into())
    );
    let bad = api
        .list(&ListParams::default().labels("role in (a"))
        .await
        .unwrap_err();
    assert_eq!(code(bad), (400, "BadRequest".into()));
    let other: Api<Secret> = Api::namespaced(api.clone().into_client(), "default");
    assert_eq!(
        code(other.list(&ListParams::default()).await.unwrap_err()).0,
        403
    );
}

#[tokio::test]
async fn watch_from_a_too_old_version_gets_an_in_stream_410() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeApiServer::start(NS).await;
    fake.upsert(vc("a", "AK1"));
    fake.upsert(vc("b", "AK2"));
    fake.expire_watches();
    fake.upsert(vc("c", "AK3"));
    let api = api(&fake, dir.path()).await;
    let params = WatchParams::default().timeout(1);
    let stream = api
        .watch(&params, "1")
        .await
        .expect("HTTP 200, not a plain 410");
    let got: Vec<_> = stream.collect().await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(matches!(&got[0], Ok(WatchEvent::Error(s)) if s.code == 410 && s.reason == "Expired"));
    // From the version of the expiry on, the watch is fine and replays what followed.
    let got: Vec<_> = api.watch(&params, "2").await.unwrap().collect().await;
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(matches!(&got[0], Ok(WatchEvent::Added(s)) if s.metadata.name.as_deref() == Some("c")));
    assert!(matches!(&got[1], Ok(WatchEvent::Bookmark(b)) if b.metadata.resource_version == "3"));
}

#[tokio::test]
async fn watch_replays_history_after_the_version_and_ends_with_a_bookmark() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeApiServer::start(NS).await;
    for (n, k) in [("a", "1"), ("b", "2"), ("c", "3")] {
        fake.upsert(vc(n, k));
    }
    fake.delete("a");
    let api = api(&fake, dir.path()).await;
    let params = WatchParams::default().labels(SEL).timeout(1);
    let got: Vec<_> = api.watch(&params, "2").await.unwrap().collect().await;
    let kinds: Vec<String> = got
        .iter()
        .map(|e| match e {
            Ok(WatchEvent::Added(s)) => {
                format!("ADDED {}", s.metadata.resource_version.clone().unwrap())
            }
            Ok(WatchEvent::Deleted(s)) => {
                format!("DELETED {}", s.metadata.resource_version.clone().unwrap())
            }
            Ok(WatchEvent::Bookmark(b)) => format!("BOOKMARK {}", b.metadata.resource_version),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(kinds, ["ADDED 3", "DELETED 4", "BOOKMARK 4"]);
}

#[tokio::test]
async fn watch_response_is_chunked_newline_delimited_json() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let fake = FakeApiServer::start(NS).await;
    fake.upsert(vc("a", "AK1"));
    let addr = fake.url().trim_start_matches("http://").to_string();
    let mut tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let req = format!(
        "GET /api/v1/namespaces/{NS}/secrets?watch=true&timeoutSeconds=1&resourceVersion=0 HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    );
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut raw = String::new();
    tcp.read_to_string(&mut raw).await.unwrap();
    assert!(raw.starts_with("HTTP/1.1 200"), "{raw}");
    assert!(
        raw.to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "{raw}"
    );
    assert!(
        raw.contains("{\"object\":") || raw.contains("{\"type\":\"ADDED\""),
        "{raw}"
    );
    assert!(
        raw.contains("\"ADDED\"") && raw.ends_with("0\r\n\r\n"),
        "{raw}"
    );
}

#[tokio::test]
async fn bookmark_reaches_open_watches_that_allow_them() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeApiServer::start(NS).await;
    fake.upsert(vc("a", "AK1"));
    let api = api(&fake, dir.path()).await;
    let mut with = api
        .watch(&WatchParams::default(), "1")
        .await
        .unwrap()
        .boxed();
    let mut without = api
        .watch(&WatchParams::default().disable_bookmarks(), "1")
        .await
        .unwrap()
        .boxed();
    fake.bookmark();
    fake.upsert(vc("b", "AK2"));
    let next = tokio::time::timeout(WAIT, with.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(matches!(next, WatchEvent::Bookmark(ref b) if b.metadata.resource_version == "1"));
    let next = tokio::time::timeout(WAIT, without.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(matches!(next, WatchEvent::Added(ref s) if s.metadata.name.as_deref() == Some("b")));
}
