//! Quota admission and accounting: pipeline step 6 ([`admit`], before any body byte
//! is read, so an over-quota `Expect: 100-continue` upload is refused instead of
//! continued) and the settle after the upstream answered ([`settle`]).
//!
//! Only buckets with an effective limit are accounted; every other request costs a
//! hash lookup. An admitted write holds a ledger reservation (atomic check against
//! `used + reserved + charge`); a 2xx turns it into usage with the real delta, a
//! refusal releases it, and an outcome that cannot be known is settled high and
//! corrected by a rescan.
//!
//! # Where accounting is conservative, and why
//!
//! The ledger may count more than the bucket holds (refusing a write that would have
//! fit, until the next scan corrects it), never less: less would let a tenant past
//! the hard cap.
//!
//! - **An overwrite reserves the whole new object.** The old bytes are freed only
//!   when the upstream confirms (`delta = new − old`), so near the cap an overwrite
//!   needs headroom for the full new body while it is in flight.
//! - **Racing requests on one key** (a delete and an overwrite, two overwrites): only
//!   the first, exclusive claim may subtract the old object; the others count a new
//!   object and subtract nothing (`claims`), so an old object is never freed twice.
//! - **An old object that cannot be sized** (HEAD failed, SSE-C without its key) is
//!   treated as absent: counted as a new object, nothing subtracted.
//! - **No answer, or an answer we could not check** (upstream timeout after the whole
//!   body went out, a client that left after the upstream answered, a 2xx
//!   CompleteMultipartUpload whose object could not be sized): the reservation is
//!   settled at the most the request could have added (`Plan::upper_bound`) and the
//!   bucket is rescanned. A body that never fully reached the upstream cannot have
//!   committed (it is sent with an exact Content-Length), so it is simply released.
//! - **Parts uploaded twice** (same part number) are counted twice until
//!   CompleteMultipartUpload or AbortMultipartUpload subtracts what ListParts lists.
//! - **Upstreams that do not list multipart uploads** (s3s-fs): a scan cannot see
//!   parts, so the ledger may or may not hold an upload's parts. Complete and Abort
//!   then subtract nothing and request a rescan, which sets the truth.
//! - **Versioned deletes** (a `versionId`) subtract nothing: the scan counts current
//!   objects only, and which version was current is not known here.
//! - **DeleteObjects** subtracts only keys the answer lists as deleted (quiet mode:
//!   not listed as failed) that the request named without a `VersionId`; an answer
//!   that cannot be read subtracts nothing.
//! - **A scan that finishes while a delete or shrinking overwrite is in flight** may
//!   have listed the bucket after the change took effect, so the settle subtracts
//!   nothing (`ledger::ScanMark`); a scan still running at the settle ignores the
//!   negative delta anyway. The next periodic scan frees the bytes. Rescanning at
//!   once would, under steady deletes, keep starting scans that race the next ones.
//! - **CopyObject answered 200 with an error document** (S3 does this for long
//!   copies) still counts the copy until the next scan.
//! - **POST object** is planned as the PutObject it becomes, by its file's exact size
//!   (`server::post_object`).

mod claims;
mod delete_many;
mod plan;
mod settle;

use std::sync::Arc;
use std::time::Duration;

use http::request::Parts;
use http::{HeaderValue, Request, Response};
use http_body_util::BodyExt as _;
use hyper::body::Incoming;

use self::claims::Claim;
pub use self::claims::KeyClaims;
use self::plan::{Ctx, Plan};
use super::listener::ResponseBody;
use super::special::buffer_delete_body;
use super::stack::Exchange;
use super::state::ProxyState;
use crate::auth::VerifiedRequest;
use crate::auth::body::BodyHandle;
use crate::error::S3Error;
use crate::metrics::Metrics;
use crate::policy::operation::S3Operation;
use crate::policy::route::Route;
use crate::policy::scope::CopySource;
use crate::quota::BucketKey;
use crate::quota::Limits;
use crate::quota::ledger::{self, Charge, Refusal, Reservation, ScanMark, Settled, UsageLedger};
use crate::quota::scanner::Scanner;
use crate::upstream::client::OutBody;

/// Most bytes of a refused request's body read to let the refusal reach the client.
const DRAIN_LIMIT: u64 = 16 * 1024 * 1024;
/// How long draining a refused body may take, and may stall.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
const DRAIN_IDLE: Duration = Duration::from_secs(1);
/// How long a write to a never-measured bucket waits for its first scan.
const UNKNOWN_USAGE_WAIT: Duration = Duration::from_secs(10);
/// The response header a write that leaves the bucket over its soft cap carries.
pub const SOFT_WARNING_HEADER: &str = "x-stowage-quota-warning";

/// The quota state the pipeline shares: the ledger, the scanner (for buckets whose
/// usage is unknown, and for corrections), metrics and the per-key claims.
pub struct QuotaGate {
    ledger: Arc<dyn UsageLedger>,
    scanner: Arc<Scanner>,
    metrics: Arc<Metrics>,
    claims: KeyClaims,
    unknown_wait: Duration,
}

