//! The same kill-and-restart as `upstream.rs`, with a real separate upstream process:
//! Garage is SIGKILLed and started again on the same address with its data.

use std::time::Duration;

use crate::common::clients::{describe, status_and_code};
use crate::common::{BUCKET, Harness, UpstreamKind, pattern, scope};
use crate::support::{eventually, readyz};
use stowage::credentials::model::Access;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garage_process_killed_is_503_and_serves_its_data_again_once_restarted() {
    let Some(mut h) = Harness::start_with(UpstreamKind::Garage, |c| {
        c.upstream.probe_interval = Duration::from_millis(200);
        c.upstream.connect_timeout = Duration::from_secs(1);
    })
    .await
    else {
        assert!(
            std::env::var_os("STOWAGE_REQUIRE_GARAGE").is_none(),
            "STOWAGE_REQUIRE_GARAGE is set but no garage binary is on PATH"
        );
        eprintln!("GARAGE TIER DID NOT RUN: no garage binary on PATH");
        return;
    };
    let (ak, sk) = h.credential(vec![scope(BUCKET, Access::ReadWrite)]);
    let data = pattern(64 * 1024, 7);
    let client = h.client(&ak, &sk);
    client
        .put_object()
        .bucket(BUCKET)
        .key("before-kill")
        .body(data.clone().into())
        .send()
        .await
        .unwrap_or_else(|e| panic!("PUT before the kill: {}", describe(&e)));

    h.stop_upstream();
    for _ in 0..3 {
        let get = client
            .get_object()
            .bucket(BUCKET)
            .key("before-kill")
            .send()
            .await
            .expect_err("GET with Garage dead fails");
        assert_eq!(
            status_and_code(&get),
            (Some(503), Some("ServiceUnavailable".to_owned()))
        );
    }
    let put = client
        .put_object()
        .bucket(BUCKET)
        .key("during-outage")
        .body(b"lost".to_vec().into())
        .send()
        .await
        .expect_err("PUT with Garage dead fails");
    assert_eq!(status_and_code(&put).0, Some(503));
    eventually(
        Duration::from_secs(3),
        "readyz shows the backend unreachable",
        || async { readyz(&h).await.1.contains("backend primary: unreachable") },
    )
    .await;

    h.restart_upstream().await;
    let got = client
        .get_object()
        .bucket(BUCKET)
        .key("before-kill")
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET after the restart: {}", describe(&e)))
        .body
        .collect()
        .await
        .expect("body")
        .to_vec();
    assert_eq!(
        got, data,
        "the object written before the kill is served again"
    );
    assert!(!h.exists_upstream(BUCKET, "during-outage").await);
    client
        .put_object()
        .bucket(BUCKET)
        .key("after-restart")
        .body(b"back".to_vec().into())
        .send()
        .await
        .unwrap_or_else(|e| panic!("PUT after the restart: {}", describe(&e)));
    eventually(
        Duration::from_secs(4),
        "readyz shows the backend reachable",
        || async { readyz(&h).await.1.contains("backend primary: reachable") },
    )
    .await;
    h.shutdown().await;
}
