use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use rand::Rng as _;

use super::{Entry, MIB, MIN_PART, Worker, sha};
use crate::s3::failure;
use crate::state::Outcome;

impl Worker {
    /// CreateMultipartUpload, a 5 MiB part and a smaller last part, then Complete; one
    /// in four is aborted after the first part instead. A part refused (quota, revoked
    /// credential) aborts the upload, and the abort must succeed.
    pub(super) async fn multipart(&mut self) {
        let op = "multipart";
        let key = self.key();
        let abort_early = self.rng.gen_bool(0.25);
        let cred = self.ctx.pool.pick();
        let created = {
            let _phase = self.ctx.gate.read().await;
            cred.client
                .create_multipart_upload()
                .bucket(&self.ctx.bucket)
                .key(&key)
                .send()
                .await
        };
        let upload_id = match created {
            Ok(out) => out.upload_id().unwrap_or_default().to_owned(),
            Err(e) => return self.fail(op, &cred, None, &failure(&e)),
        };
        let parts = [self.body(MIN_PART, MIN_PART), self.body(1, MIB)];
        let mut done = Vec::new();
        for (i, data) in parts.iter().enumerate() {
            if abort_early && i == 1 {
                return self.abort(&key, &upload_id, "multipart_abort").await;
            }
            let number = i as i32 + 1;
            let phase = self.ctx.gate.read().await;
            let res = cred
                .client
                .upload_part()
                .bucket(&self.ctx.bucket)
                .key(&key)
                .upload_id(&upload_id)
                .part_number(number)
                .body(ByteStream::from(data.clone()))
                .send()
                .await;
            let tight = phase.tight;
            drop(phase);
            match res {
                Ok(out) => done.push(
                    CompletedPart::builder()
                        .part_number(number)
                        .set_e_tag(out.e_tag().map(str::to_owned))
                        .build(),
                ),
                Err(e) => {
                    self.fail("upload_part", &cred, Some(tight), &failure(&e));
                    return self.abort(&key, &upload_id, "multipart_abort").await;
                }
            }
        }
        let upload = CompletedMultipartUpload::builder()
            .set_parts(Some(done))
            .build();
        let res = {
            let _phase = self.ctx.gate.read().await;
            cred.client
                .complete_multipart_upload()
                .bucket(&self.ctx.bucket)
                .key(&key)
                .upload_id(&upload_id)
                .multipart_upload(upload)
                .send()
                .await
        };
        match res {
            Ok(_) => {
                let all = parts.concat();
                let entry = Entry {
                    sha: sha(&all),
                    size: all.len() as u64,
                };
                self.ledger.insert(key, entry);
                self.stats().record(op, Outcome::Ok);
            }
            Err(e) => {
                self.fail(op, &cred, None, &failure(&e));
                self.abort(&key, &upload_id, "multipart_abort").await;
            }
        }
    }

    /// AbortMultipartUpload with a live credential; must succeed (else the upload
    /// would be left behind and the final check would find it).
    async fn abort(&mut self, key: &str, upload_id: &str, op: &'static str) {
        for _ in 0..5 {
            let cred = self.ctx.pool.pick();
            let phase = self.ctx.gate.read().await;
            let res = cred
                .client
                .abort_multipart_upload()
                .bucket(&self.ctx.bucket)
                .key(key)
                .upload_id(upload_id)
                .send()
                .await;
            drop(phase);
            match res {
                Ok(_) => return self.stats().record(op, Outcome::Ok),
                Err(e) => {
                    let f = failure(&e);
                    self.fail(op, &cred, None, &f);
                    if !(f.status == Some(403) && cred.is_revoked()) {
                        return;
                    }
                }
            }
        }
    }

    /// The victim's key with a wrong secret: 403 SignatureDoesNotMatch, every time.
    pub(super) async fn bad_signature(&mut self) {
        let op = "bad_signature";
        let key = self.key();
        let res = self
            .ctx
            .bad_signature
            .get_object()
            .bucket(&self.ctx.bucket)
            .key(&key)
            .send()
            .await;
        match res {
            Err(e) if failure(&e).is(403, "SignatureDoesNotMatch") => {
                self.stats().record(op, Outcome::Injected("bad_signature"));
            }
            Err(e) => self.stats().unexpected(op, failure(&e).text),
            Ok(_) => self
                .stats()
                .unexpected(op, "a wrong secret was accepted".into()),
        }
    }

    /// Requests outside the victim's scope: a write and a listing of another bucket,
    /// and a copy whose source is in it. Each must be 403 AccessDenied.
    pub(super) async fn out_of_scope(&mut self) {
        let op = "out_of_scope";
        let c = &self.ctx.victim;
        let other = &self.ctx.other_bucket;
        let key = format!("w{:02}/escaped", self.id);
        let res = match self.rng.gen_range(0..3) {
            0 => c
                .put_object()
                .bucket(other)
                .key(&key)
                .body(ByteStream::from_static(b"escape"))
                .send()
                .await
                .map(|_| ())
                .map_err(|e| failure(&e)),
            1 => c
                .list_objects_v2()
                .bucket(other)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| failure(&e)),
            _ => c
                .copy_object()
                .bucket(&self.ctx.bucket)
                .key(&key)
                .copy_source(format!("{other}/seed"))
                .send()
                .await
                .map(|_| ())
                .map_err(|e| failure(&e)),
        };
        match res {
            Err(f) if f.is(403, "AccessDenied") => {
                self.stats().record(op, Outcome::Injected("out_of_scope"));
            }
            Err(f) => self.stats().unexpected(op, f.text),
            Ok(()) => self
                .stats()
                .unexpected(op, "an out-of-scope request was allowed".into()),
        }
    }

    /// A read-only credential writing into the worker's prefix: 403 AccessDenied (and
    /// the listing check would see the key if it had landed).
    pub(super) async fn read_only_write(&mut self) {
        let op = "read_only_write";
        let res = self
            .ctx
            .read_only
            .put_object()
            .bucket(&self.ctx.bucket)
            .key(format!("w{:02}/read-only-denied", self.id))
            .body(ByteStream::from_static(b"must not land"))
            .send()
            .await;
        match res {
            Err(e) if failure(&e).is(403, "AccessDenied") => {
                self.stats()
                    .record(op, Outcome::Injected("read_only_write"));
            }
            Err(e) => self.stats().unexpected(op, failure(&e).text),
            Ok(_) => self
                .stats()
                .unexpected(op, "a read-only credential wrote".into()),
        }
    }
}