impl QuotaGate {
    #[must_use]
    pub fn new(ledger: Arc<dyn UsageLedger>, scanner: Arc<Scanner>, metrics: Arc<Metrics>) -> Self {
        Self {
            ledger,
            scanner,
            metrics,
            claims: KeyClaims::default(),
            unknown_wait: UNKNOWN_USAGE_WAIT,
        }
    }

    #[must_use]
    pub fn scanner(&self) -> &Arc<Scanner> {
        &self.scanner
    }

    /// Reserve `charge`; a bucket never measured is scanned (bounded wait) and tried
    /// once more. Still unknown → 503 (retryable), never an unchecked write.
    async fn reserve(
        &self,
        key: &BucketKey,
        limits: &Limits,
        charge: Charge,
    ) -> Result<Reservation, S3Error> {
        match ledger::reserve(&self.ledger, key, limits, charge) {
            Err(Refusal::UsageUnknown) => {}
            other => return self.verdict(other),
        }
        let _ = tokio::time::timeout(self.unknown_wait, self.scanner.scan(key)).await;
        self.verdict(ledger::reserve(&self.ledger, key, limits, charge))
    }

    fn verdict(&self, r: Result<Reservation, Refusal>) -> Result<Reservation, S3Error> {
        r.map_err(|refusal| {
            self.metrics.quota.rejected(refusal);
            match refusal {
                Refusal::UsageUnknown => S3Error::ServiceUnavailable,
                Refusal::HardBytes | Refusal::MaxObjects => S3Error::QuotaExceeded,
            }
        })
    }
}

/// Where an accounted request stands; decides what dropping its ticket means.
enum Stage {
    /// Not sent upstream: nothing can have been stored.
    Admitted,
    /// Sent; the handle shows how much of the body went out.
    Forwarded(Option<BodyHandle>),
    /// The upstream answered 2xx and accounting has not finished.
    Answered,
    /// Accounted (or refused by the upstream).
    Settled,
}

/// One accounted request between admission and settle.
pub(super) struct Ticket {
    gate: Arc<QuotaGate>,
    key: BucketKey,
    limits: Limits,
    plan: Plan,
    reservation: Option<Reservation>,
    claims: Vec<Claim>,
    body_len: u64,
    stage: Stage,
    /// The ledger's scan mark at admission, before the request could take effect.
    mark: ScanMark,
    /// Who wrote: named in the soft-cap log line.
    access_key_id: String,
}

/// Step 6: plan and reserve what the request may add. `None`: nothing to account.
pub(super) async fn admit(
    state: &ProxyState,
    op: S3Operation,
    route: &Route,
    parts: &Parts,
    verified: &VerifiedRequest,
    copy_source: Option<&CopySource>,
) -> Result<Option<Ticket>, S3Error> {
    let Some((key, limits)) = quota_bucket(state, op, route, verified) else {
        return Ok(None);
    };
    let gate = &state.quota;
    let mark = gate.ledger.mark(&key);
    let ctx = Ctx {
        client: &state.client,
        backend: state
            .backends
            .get(&key.backend)
            .ok_or(S3Error::ServiceUnavailable)?,
        bucket: &key,
        claims: &gate.claims,
    };
    let req = plan::Request {
        op,
        route,
        parts,
        payload: &verified.payload,
        copy_source,
    };
    let Some(planned) = plan::plan(&ctx, &req).await? else {
        return Ok(None);
    };
    let reservation = match planned.plan.charge() {
        Some(charge) => Some(gate.reserve(&key, &limits, charge).await?),
        None => None,
    };
    Ok(Some(Ticket {
        gate: Arc::clone(gate),
        key,
        limits,
        plan: planned.plan,
        reservation,
        claims: planned.claims,
        body_len: planned.body_len,
        stage: Stage::Admitted,
        mark,
        access_key_id: verified.credential.access_key_id.clone(),
    }))
}

/// A refused request whose body the client may still be sending: read and discard
/// it (bounded) before the refusal goes out. Without this, a client that did not
/// ask `Expect: 100-continue` is often still writing when the 507 arrives, the
/// closing connection resets, the client never sees the 507, and it retries what
/// looks like a network error. A client that asked to continue has sent nothing:
/// polling its body would invite it to, so it is left alone.
pub(super) async fn drain_refused(err: S3Error, parts: &Parts, body: Incoming) -> S3Error {
    let headers = &parts.headers;
    let asked_to_continue = headers
        .get(http::header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if asked_to_continue || declared.is_some_and(|n| n > DRAIN_LIMIT) {
        return err;
    }
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, discard(body, DRAIN_LIMIT)).await;
    err
}

/// Read and drop up to `limit` bytes; a client that goes quiet for [`DRAIN_IDLE`]
/// is not waited for.
async fn discard(mut body: Incoming, limit: u64) {
    let mut seen = 0u64;
    while let Ok(Some(Ok(frame))) = tokio::time::timeout(DRAIN_IDLE, body.frame()).await {
        seen = seen.saturating_add(frame.data_ref().map_or(0, |d| d.len() as u64));
        if seen > limit {
            return;
        }
    }
}

