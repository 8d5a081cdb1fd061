//! The `/admin/s3-proxy` page in a real browser: headless Debian Chromium driven through
//! chromedriver's W3C WebDriver API, against the real app with both credential sources
//! (SQLite, and Kubernetes through the fake API server). Slow: one browser start.
//!
//! Needs `/usr/bin/chromedriver` and `/usr/bin/chromium` (`apt-get install chromium
//! chromium-driver`); without them the test FAILS with that hint, it never skips.

#[allow(dead_code)]
#[path = "e2e_admin/client.rs"]
mod client;
mod common;
#[allow(dead_code)]
#[path = "e2e_kubernetes/support.rs"]
mod support;

use std::time::Duration;

use client::{TOKEN, start, within};
use common::BUCKET;
use common::webdriver::Driver;
use serde_json::json;
use stowage::credentials::cache::SourceKind;
use support::{NS, keypair, vc};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_shows_both_sources_creates_and_disables_and_keeps_kubernetes_rows_read_only() {
    let a = start(|_| {}).await;
    let (kak, ksk) = keypair();
    a.k.fake.upsert(vc("vc-browser", &kak, &ksk, &[]));
    a.k.cached(&kak).await;
    let (existing, _, _) = a
        .create(json!([{"bucket": BUCKET, "access": "read-only"}]))
        .await;

    let d = Driver::start().await;
    d.goto(&a.url("/admin/s3-proxy")).await;
    let token = d.find("input[name=token]").await;
    d.type_into(&token, TOKEN).await;
    d.click(&d.find("#login").await).await;

    // Both sources' rows, with their labels.
    let krow = format!("tr[data-ak=\"{kak}\"]");
    let label = d.wait_text(&format!("{krow} .source")).await;
    assert_eq!(label, format!("kubernetes {NS}/vc-browser"));
    let slabel = d
        .wait_text(&format!("tr[data-ak=\"{existing}\"] .source"))
        .await;
    assert_eq!(slabel, "sqlite");

    // Create through the form; the secret is shown once and is the real one.
    d.type_into(
        &d.find("#create-scopes").await,
        &format!("{BUCKET}:read-write"),
    )
    .await;
    d.type_into(&d.find("#create-description").await, "made in the browser")
        .await;
    d.click(&d.find("#create-submit").await).await;
    let secret = d.wait_text("#secret-value").await;
    let ak = d.wait_text("#secret-ak").await;
    let cached = a.k.h.running().cache.get(SourceKind::Sqlite, &ak);
    let cached = cached.expect("the new credential is in the proxy's cache");
    assert_eq!(cached.secret.expose(), secret);
    assert_eq!(cached.description, "made in the browser");
    assert!(
        a.k.access(&ak, &secret).await.is_ok(),
        "it works through the proxy"
    );

    // Disable it through its row's button.
    let disable = d
        .find(&format!("tr[data-ak=\"{ak}\"] button[data-action=disable]"))
        .await;
    d.click(&disable).await;
    let cache = &a.k.h.running().cache;
    let off = within(Duration::from_secs(10), || async {
        cache
            .get(SourceKind::Sqlite, &ak)
            .is_some_and(|c| !c.enabled)
    })
    .await;
    assert!(off, "the click disabled {ak} in the proxy's cache");
    let api = a.get(&format!("/api/v1/credentials/{ak}")).await;
    assert_eq!(api.json["enabled"], false, "{}", api.text);
    assert_eq!(a.k.access(&ak, &secret).await, Err(Some(403)));
    d.find(&format!(
        "tr[data-ak=\"{ak}\"][data-enabled=false] button[data-action=enable]"
    ))
    .await;

    // The Kubernetes row offers no action, only who owns it.
    assert!(
        d.all(&format!("{krow} button")).await.is_empty(),
        "a Kubernetes row has no buttons"
    );
    let note = d.wait_text(&format!("{krow} .managed")).await;
    assert_eq!(note, format!("managed by claim {NS}/vc-browser"));
    assert!(
        !d.all(&format!(
            "tr[data-ak=\"{existing}\"] button[data-action=delete]"
        ))
        .await
        .is_empty(),
        "SQLite rows do have actions"
    );
    assert!(
        a.k.access(&kak, &ksk).await.is_ok(),
        "the claim's credential is untouched"
    );
    d.quit().await;
    a.shutdown().await;
}
