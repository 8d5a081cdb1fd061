//! Step 9, accounting: once a response body has been sent (or abandoned), the
//! request's metrics and its audit row.

use std::time::Instant;

use http::Response;
use http_body_util::BodyExt;

use super::listener::ResponseBody;
use super::response::{BodyEnd, BodyEndKind, CountingBody};
use super::stack::Exchange;
use super::state::ProxyState;
use crate::audit::{AuditEvent, AuditLog, Outcome};

/// Count the exchange, and once its body has been sent (or abandoned), observe its
/// duration and hand its audit row to the queue.
pub(super) fn finish(
    state: &ProxyState,
    ex: Exchange,
    resp: Response<ResponseBody>,
    started: Instant,
) -> Response<ResponseBody> {
    let op = ex.operation.name();
    let status = resp.status().as_u16();
    state
        .metrics
        .requests
        .with_label_values(&[op, Outcome::from_status(status).as_str()])
        .inc();
    let metrics_duration = state.metrics.duration.with_label_values(&[op]);
    let inflight = state.metrics.inflight.clone();
    let counter = state.metrics.bytes_out.with_label_values(&[op]);
    let audit = state.audit.clone();
    let (parts, body) = resp.into_parts();
    let done = Box::new(move |end: BodyEnd| {
        let elapsed = started.elapsed();
        metrics_duration.observe(elapsed.as_secs_f64());
        inflight.dec();
        if let Some(audit) = audit {
            audit_exchange(&audit, ex, status, end, elapsed);
        }
    });
    Response::from_parts(parts, CountingBody::new(body, counter, done).boxed_unsync())
}

/// The audit row of a finished exchange. A body that failed upstream mid-stream is a
/// server error and one the client abandoned a client error, whatever the status said.
fn audit_exchange(
    audit: &AuditLog,
    ex: Exchange,
    status: u16,
    end: BodyEnd,
    elapsed: std::time::Duration,
) {
    let outcome = match end.how {
        BodyEndKind::Complete => Outcome::from_status(status),
        BodyEndKind::Failed => Outcome::ServerError,
        BodyEndKind::Abandoned => Outcome::ClientError,
    };
    if !audit.wants(ex.operation, outcome) {
        return;
    }
    audit.record(AuditEvent {
        time_ms: ex.started_ms,
        request_id: ex.request_id,
        access_key: ex.access_key,
        source: ex.source,
        operation: ex.operation.name(),
        bucket: ex.bucket,
        key: ex.key,
        status,
        bytes_in: ex.bytes_in,
        bytes_out: end.bytes,
        client_ip: ex.client_ip,
        outcome,
        duration_ms: u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
    });
}
