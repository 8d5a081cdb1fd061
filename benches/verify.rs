//! Hot-path micro-benchmarks: inbound verification (header, presigned; warm and cold
//! signing-key cache), aws-chunked signed decoding, trailer checksums, outbound
//! re-signing, and a credential lookup with one million credentials cached.
//!
//! Run: `cargo bench --bench verify`.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SignatureLocation,
    SigningSettings, UriPathNormalizationMode, sign,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use stowage::auth::body::BodyLimits;
use stowage::auth::checksum::Checksummer;
use stowage::auth::chunked::ChunkedDecoder;
use stowage::auth::sigv4::{chunk_string_to_sign, derive_signing_key, sha256_hex, signature};
use stowage::auth::{
    AuthOptions, ChecksumAlgorithm, ChunkSigningContext, PayloadMode, SigningKeyCache, authenticate,
};
use stowage::credentials::cache::{CredentialCache, CredentialLookup, SourceKind};
use stowage::credentials::model::{Access, Credential, CredentialSource, Scope};
use stowage::secret::SecretKey;
use stowage::upstream::UpstreamBackend;

const AK: &str = "STOWAGEBENCHKEY00001";
const SK: &str = "benchsecretbenchsecretbenchsecretbench00";

fn credential(ak: &str) -> Credential {
    Credential {
        access_key_id: ak.into(),
        secret: SecretKey::new(SK),
        backend: "b".into(),
        scopes: vec![Scope {
            bucket: "bucket".into(),
            access: Access::ReadWrite,
            prefix: None,
        }],
        expires_at: None,
        enabled: true,
        source: CredentialSource::Sqlite,
        description: String::new(),
    }
}

/// A GetObject request signed by the real aws-sigv4 crate, as an SDK would.
fn signed_parts(location: SignatureLocation, now: SystemTime) -> http::request::Parts {
    let identity: Identity = Credentials::new(AK, SK, None, None, "bench").into();
    let mut settings = SigningSettings::default();
    settings.percent_encoding_mode = PercentEncodingMode::Single;
    settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    settings.signature_location = location;
    settings.expires_in = Some(Duration::from_secs(3600));
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("s3")
        .time(now)
        .settings(settings)
        .build()
        .unwrap()
        .into();
    let uri = "http://127.0.0.1:8090/bucket/some/object.bin";
    let headers = [("host", "127.0.0.1:8090")];
    let signable = SignableRequest::new(
        "GET",
        uri,
        headers.iter().copied(),
        SignableBody::UnsignedPayload,
    )
    .unwrap();
    let (instructions, _) = sign(signable, &params).unwrap().into_parts();
    let mut req = http::Request::builder()
        .method("GET")
        .uri(uri)
        .header("host", "127.0.0.1:8090");
    let (hs, qs) = instructions.into_parts();
    for h in hs {
        req = req.header(h.name(), h.value());
    }
    let mut req = req.body(()).unwrap();
    if !qs.is_empty() {
        let q: Vec<String> = qs
            .iter()
            .map(|(k, v)| format!("{k}={}", stowage::auth::sigv4::uri_encode(v, true)))
            .collect();
        *req.uri_mut() = format!("{uri}?{}", q.join("&")).parse().unwrap();
    }
    req.into_parts().0
}

fn bench_verify(c: &mut Criterion) {
    let cache = CredentialCache::new();
    cache.upsert(SourceKind::Sqlite, credential(AK));
    let opts = AuthOptions::default();
    let now = SystemTime::now();
    let header = signed_parts(SignatureLocation::Headers, now);
    let query = signed_parts(SignatureLocation::QueryParams, now);
    let odt = time::OffsetDateTime::from(now);
    let warm = SigningKeyCache::default();
    let mut g = c.benchmark_group("verify");
    g.bench_function("header_warm_key_cache", |b| {
        b.iter(|| authenticate(black_box(&header), &cache, &warm, &opts, odt).unwrap());
    });
    g.bench_function("header_cold_key_cache", |b| {
        b.iter(|| {
            let cold = SigningKeyCache::default();
            authenticate(black_box(&header), &cache, &cold, &opts, odt).unwrap()
        });
    });
    g.bench_function("presigned_warm_key_cache", |b| {
        b.iter(|| authenticate(black_box(&query), &cache, &warm, &opts, odt).unwrap());
    });
    g.finish();
}

/// A signed aws-chunked body of `total` bytes in `chunk` sized chunks.
fn signed_chunked_body(ctx: &ChunkSigningContext, total: usize, chunk: usize) -> Vec<u8> {
    let data = vec![0x5a_u8; chunk];
    let mut out = Vec::with_capacity(total + total / chunk * 100 + 200);
    let mut prev = ctx.seed_signature.clone();
    let mut left = total;
    loop {
        let n = left.min(chunk);
        let piece = &data[..n];
        let sts = chunk_string_to_sign(&ctx.amz_date, &ctx.scope, &prev, &sha256_hex(piece));
        let sig = signature(&ctx.signing_key, &sts);
        out.extend_from_slice(format!("{n:x};chunk-signature={sig}\r\n").as_bytes());
        out.extend_from_slice(piece);
        out.extend_from_slice(b"\r\n");
        prev = sig;
        if n == 0 {
            return out;
        }
        left -= n;
    }
}

