//! What a 2xx means for usage, per plan: settle the reservation with the real delta,
//! subtract what a delete or abort freed, and for CompleteMultipartUpload and
//! DeleteObjects read the (bounded) answer first. Anything that cannot be checked is
//! settled high and corrected by a rescan (see the parent module's notes).

use bytes::Bytes;
use http::Response;

use super::plan::{Plan, signed};
use super::{Stage, Ticket, delete_many};
use crate::error::S3Error;
use crate::server::listener::ResponseBody;
use crate::server::response::{error_response, full, read_bounded};
use crate::server::stack::Exchange;
use crate::server::state::ProxyState;
use crate::upstream::admin_ops;

/// Largest upstream answer read for accounting (DeleteObjects results, the
/// CompleteMultipartUpload document).
const MAX_RESULT_BYTES: usize = 4 * 1024 * 1024;

impl Ticket {
    pub(super) async fn on_success(
        &mut self,
        state: &ProxyState,
        ex: &Exchange,
        resp: Response<ResponseBody>,
    ) -> Response<ResponseBody> {
        match &self.plan {
            Plan::Object { incoming, old } => {
                let bytes = signed(*incoming) - signed(old.unwrap_or(0));
                let objects = i64::from(old.is_none());
                self.settle_write(resp, bytes, objects)
            }
            Plan::Part { bytes } => {
                let bytes = signed(*bytes);
                self.settle_write(resp, bytes, 0)
            }
            Plan::Abort { parts } => {
                match parts {
                    Some(n) if self.gate.scanner.lists_uploads(&self.key.backend) => {
                        self.adjust(-signed(*n), 0);
                    }
                    _ => self.rescan(),
                }
                resp
            }
            Plan::Delete { old } => {
                if let Some(n) = old {
                    self.adjust(-signed(*n), -1);
                }
                resp
            }
            Plan::Complete { .. } => self.complete(state, ex, resp).await,
            Plan::DeleteMany { .. } => self.delete_many(ex, resp).await,
            Plan::Unmeasured => {
                self.rescan();
                resp
            }
        }
    }

    /// CompleteMultipartUpload: the parts became an object of a size only the
    /// upstream knows; a 200 carrying an `<Error>` document stored nothing.
    async fn complete(
        &mut self,
        state: &ProxyState,
        ex: &Exchange,
        resp: Response<ResponseBody>,
    ) -> Response<ResponseBody> {
        let Some((resp, body)) = buffered(ex, resp).await else {
            self.settle_high();
            return unavailable(ex);
        };
        let Plan::Complete { object, parts, old } = self.plan.clone() else {
            return resp;
        };
        if contains(&body, b"<Error>") {
            self.stage = Stage::Settled;
            self.reservation = None;
            return resp;
        }
        let size = match state.backends.get(&self.key.backend) {
            Some(backend) => {
                admin_ops::object_size(&state.client, backend, &self.key.bucket, &object, None)
                    .await
            }
            None => Err(admin_ops::AdminOpError::Request),
        };
        let Ok(Some(size)) = size else {
            self.settle_high();
            return resp;
        };
        let lists = self.gate.scanner.lists_uploads(&self.key.backend);
        let freed = if lists { parts.unwrap_or(0) } else { 0 };
        let bytes = signed(size)
            .saturating_sub(signed(freed))
            .saturating_sub(signed(old.unwrap_or(0)));
        let resp = self.settle_write(resp, bytes, i64::from(old.is_none()));
        if !lists || parts.is_none() {
            // For the parts this could not subtract. After the settle: a scan counts
            // again what is settled while it runs, which would keep them counted.
            self.rescan();
        }
        resp
    }

    async fn delete_many(
        &mut self,
        ex: &Exchange,
        resp: Response<ResponseBody>,
    ) -> Response<ResponseBody> {
        let Some((resp, body)) = buffered(ex, resp).await else {
            return unavailable(ex);
        };
        if let (Some(result), Plan::DeleteMany { quiet, sizes }) =
            (delete_many::parse_result(&body), &self.plan)
        {
            let (bytes, objects) = delete_many::freed(sizes, *quiet, &result);
            self.adjust(-signed(bytes), -signed(objects));
        }
        resp
    }
}

/// Read a (bounded) response body and rebuild the response around the bytes.
async fn buffered(
    ex: &Exchange,
    resp: Response<ResponseBody>,
) -> Option<(Response<ResponseBody>, Bytes)> {
    let (mut parts, body) = resp.into_parts();
    let Some(bytes) = read_bounded(body, MAX_RESULT_BYTES).await else {
        tracing::warn!(request_id = %ex.request_id, "the upstream's answer could not be read for quota accounting");
        return None;
    };
    parts.headers.remove(http::header::CONTENT_LENGTH);
    Some((Response::from_parts(parts, full(bytes.clone())), bytes))
}

fn unavailable(ex: &Exchange) -> Response<ResponseBody> {
    error_response(
        &S3Error::ServiceUnavailable,
        &ex.resource,
        &ex.request_id,
        false,
    )
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}
