//! Payload mode × auth location × failure. Only the combinations S3 has: header auth
//! with every payload mode and a bodiless GET; presigned URLs with a hex or unsigned
//! payload and a GET (S3 has no presigned aws-chunked upload); the POST policy form.
//! Header auth has no expiry of its own (its time rule is the skew window), and a form
//! signs its policy, not the Host, so those cells do not exist.

use stowage::credentials::model::Access;
use stowage::credentials::sqlite::NewCredential;
use time::OffsetDateTime;

use crate::common::edge::host;
use crate::common::forms::Form;
use crate::common::signer::{EMPTY_SHA256, Req, Signer, UNSIGNED};
use crate::common::uploads::{self, Location, Mode, Tamper};
use crate::common::upstream_tap::tapped_harness;
use crate::common::{BACKEND, Harness, pattern, scope};
use crate::{Matrix, Want, aborted, refused, served};

const KIB: usize = 1024;
const CHUNK: usize = 64 * KIB;

/// What the request carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// A PUT with a body in this payload mode.
    Put(Mode),
    /// A GET with no body (empty-payload hash in a header, UNSIGNED-PAYLOAD presigned).
    EmptyGet,
    /// A `multipart/form-data` POST with a signed policy.
    Form,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Loc {
    Header,
    Query,
    Form,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    /// The control: correctly signed.
    None,
    WrongSecret,
    UnknownKey,
    /// The credential itself is past its `expires_at`.
    ExpiredCredential,
    /// The credential is disabled.
    DisabledCredential,
    /// The presigned URL or the form policy has expired.
    Expired,
    /// Dated 20 minutes in the future.
    Skewed,
    /// The second chunk's bytes altered after signing.
    ForgedChunk,
    /// The trailer signature altered.
    ForgedTrailerSignature,
    /// The trailer signature line left out (the request re-signed for the shorter
    /// body, so only the trailer's signature is missing).
    MissingTrailerSignature,
    /// Both an Authorization header and presign query parameters (for a form: an
    /// Authorization header beside the policy).
    HeaderAndQuery,
    /// Signed over `Host: other.example:8090`, sent with the proxy's own Host.
    OtherHost,
    /// `host` left out of the signed headers.
    HostNotSigned,
    /// A hex-hashed body altered after signing.
    ForgedBody,
}

const FAILURES: [Failure; 14] = [
    Failure::None,
    Failure::WrongSecret,
    Failure::UnknownKey,
    Failure::ExpiredCredential,
    Failure::DisabledCredential,
    Failure::Expired,
    Failure::Skewed,
    Failure::ForgedChunk,
    Failure::ForgedTrailerSignature,
    Failure::MissingTrailerSignature,
    Failure::HeaderAndQuery,
    Failure::OtherHost,
    Failure::HostNotSigned,
    Failure::ForgedBody,
];

/// The (shape, location) cells that exist in S3, plus presigned aws-chunked uploads,
/// which S3 does not have and the proxy refuses whatever they carry.
fn cells() -> Vec<(Shape, Loc)> {
    let mut out: Vec<(Shape, Loc)> = Mode::ALL
        .iter()
        .map(|m| (Shape::Put(*m), Loc::Header))
        .collect();
    out.push((Shape::EmptyGet, Loc::Header));
    out.push((Shape::Put(Mode::Hex), Loc::Query));
    out.push((Shape::Put(Mode::Unsigned), Loc::Query));
    out.push((Shape::EmptyGet, Loc::Query));
    out.push((Shape::Form, Loc::Form));
    for mode in Mode::ALL.into_iter().filter(|m| m.is_streaming()) {
        out.push((Shape::Put(mode), Loc::Query));
    }
    out
}

fn signed_chunks(mode: Mode) -> bool {
    matches!(mode, Mode::StreamingSigned | Mode::StreamingSignedTrailer)
}