fn bench_chunked(c: &mut Criterion) {
    let ctx = ChunkSigningContext {
        signing_key: derive_signing_key(&SecretKey::new(SK), "20260101", "us-east-1", "s3"),
        amz_date: "20260101T000000Z".into(),
        scope: "20260101/us-east-1/s3/aws4_request".into(),
        seed_signature: "0".repeat(64),
    };
    let total = 8 * 1024 * 1024;
    let mut g = c.benchmark_group("chunked_signed_decode");
    g.throughput(Throughput::Bytes(total as u64));
    g.sample_size(20);
    for chunk in [64 * 1024, 1024 * 1024] {
        let body = Bytes::from(signed_chunked_body(&ctx, total, chunk));
        let mode = PayloadMode::Streaming {
            signed: true,
            trailer: None,
            decoded_length: total as u64,
        };
        g.bench_with_input(BenchmarkId::from_parameter(chunk), &body, |b, body| {
            b.iter(|| {
                let mut dec =
                    ChunkedDecoder::new(&mode, Some(&ctx), &BodyLimits::default()).unwrap();
                let mut out = Vec::new();
                for piece in body.chunks(256 * 1024) {
                    dec.push(body.slice_ref(piece), &mut out).unwrap();
                }
                dec.finish().unwrap();
                black_box(out.len())
            });
        });
    }
    g.finish();

    let data = vec![7_u8; total];
    let mut g = c.benchmark_group("trailer_checksum");
    g.throughput(Throughput::Bytes(total as u64));
    g.sample_size(20);
    for (name, alg) in [
        ("crc32", ChecksumAlgorithm::Crc32),
        ("crc64nvme", ChecksumAlgorithm::Crc64Nvme),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut ck = Checksummer::new(alg);
                for piece in data.chunks(64 * 1024) {
                    ck.update(piece);
                }
                black_box(ck.finish())
            });
        });
    }
    g.finish();
}

fn outbound_request(backend: &UpstreamBackend) -> http::Request<()> {
    http::Request::builder()
        .method("PUT")
        .uri(backend.uri("/bucket/some/object.bin", "").unwrap())
        .header("content-type", "application/octet-stream")
        .header("x-amz-checksum-crc32", "AAAAAA==")
        .header("x-amz-meta-owner", "team-a")
        .body(())
        .unwrap()
}

/// Outbound re-signing as the proxy does it (day-cached key, one canonical buffer),
/// next to aws-sigv4's full `sign` of the same request (what the proxy did before,
/// deriving the key on every call): the ratio is the saving, measured in one run.
fn bench_resign(c: &mut Criterion) {
    let secret = SecretKey::new("adminsecretadminsecretadminsecret");
    let backend = UpstreamBackend::new(
        "b",
        &"http://127.0.0.1:9000".parse().unwrap(),
        "us-east-1",
        "ADMINACCESSKEY",
        &secret,
    )
    .unwrap();
    let mut g = c.benchmark_group("resign_outbound");
    g.bench_function("stowage", |b| {
        b.iter(|| {
            let mut req = outbound_request(&backend);
            backend.sign(&mut req, None, SystemTime::now()).unwrap();
            black_box(req)
        });
    });
    let identity: Identity =
        Credentials::new("ADMINACCESSKEY", secret.expose(), None, None, "bench").into();
    g.bench_function("aws_sigv4_sign", |b| {
        b.iter(|| {
            let mut req = outbound_request(&backend);
            req.headers_mut()
                .insert(http::header::HOST, "127.0.0.1:9000".parse().unwrap());
            let uri = req.uri().to_string();
            let signable: Vec<(&str, &str)> = req
                .headers()
                .iter()
                .map(|(n, v)| (n.as_str(), v.to_str().unwrap()))
                .collect();
            let request = SignableRequest::new(
                req.method().as_str(),
                uri,
                signable.into_iter(),
                SignableBody::UnsignedPayload,
            )
            .unwrap();
            let mut settings = SigningSettings::default();
            settings.percent_encoding_mode = PercentEncodingMode::Single;
            settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
            settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
            let params = v4::SigningParams::builder()
                .identity(&identity)
                .region("us-east-1")
                .name("s3")
                .time(SystemTime::now())
                .settings(settings)
                .build()
                .unwrap()
                .into();
            let (instructions, _) = sign(request, &params).unwrap().into_parts();
            let mut out = Vec::new();
            for h in instructions.into_parts().0 {
                out.push((
                    http::HeaderName::from_static(h.name()),
                    http::HeaderValue::from_str(h.value()).unwrap(),
                ));
            }
            for (n, v) in out {
                req.headers_mut().insert(n, v);
            }
            black_box(req)
        });
    });
    g.finish();
}

fn bench_lookup(c: &mut Criterion) {
    let cache = Arc::new(CredentialCache::new());
    let n = 1_000_000;
    cache.replace(
        SourceKind::Sqlite,
        (0..n).map(|i| credential(&format!("AK{i:018}"))),
    );
    let mut i = 0_u64;
    c.bench_function("credential_lookup_1m", |b| {
        b.iter(|| {
            i = (i + 7919) % n;
            black_box(cache.lookup(&format!("AK{i:018}")))
        });
    });
}

criterion_group!(
    benches,
    bench_verify,
    bench_chunked,
    bench_resign,
    bench_lookup
);
criterion_main!(benches);
