//! The upstream dies and comes back, stalls before or after its response head, resets
//! mid-body either way, or answers with bytes that are not HTTP.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::BUCKET;
use crate::common::clients::{describe, status_and_code};
use crate::common::edge;
use crate::common::faulty::Fault;
use crate::common::pattern;
use crate::common::uploads::{Location, Mode, Tamper};
use crate::support::{Faulted, eventually, readyz};

const READ_TIMEOUT: Duration = Duration::from_secs(1);

/// What one GET of the steady-traffic loop saw.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    Ok,
    Refused(Option<u16>, Option<String>),
    WrongBytes,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_killed_and_restarted_is_503_while_gone_and_serves_again_without_a_proxy_restart()
{
    let f = Faulted::start(|c| c.upstream.probe_interval = Duration::from_millis(200)).await;
    let data = pattern(8 * 1024, 1);
    f.client()
        .put_object()
        .bucket(BUCKET)
        .key("steady")
        .body(data.clone().into())
        .send()
        .await
        .unwrap_or_else(|e| panic!("seed PUT: {}", describe(&e)));
    eventually(
        Duration::from_secs(3),
        "readyz shows the backend reachable",
        || async { readyz(&f.h).await.1.contains("backend primary: reachable") },
    )
    .await;

    // Steady traffic in the background for the whole run.
    let seen: Arc<Mutex<Vec<(Instant, Seen, Duration)>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let traffic = {
        let (client, seen, stop, data) = (
            f.client(),
            Arc::clone(&seen),
            Arc::clone(&stop),
            data.clone(),
        );
        tokio::spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let t = Instant::now();
                let r = client
                    .get_object()
                    .bucket(BUCKET)
                    .key("steady")
                    .send()
                    .await;
                let s = match r {
                    Ok(out) => match out.body.collect().await.map(|b| b.into_bytes()) {
                        Ok(b) if b[..] == data[..] => Seen::Ok,
                        _ => Seen::WrongBytes,
                    },
                    Err(e) => {
                        let (s, c) = status_and_code(&e);
                        Seen::Refused(s, c)
                    }
                };
                seen.lock().unwrap().push((t, s, t.elapsed()));
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;

    f.fp.kill();
    let killed = Instant::now();
    // A write while it is gone: a clear, retryable 503 and nothing lands.
    let put = f
        .client()
        .put_object()
        .bucket(BUCKET)
        .key("during-outage")
        .body(b"lost".to_vec().into())
        .send()
        .await
        .expect_err("a PUT with the upstream gone fails");
    assert_eq!(
        status_and_code(&put),
        (Some(503), Some("ServiceUnavailable".to_owned()))
    );
    eventually(
        Duration::from_secs(3),
        "readyz shows the backend unreachable",
        || async {
            readyz(&f.h)
                .await
                .1
                .contains("backend primary: unreachable")
        },
    )
    .await;
    let (ready_status, _) = readyz(&f.h).await;
    assert_eq!(
        ready_status, 200,
        "reachability never makes the proxy unready"
    );
    assert_eq!(
        f.h.metric("stowage_upstream_reachable", &[("backend", "primary")]),
        0.0
    );
    tokio::time::sleep(Duration::from_millis(400)).await;

    f.fp.restart().await;
    let restarted = Instant::now();
    eventually(
        Duration::from_secs(4),
        "readyz shows the backend reachable again",
        || async { readyz(&f.h).await.1.contains("backend primary: reachable") },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    traffic.await.expect("traffic loop");

    let seen = seen.lock().unwrap().clone();
    // Requests in flight at a switch may go either way (the last checks cover them).
    let before = seen
        .iter()
        .filter(|(t, _, d)| *t + *d < killed)
        .collect::<Vec<_>>();
    let during = seen
        .iter()
        .filter(|(t, _, d)| *t > killed && *t + *d < restarted)
        .collect::<Vec<_>>();
    let after = seen
        .iter()
        .filter(|(t, ..)| *t > restarted + Duration::from_millis(100))
        .collect::<Vec<_>>();
    assert!(
        !before.is_empty() && !during.is_empty() && !after.is_empty(),
        "{seen:?}"
    );
    assert!(
        before.iter().all(|(_, s, _)| *s == Seen::Ok),
        "before: {before:?}"
    );
    let unavailable = Seen::Refused(Some(503), Some("ServiceUnavailable".to_owned()));
    assert!(
        during.iter().all(|(_, s, _)| *s == unavailable),
        "during: {during:?}"
    );
    assert!(
        after.iter().all(|(_, s, _)| *s == Seen::Ok),
        "after: {after:?}"
    );
    // Only those two outcomes, ever, and never a slow one: refused connections fail fast.
    assert!(
        seen.iter()
            .all(|(_, s, _)| *s == Seen::Ok || *s == unavailable),
        "{seen:?}"
    );
    assert!(
        seen.iter().all(|(.., d)| *d < Duration::from_secs(2)),
        "{seen:?}"
    );

    assert!(!f.h.exists_upstream(BUCKET, "during-outage").await);
    assert!(
        f.h.metric(
            "stowage_s3_upstream_errors_total",
            &[("kind", "unavailable")]
        ) >= 1.0
    );
    f.heals("after-restart").await;
    f.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_stalling_before_the_response_head_is_504_gateway_timeout() {
    let f = Faulted::start(|_| {}).await;
    f.h.put_upstream(BUCKET, "slow", b"never served").await;
    f.fp.set(Fault::StallBeforeHead);
    let r = f.raw("GET", "slow", b"").await;
    assert_eq!(
        (r.status, r.code().as_deref()),
        (504, Some("GatewayTimeout"))
    );
    // response_header_timeout is 2 s in the fault harness.
    assert!(
        r.elapsed >= Duration::from_millis(1900) && r.elapsed < Duration::from_secs(5),
        "answered after {:?}",
        r.elapsed
    );
    f.assert_no_internal_text(&r.body);

    let put = f.raw("PUT", "stalled-put", &pattern(32 * 1024, 2)).await;
    assert_eq!(
        (put.status, put.code().as_deref()),
        (504, Some("GatewayTimeout"))
    );
    f.fp.set(Fault::Pass);
    assert!(!f.h.exists_upstream(BUCKET, "stalled-put").await);
    assert!(f.h.metric("stowage_s3_upstream_errors_total", &[("kind", "timeout")]) >= 2.0);
    f.heals("after-stall-before").await;
    f.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_stalling_mid_body_aborts_the_client_transfer_after_the_read_timeout() {
    let f = Faulted::start(|_| {}).await;
    let data = pattern(256 * 1024, 3);
    f.h.put_upstream(BUCKET, "big", &data).await;
    f.fp.set(Fault::StallAfterHead { body_bytes: 1000 });

    let r = f.raw("GET", "big", b"").await;
    assert_eq!(r.status, 200, "the head had already been relayed");
    assert_eq!(r.declared, Some(data.len()));
    assert!(
        r.truncated(),
        "{} of {} bytes, yet the transfer looked complete",
        r.body.len(),
        data.len()
    );
    assert_eq!(
        &r.body[..],
        &data[..r.body.len()],
        "what arrived is the object's prefix"
    );
    assert!(
        r.elapsed >= READ_TIMEOUT && r.elapsed < Duration::from_secs(5),
        "aborted after {:?}",
        r.elapsed
    );

    // The SDK sees a failed body, not a short object.
    let out = f
        .client()
        .get_object()
        .bucket(BUCKET)
        .key("big")
        .send()
        .await
        .unwrap_or_else(|e| panic!("the head arrives: {}", describe(&e)));
    let t = Instant::now();
    assert!(
        out.body.collect().await.is_err(),
        "a stalled body must fail"
    );
    assert!(t.elapsed() < Duration::from_secs(5));
    let stalled = ("kind", "body_stalled");
    assert!(f.h.metric("stowage_s3_upstream_errors_total", &[stalled]) >= 2.0);
    f.heals("after-stall-mid-body").await;
    f.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_reset_mid_body_on_get_is_a_visibly_truncated_transfer() {
    let f = Faulted::start(|_| {}).await;
    let data = pattern(512 * 1024, 4);
    f.h.put_upstream(BUCKET, "reset-get", &data).await;
    f.fp.set(Fault::ResetAfterHead { body_bytes: 10_000 });

    let r = f.raw("GET", "reset-get", b"").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.declared, Some(data.len()));
    assert!(r.truncated(), "{} of {} bytes", r.body.len(), data.len());
    assert!(r.elapsed < Duration::from_secs(3), "took {:?}", r.elapsed);

    let out = f
        .client()
        .get_object()
        .bucket(BUCKET)
        .key("reset-get")
        .send()
        .await
        .unwrap_or_else(|e| panic!("the head arrives: {}", describe(&e)));
    assert!(out.body.collect().await.is_err(), "a reset body must fail");
    let failed = ("kind", "body_failed");
    assert!(f.h.metric("stowage_s3_upstream_errors_total", &[failed]) >= 2.0);
    f.heals("after-reset-get").await;
    f.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_reset_while_receiving_a_put_is_503_and_commits_nothing() {
    let f = Faulted::start(|_| {}).await;
    let data = pattern(1024 * 1024, 5);
    f.fp.set(Fault::ResetRequestAfterHead {
        body_bytes: 100_000,
    });
    let before = f.fp.bytes_to_upstream();
    let err = f
        .client()
        .put_object()
        .bucket(BUCKET)
        .key("half-uploaded")
        .body(data.clone().into())
        .send()
        .await
        .expect_err("a PUT the upstream stopped receiving fails");
    assert_eq!(
        status_and_code(&err),
        (Some(503), Some("ServiceUnavailable".to_owned())),
        "{}",
        describe(&err)
    );
    assert!(
        f.fp.bytes_to_upstream() - before > 100_000,
        "the upstream received part of the body"
    );

    // Hand-signed too, so the error body can be read whole.
    let raw = f.raw("PUT", "half-uploaded-raw", &data).await;
    assert_eq!(
        (raw.status, raw.code().as_deref()),
        (503, Some("ServiceUnavailable"))
    );
    f.assert_no_internal_text(&raw.body);

    // Every payload mode, aws-chunked ones included: the upstream got a short body.
    let signer = crate::common::signer::Signer::new(&f.ak, &f.sk);
    for mode in Mode::ALL {
        let key = format!("half-uploaded-{mode:?}");
        let r = edge::put(
            &f.h,
            &signer,
            Location::Header,
            mode,
            (BUCKET, &key),
            &data,
            &Tamper::default(),
        )
        .await;
        assert_eq!(
            r.status_code(),
            (503, Some("ServiceUnavailable".to_owned())),
            "{mode:?}: {}",
            r.text()
        );
    }

    f.fp.set(Fault::Pass);
    for mode in Mode::ALL {
        let key = format!("half-uploaded-{mode:?}");
        assert!(!f.h.exists_upstream(BUCKET, &key).await, "{key}");
    }
    assert!(!f.h.exists_upstream(BUCKET, "half-uploaded").await);
    assert!(!f.h.exists_upstream(BUCKET, "half-uploaded-raw").await);
    let listed =
        f.h.admin_client()
            .list_objects_v2()
            .bucket(BUCKET)
            .send()
            .await
            .unwrap_or_else(|e| panic!("upstream listing: {}", describe(&e)));
    assert_eq!(listed.key_count(), Some(0), "{:?}", listed.contents());
    f.heals("after-reset-put").await;
    f.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_upstream_response_is_503_service_unavailable_without_internal_text() {
    let f = Faulted::start(|_| {}).await;
    f.h.put_upstream(BUCKET, "obj", b"fine").await;
    f.fp.set(Fault::Garbage);

    let r = f.raw("GET", "obj", b"").await;
    assert_eq!(
        (r.status, r.code().as_deref()),
        (503, Some("ServiceUnavailable"))
    );
    assert!(r.elapsed < Duration::from_secs(3), "took {:?}", r.elapsed);
    f.assert_no_internal_text(&r.body);
    let put = f.raw("PUT", "garbled", b"some bytes").await;
    assert_eq!(
        (put.status, put.code().as_deref()),
        (503, Some("ServiceUnavailable"))
    );
    f.assert_no_internal_text(&put.body);
    let sdk = f
        .client()
        .head_object()
        .bucket(BUCKET)
        .key("obj")
        .send()
        .await
        .expect_err("HEAD through a garbling upstream fails");
    assert_eq!(crate::common::clients::status(&sdk), Some(503));
    assert!(f.h.metric("stowage_s3_upstream_errors_total", &[("kind", "malformed")]) >= 3.0);

    f.fp.set(Fault::Pass);
    assert!(!f.h.exists_upstream(BUCKET, "garbled").await);
    f.heals("after-garbage").await;
    f.shutdown().await;
}