/// The expected answer, or `None` when the failure does not exist for this cell.
fn expected(shape: Shape, loc: Loc, failure: Failure) -> Option<Want> {
    use Failure as F;
    if let (Shape::Put(mode), Loc::Query) = (shape, loc)
        && mode.is_streaming()
    {
        return (failure == F::None).then_some(refused(400, "InvalidRequest"));
    }
    let want = match failure {
        F::None => served(if shape == Shape::Form { 204 } else { 200 }),
        F::WrongSecret => refused(403, "SignatureDoesNotMatch"),
        F::UnknownKey | F::ExpiredCredential | F::DisabledCredential => {
            refused(403, "InvalidAccessKeyId")
        }
        F::Expired if loc == Loc::Header => return None,
        F::Expired => refused(403, "AccessDenied"),
        F::Skewed => refused(403, "RequestTimeTooSkewed"),
        F::ForgedChunk => match shape {
            Shape::Put(m) if signed_chunks(m) => aborted(403, "SignatureDoesNotMatch"),
            // Unsigned chunks: the trailer checksum catches the altered bytes.
            Shape::Put(Mode::StreamingUnsignedTrailer) => aborted(400, "BadDigest"),
            _ => return None,
        },
        F::ForgedTrailerSignature | F::MissingTrailerSignature => match shape {
            Shape::Put(Mode::StreamingSignedTrailer) => aborted(403, "SignatureDoesNotMatch"),
            _ => return None,
        },
        F::HeaderAndQuery => refused(400, "InvalidArgument"),
        F::OtherHost if loc == Loc::Form => return None,
        F::OtherHost => refused(403, "SignatureDoesNotMatch"),
        F::HostNotSigned => match (shape, loc) {
            (Shape::Form, _) => return None,
            (Shape::Put(m), _) if m.is_streaming() => return None,
            _ => refused(403, "AccessDenied"),
        },
        F::ForgedBody => match shape {
            Shape::Put(Mode::Hex) => aborted(400, "XAmzContentSHA256Mismatch"),
            _ => return None,
        },
    };
    Some(want)
}

/// The signers a row may use.
pub(crate) struct Signers {
    pub(crate) good: Signer,
    wrong: Signer,
    unknown: Signer,
    expired_credential: Signer,
    disabled_credential: Signer,
}

impl Signers {
    pub(crate) fn new(h: &Harness) -> Self {
        let (ak, sk) = h.credential(vec![scope(&h.bucket, Access::ReadWrite)]);
        let good = Signer::new(&ak, &sk);
        let mut wrong = good.clone();
        wrong.secret_key = format!("{sk}-wrong");
        let (eak, esk) = h
            .store()
            .create_credential(NewCredential {
                backend: BACKEND.to_owned(),
                scopes: vec![scope(&h.bucket, Access::ReadWrite)],
                expires_at: Some(OffsetDateTime::now_utc() - time::Duration::hours(1)),
                description: "expired".to_owned(),
                enabled: true,
            })
            .expect("create an expired credential");
        let (dak, dsk) = h.credential(vec![scope(&h.bucket, Access::ReadWrite)]);
        h.store().set_enabled(&dak, false).expect("disable");
        h.reload();
        Self {
            good,
            wrong,
            unknown: Signer::new("AKIDNOTINTHESTORE000", "whatever-secret"),
            expired_credential: Signer::new(&eak, esk.expose()),
            disabled_credential: Signer::new(&dak, &dsk),
        }
    }

    fn for_failure(&self, failure: Failure) -> Signer {
        let now = OffsetDateTime::now_utc();
        match failure {
            Failure::WrongSecret => self.wrong.clone(),
            Failure::UnknownKey => self.unknown.clone(),
            Failure::ExpiredCredential => self.expired_credential.clone(),
            Failure::DisabledCredential => self.disabled_credential.clone(),
            Failure::Skewed => self.good.clone().at(now + time::Duration::minutes(20)),
            // Presigned 10 minutes ago for 300 s.
            Failure::Expired => self.good.clone().at(now - time::Duration::minutes(10)),
            _ => self.good.clone().at(now),
        }
    }
}

const OTHER_HOST: &str = "other.example:8090";

