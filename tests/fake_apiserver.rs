//! Proves the fake Kubernetes API server (tests/common/fake_apiserver) against the
//! real `kube` client and kube-runtime's watcher: if the fake drifts from the real
//! protocol, these fail before the informer's tests can mislead anyone.

mod common;

use std::path::Path;
use std::pin::Pin;
use std::time::Duration;

use common::fake_apiserver::{FakeApiServer, secret};
use futures_util::{Stream, StreamExt};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};

#[path = "fake_apiserver/wire.rs"]
mod wire;

const NS: &str = "stowage-system";
const SEL: &str = "broker.stowage.io/role in (virtual-credential,anonymous-binding)";
const WAIT: Duration = Duration::from_secs(15);

type Events = Pin<Box<dyn Stream<Item = Result<Event<Secret>, watcher::Error>> + Send>>;

async fn api(fake: &FakeApiServer, dir: &Path) -> Api<Secret> {
    let path = fake.write_kubeconfig(dir);
    let kc = Kubeconfig::read_from(&path).expect("read kubeconfig");
    let cfg = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .expect("config from kubeconfig");
    assert_eq!(
        cfg.default_namespace, NS,
        "kubeconfig must carry the namespace"
    );
    Api::default_namespaced(kube::Client::try_from(cfg).expect("client"))
}

fn vc(name: &str, key: &str) -> Secret {
    secret(name, "virtual-credential", &[], &[("access_key_id", key)])
}

fn events(api: Api<Secret>, cfg: watcher::Config) -> Events {
    watcher::watcher(api, cfg.labels(SEL))
        .default_backoff()
        .boxed()
}

/// A compact, comparable form of a watcher event (errors included).
fn describe(ev: &Result<Event<Secret>, watcher::Error>) -> String {
    let name = |s: &Secret| s.metadata.name.clone().unwrap_or_default();
    match ev {
        Ok(Event::Init) => "Init".into(),
        Ok(Event::InitApply(s)) => format!("InitApply({})", name(s)),
        Ok(Event::InitDone) => "InitDone".into(),
        Ok(Event::Apply(s)) => format!("Apply({})", name(s)),
        Ok(Event::Delete(s)) => format!("Delete({})", name(s)),
        Err(_) => "Err".into(),
    }
}

/// The next `n` non-error events, described.
async fn take(ev: &mut Events, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    while out.len() < n {
        let next = tokio::time::timeout(WAIT, ev.next())
            .await
            .expect("watcher event in time");
        let d = describe(&next.expect("watcher stream ended"));
        if d != "Err" {
            out.push(d);
        }
    }
    out
}

/// Events up to and including the first one equal to `until`, errors included.
async fn until(ev: &mut Events, until: &str) -> Vec<String> {
    let mut out = Vec::new();
    loop {
        let next = tokio::time::timeout(WAIT, ev.next())
            .await
            .expect("watcher event in time");
        out.push(describe(&next.expect("watcher stream ended")));
        if out.last().is_some_and(|d| d == until) {
            return out;
        }
    }
}

async fn started(fake: &FakeApiServer, dir: &Path, cfg: watcher::Config) -> Events {
    let mut ev = events(api(fake, dir).await, cfg);
    assert_eq!(
        until(&mut ev, "InitDone").await.first().map(String::as_str),
        Some("Init")
    );
    ev
}

#[tokio::test]
async fn watcher_sees_initial_list_then_added_modified_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeApiServer::start(NS).await;
    fake.upsert(vc("a", "AK1"));
    fake.upsert(secret("x", "other", &[], &[]));
    let mut ev = events(api(&fake, dir.path()).await, watcher::Config::default());
    assert_eq!(take(&mut ev, 3).await, ["Init", "InitApply(a)", "InitDone"]);
    fake.upsert(vc("b", "AK2"));
    fake.upsert(secret("x", "other", &[], &[("v", "2")]));
    fake.upsert(vc("a", "AK1-rotated"));
    assert!(fake.delete("b"));
    assert!(!fake.delete("b"));
    assert_eq!(
        take(&mut ev, 3).await,
        ["Apply(b)", "Apply(a)", "Delete(b)"]
    );
}

#[tokio::test]
async fn selector_transitions_arrive_as_deleted_and_added() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeApiServer::start(NS).await;
    fake.upsert(vc("a", "AK1"));
    let mut ev = started(&fake, dir.path(), watcher::Config::default()).await;
    fake.upsert(secret("a", "retired", &[], &[("access_key_id", "AK1")]));
    fake.upsert(secret("a", "anonymous-binding", &[], &[]));
    assert_eq!(take(&mut ev, 2).await, ["Delete(a)", "Apply(a)"]);
}

#[tokio::test]
async fn expired_watch_makes_the_watcher_relist() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeApiServer::start(NS).await;
    fake.upsert(vc("a", "AK1"));
    let mut ev = started(&fake, dir.path(), watcher::Config::default()).await;
    assert_eq!(fake.list_count(), 1);
    fake.upsert(vc("b", "AK2"));
    assert_eq!(take(&mut ev, 1).await, ["Apply(b)"]);
    fake.expire_watches();
    let seen = until(&mut ev, "InitDone").await;
    assert_eq!(
        seen,
        ["Err", "Init", "InitApply(a)", "InitApply(b)", "InitDone"]
    );
    assert_eq!(fake.list_count(), 2);
}