/// The bucket and its effective limits, when `op` can change what a limited bucket
/// stores; everything else costs this one lookup.
fn quota_bucket(
    state: &ProxyState,
    op: S3Operation,
    route: &Route,
    verified: &VerifiedRequest,
) -> Option<(BucketKey, Limits)> {
    let bucket = route.bucket.as_deref().filter(|_| plan::accounted(op))?;
    let key = BucketKey::new(verified.credential.backend.as_str(), bucket);
    let (limits, _) = state.quota_limits.effective(&key)?;
    Some((key, limits))
}

impl Ticket {
    /// Before forwarding: DeleteObjects reads its keys from the verified body and
    /// sizes them. Other requests pass through.
    pub(super) async fn prepare(
        &mut self,
        state: &ProxyState,
        req: Request<OutBody>,
    ) -> Result<Request<OutBody>, S3Error> {
        if !matches!(self.plan, Plan::DeleteMany { .. }) {
            return Ok(req);
        }
        let (req, body) = buffer_delete_body(req).await?;
        let parsed = delete_many::parse_request(&body)?;
        let backend = state
            .backends
            .get(&self.key.backend)
            .ok_or(S3Error::ServiceUnavailable)?;
        let ctx = Ctx {
            client: &state.client,
            backend,
            bucket: &self.key,
            claims: &self.gate.claims,
        };
        let (sizes, claims) = delete_many::size_keys(&ctx, &parsed).await;
        self.claims.extend(claims);
        self.plan = Plan::DeleteMany {
            quiet: parsed.quiet,
            sizes,
        };
        Ok(req)
    }

    /// The request is about to go upstream with this body.
    pub(super) fn forwarding(&mut self, body: Option<&BodyHandle>) {
        self.stage = Stage::Forwarded(body.cloned());
    }

    /// Settle at the most the request can have added, and have the bucket rescanned.
    fn settle_high(&mut self) {
        if let Some(r) = self.reservation.take() {
            let (bytes, objects) = self.plan.upper_bound();
            r.settle(bytes, objects, &self.limits);
        }
        self.gate.scanner.request_fresh(&self.key);
    }

    fn rescan(&self) {
        self.gate.scanner.request_fresh(&self.key);
    }

    /// Apply what a delete or abort freed. A scan that finished since admission may
    /// already reflect it; then nothing is subtracted (the ledger counts high until
    /// the next periodic scan, never low).
    fn adjust(&self, bytes: i64, objects: i64) {
        if bytes != 0 || objects != 0 {
            self.gate
                .ledger
                .adjust_since(&self.key, self.mark, bytes, objects);
        }
    }

    /// Turn the reservation into usage; warn when the bucket is over its soft cap.
    fn settle_write(
        &mut self,
        mut resp: Response<ResponseBody>,
        bytes: i64,
        objects: i64,
    ) -> Response<ResponseBody> {
        if let Some(r) = self.reservation.take() {
            let settled = r.settle(bytes, objects, &self.limits);
            self.warn_soft(&mut resp, settled);
        }
        resp
    }

    fn warn_soft(&self, resp: &mut Response<ResponseBody>, settled: Settled) {
        if self
            .limits
            .soft_bytes
            .is_none_or(|soft| settled.usage.bytes <= soft)
        {
            return;
        }
        resp.headers_mut().insert(
            SOFT_WARNING_HEADER,
            HeaderValue::from_static("soft-limit-exceeded"),
        );
        if settled.crossed_soft {
            self.gate.metrics.quota.soft_crossed(&self.key);
            tracing::info!(backend = %self.key.backend, bucket = %self.key.bucket, access_key_id = %self.access_key_id, "bucket usage crossed its soft quota");
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let unsure = match &self.stage {
            Stage::Admitted | Stage::Settled => false,
            Stage::Forwarded(body) => may_have_committed(body.as_ref(), self.body_len),
            Stage::Answered => true,
        };
        if unsure {
            self.settle_high();
        }
    }
}

/// Could the upstream have stored something? Not if the body failed or never went
/// out whole: the upstream got an exact Content-Length and a short body.
fn may_have_committed(body: Option<&BodyHandle>, body_len: u64) -> bool {
    body.is_none_or(|h| h.failure().is_none() && h.bytes_released() >= body_len)
}

/// After the upstream answered (and the response was prepared): account a 2xx,
/// release on anything else.
pub(super) async fn settle(
    state: &ProxyState,
    ex: &Exchange,
    ticket: Option<Ticket>,
    resp: Response<ResponseBody>,
) -> Response<ResponseBody> {
    let Some(mut t) = ticket else {
        return resp;
    };
    if !resp.status().is_success() {
        // The upstream refused: nothing stored, the reservation is released on drop.
        t.stage = Stage::Settled;
        return resp;
    }
    t.stage = Stage::Answered;
    let resp = t.on_success(state, ex, resp).await;
    t.stage = Stage::Settled;
    resp
}

#[cfg(test)]
#[path = "quota_step/tests.rs"]
mod tests;