/// Build the row's request for `/test/<key>`.
fn build(
    h: &Harness,
    s: &Signers,
    cell: (Shape, Loc),
    failure: Failure,
    key: &str,
    data: &[u8],
) -> Req {
    let (shape, loc) = cell;
    let signer = s.for_failure(failure);
    let real_host = host(h);
    let sign_host = if failure == Failure::OtherHost {
        OTHER_HOST.to_owned()
    } else {
        real_host.clone()
    };
    let path = format!("/{}/{key}", h.bucket);
    if failure == Failure::HostNotSigned {
        return without_signed_host(&signer, shape, loc, &path, data, &real_host);
    }
    let mut req = match shape {
        Shape::Put(mode) => {
            let location = if loc == Loc::Query {
                Location::Query
            } else {
                Location::Header
            };
            let tamper = Tamper {
                forge_chunk: (failure == Failure::ForgedChunk).then_some(1),
                ..Tamper::default()
            };
            let mut req = uploads::upload(
                &signer,
                location,
                mode,
                (&sign_host, &path),
                data,
                CHUNK,
                &tamper,
            );
            if failure == Failure::ForgedTrailerSignature {
                forge_trailer_signature(&mut req.body);
            }
            if failure == Failure::MissingTrailerSignature {
                drop_trailer_signature(&signer, &mut req, mode, data);
            }
            if failure == Failure::ForgedBody {
                req.body[5000] ^= 0x20;
            }
            req
        }
        Shape::EmptyGet => {
            let mut req = Req::new("GET", &path, &sign_host);
            match loc {
                Loc::Query => {
                    signer.presign(&mut req, 300, UNSIGNED);
                }
                _ => {
                    signer.sign_header(&mut req, EMPTY_SHA256, &[]);
                }
            }
            req
        }
        Shape::Form => {
            let mut form = Form::new(&h.bucket, key, data);
            if failure == Failure::Expired {
                form.expires_in = time::Duration::minutes(-1);
            }
            form.build(&signer, &sign_host)
        }
    };
    if failure == Failure::HeaderAndQuery {
        add_second_mechanism(&s.good, &mut req, loc);
    }
    req.set_header("host", &real_host);
    req
}

/// A GET or a non-streaming PUT signed while it had no Host header; the Host is
/// added afterwards, so it is present but not in the signed headers.
fn without_signed_host(
    signer: &Signer,
    shape: Shape,
    loc: Loc,
    path: &str,
    data: &[u8],
    real_host: &str,
) -> Req {
    let (method, body, hash) = match shape {
        Shape::Put(mode) => ("PUT", data.to_vec(), mode.content_sha256(data)),
        _ => ("GET", Vec::new(), EMPTY_SHA256.to_owned()),
    };
    let mut req = Req::new(method, path, real_host).body(body);
    req.headers.retain(|(n, _)| n != "host");
    // Something else is signed, so the signed-header list is not empty.
    req.set_header("range", "bytes=0-");
    if loc == Loc::Query {
        if method == "PUT" {
            req.set_header("x-amz-content-sha256", &hash);
        }
        signer.presign(
            &mut req,
            300,
            if method == "PUT" { &hash } else { UNSIGNED },
        );
    } else {
        signer.sign_header(&mut req, &hash, &[]);
    }
    req.set_header("host", real_host);
    req
}

/// Give a request the authentication it lacks: presign parameters beside a header
/// signature, or a header signature (over the presigned target) beside the query.
fn add_second_mechanism(good: &Signer, req: &mut Req, loc: Loc) {
    match loc {
        Loc::Header => {
            let mut other = Req::new(
                &req.method,
                &req.path,
                req.get_header("host").unwrap_or_default(),
            );
            good.presign(&mut other, 300, UNSIGNED);
            req.query.extend(other.query);
        }
        Loc::Query => {
            let hash = req
                .get_header("x-amz-content-sha256")
                .unwrap_or(UNSIGNED)
                .to_owned();
            good.sign_header(req, &hash, &[]);
        }
        Loc::Form => {
            good.sign_header(req, UNSIGNED, &[]);
        }
    }
}