#[tokio::test]
async fn dropped_watch_resumes_from_its_version_without_relisting() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeApiServer::start(NS).await;
    fake.upsert(vc("a", "AK1"));
    let mut ev = started(&fake, dir.path(), watcher::Config::default()).await;
    fake.upsert(vc("b", "AK2"));
    assert_eq!(take(&mut ev, 1).await, ["Apply(b)"]);
    assert_eq!(fake.watch_count(), 1);
    fake.drop_watches();
    fake.upsert(vc("c", "AK3"));
    assert_eq!(take(&mut ev, 1).await, ["Apply(c)"]);
    assert_eq!(fake.list_count(), 1, "a dropped watch must not relist");
    assert_eq!(fake.watch_count(), 2);
    let last = fake.requests().last().cloned().unwrap();
    assert!(
        last.contains("watch=true") && last.contains("resourceVersion=2"),
        "{last}"
    );
}

#[tokio::test]
async fn delete_while_down_arrives_on_rewatch() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeApiServer::start(NS).await;
    fake.upsert(vc("a", "AK1"));
    fake.upsert(vc("b", "AK2"));
    let mut ev = started(&fake, dir.path(), watcher::Config::default()).await;
    fake.set_down(true);
    assert!(fake.delete("a"));
    tokio::time::sleep(Duration::from_millis(500)).await;
    fake.set_down(false);
    assert_eq!(take(&mut ev, 1).await, ["Delete(a)"]);
    assert_eq!(fake.list_count(), 1);
}

#[tokio::test]
async fn delete_while_down_is_gone_after_the_relist() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeApiServer::start(NS).await;
    fake.upsert(vc("a", "AK1"));
    fake.upsert(vc("b", "AK2"));
    let mut ev = started(&fake, dir.path(), watcher::Config::default()).await;
    fake.set_down(true);
    let broken = api(&fake, dir.path())
        .await
        .list(&ListParams::default())
        .await;
    assert!(
        matches!(broken, Err(ref e) if !matches!(e, kube::Error::Api(_))),
        "{broken:?}"
    );
    assert!(fake.delete("a"));
    fake.expire_watches(); // the history was compacted while we were away
    fake.set_down(false);
    let seen = until(&mut ev, "InitDone").await;
    let tail = &seen[seen.iter().rposition(|d| d == "Init").unwrap()..];
    assert_eq!(tail, ["Init", "InitApply(b)", "InitDone"], "all: {seen:?}");
    assert!(seen.contains(&"Err".to_string()));
}

#[tokio::test]
async fn pagination_pages_through_more_than_500_matching_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeApiServer::start(NS).await;
    for i in 0..1234 {
        fake.upsert(vc(&format!("vc-{i:05}"), &format!("AK{i}")));
        if i % 3 == 0 {
            fake.upsert(secret(&format!("vc-{i:05}-other"), "other", &[], &[]));
        }
    }
    let api = api(&fake, dir.path()).await;
    let (mut names, mut token, mut pages) = (Vec::new(), None::<String>, 0);
    loop {
        let mut lp = ListParams::default().labels(SEL).limit(500);
        if let Some(t) = token.take() {
            lp = lp.continue_token(&t);
        }
        let page = api.list(&lp).await.unwrap();
        pages += 1;
        assert!(page.items.len() <= 500);
        names.extend(page.items.iter().map(|s| s.metadata.name.clone().unwrap()));
        match page.metadata.continue_ {
            Some(t) if !t.is_empty() => token = Some(t),
            _ => break,
        }
    }
    assert_eq!((pages, names.len()), (3, 1234));
    assert!(names.windows(2).all(|w| w[0] < w[1]), "sorted and distinct");
    let before = fake.list_count();
    let mut ev = events(api, watcher::Config::default());
    let seen = until(&mut ev, "InitDone").await;
    assert_eq!(
        seen.iter().filter(|d| d.starts_with("InitApply")).count(),
        1234
    );
    assert_eq!(fake.list_count() - before, 3);
}

#[tokio::test]
async fn watch_timeout_ends_cleanly_and_the_watcher_rewatches() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeApiServer::start(NS).await;
    fake.upsert(vc("a", "AK1"));
    let mut ev = started(&fake, dir.path(), watcher::Config::default().timeout(1)).await;
    // The watcher only watches while polled; a clean end after a BOOKMARK yields nothing.
    let quiet = tokio::time::timeout(Duration::from_millis(2500), ev.next()).await;
    assert!(
        quiet.is_err(),
        "no event expected, got {:?}",
        quiet.map(|e| e.map(|e| describe(&e)))
    );
    assert!(fake.watch_count() >= 2, "watches: {}", fake.watch_count());
    fake.upsert(vc("b", "AK2"));
    assert_eq!(take(&mut ev, 1).await, ["Apply(b)"]);
    assert_eq!(fake.list_count(), 1);
}

/// The informer is tested with 100 000 Secrets: pages must stay cheap (a range scan
/// from the continue token, not a rescan from the start).
#[tokio::test]
async fn a_hundred_thousand_secrets_list_in_pages_through_the_watcher() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeApiServer::start(NS).await;
    for i in 0..100_000 {
        fake.upsert(vc(&format!("vc-{i:06}"), &format!("AK{i:06}")));
    }
    assert_eq!(fake.len(), 100_000);
    let mut ev = events(api(&fake, dir.path()).await, watcher::Config::default());
    let mut applied = 0usize;
    loop {
        let next = tokio::time::timeout(WAIT, ev.next())
            .await
            .unwrap()
            .unwrap();
        match next.expect("no errors") {
            Event::InitApply(_) => applied += 1,
            Event::InitDone => break,
            _ => {}
        }
    }
    assert_eq!((applied, fake.list_count()), (100_000, 200));
    fake.delete("vc-050000");
    let next = tokio::time::timeout(WAIT, ev.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(describe(&next), "Delete(vc-050000)");
}