/// Flip one hex digit of the `x-amz-trailer-signature` value (same length).
fn forge_trailer_signature(body: &mut [u8]) {
    let name = b"x-amz-trailer-signature:";
    let at = body
        .windows(name.len())
        .position(|w| w == name)
        .expect("a signed trailer")
        + name.len();
    body[at] = if body[at] == b'0' { b'1' } else { b'0' };
}

/// Re-sign `req` for a body without its `x-amz-trailer-signature` line, then send
/// that body: every chunk signature is right, the trailer is unsigned.
fn drop_trailer_signature(signer: &Signer, req: &mut Req, mode: Mode, data: &[u8]) {
    let line_len = "x-amz-trailer-signature:".len() + 64 + 2;
    let len = req.body.len() - line_len;
    req.set_header("content-length", &len.to_string());
    let seed = signer.sign_header(req, &mode.content_sha256(data), &[]);
    let body = uploads::encode_body(signer, mode, &seed, data, CHUNK, &Tamper::default());
    let name = b"x-amz-trailer-signature:";
    let at = body
        .windows(name.len())
        .position(|w| w == name)
        .expect("a signed trailer");
    req.body = [&body[..at], &body[at + line_len..]].concat();
    assert_eq!(req.body.len(), len, "trailer signature line removed");
}

fn label(shape: Shape, loc: Loc, failure: Failure) -> String {
    let shape = match shape {
        Shape::Put(m) => format!("put-{m:?}"),
        Shape::EmptyGet => "get-empty".to_owned(),
        Shape::Form => "post-form".to_owned(),
    };
    format!("{shape}/{loc:?}/{failure:?}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_payload_mode_auth_location_and_failure_is_refused_before_the_upstream() {
    let (h, tap) = tapped_harness(|_| {}).await;
    let signers = Signers::new(&h);
    let mut m = Matrix::new(&h, &tap);
    for s in [
        &signers.good,
        &signers.wrong,
        &signers.unknown,
        &signers.expired_credential,
    ] {
        m.tenant(&s.access_key);
    }
    let data = pattern(150 * KIB + 3, 9);
    h.put_upstream(&h.bucket, "get/existing", &data).await;
    for cell in cells() {
        for failure in FAILURES {
            let Some(want) = expected(cell.0, cell.1, failure) else {
                continue;
            };
            let label = label(cell.0, cell.1, failure);
            let is_get = cell.0 == Shape::EmptyGet;
            let key = if is_get {
                "get/existing".to_owned()
            } else {
                format!("m/{}", label.replace('/', "-"))
            };
            let req = build(&h, &signers, cell, failure, &key, &data);
            let resp = m.row(&label, &req, want).await;
            let succeeds = want.code.is_none();
            match (succeeds, is_get) {
                (true, true) => {
                    if resp.is_some_and(|r| r.body != data) {
                        m.fail(&label, "GET returned other bytes".into());
                    }
                }
                (true, false) => m.holds(&label, &h.bucket, &key, &data).await,
                (false, false) => m.absent(&label, &h.bucket, &key).await,
                (false, true) => {}
            }
        }
    }
    m.finish("auth matrix");
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn form_with_presign_query_parameters_is_refused_as_two_auth_mechanisms() {
    let (h, tap) = tapped_harness(|_| {}).await;
    let signers = Signers::new(&h);
    let mut m = Matrix::new(&h, &tap);
    m.tenant(&signers.good.access_key);
    let data = pattern(10 * KIB, 4);
    let mut req = Form::new(&h.bucket, "form-both-query", &data).build(&signers.good, &host(&h));
    let mut other = Req::new("POST", &req.path, &host(&h));
    signers.good.presign(&mut other, 300, UNSIGNED);
    req.query = other.query;
    m.row(
        "post-form/Form+Query",
        &req,
        refused(400, "InvalidArgument"),
    )
    .await;
    m.absent("post-form/Form+Query", &h.bucket, "form-both-query")
        .await;
    m.finish("form + presign query");
    h.shutdown().await;
}
