//! aws-sdk-s3 clients for the harness: static credentials, no retries (negative cases
//! must see the first answer), a recorder that keeps every request as it went on the
//! wire, and a resolver that maps `*.localhost` to 127.0.0.1 for virtual-host style.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};

use aws_sdk_s3::Client;
use aws_sdk_s3::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::{
    BehaviorVersion, ConfigBag, Credentials, Intercept, Region, RuntimeComponents,
};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
use aws_smithy_runtime_api::client::dns::{DnsFuture, ResolveDns, ResolveDnsError};

use super::REGION;

/// One request as the SDK transmitted it (after signing and body encoding).
#[derive(Debug, Clone)]
pub struct SentRequest {
    pub method: String,
    pub uri: String,
    pub headers: Vec<(String, String)>,
}

impl SentRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Records every request the clients it is attached to transmit.
#[derive(Debug, Clone, Default)]
pub struct Recorder(Arc<Mutex<Vec<SentRequest>>>);

impl Recorder {
    pub fn all(&self) -> Vec<SentRequest> {
        self.0.lock().expect("recorder lock").clone()
    }

    /// The most recent request with this method whose URI contains `needle`.
    pub fn last(&self, method: &str, needle: &str) -> Option<SentRequest> {
        self.all()
            .into_iter()
            .rev()
            .find(|r| r.method == method && r.uri.contains(needle))
    }
}

impl Intercept for Recorder {
    fn name(&self) -> &'static str {
        "e2e-request-recorder"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        let req = context.request();
        let sent = SentRequest {
            method: req.method().to_owned(),
            uri: req.uri().to_owned(),
            headers: req
                .headers()
                .iter()
                .map(|(n, v)| (n.to_owned(), v.to_owned()))
                .collect(),
        };
        self.0.lock().expect("recorder lock").push(sent);
        Ok(())
    }
}

/// Resolves `localhost` and `*.localhost` to 127.0.0.1; nothing else resolves, so a
/// test can never reach the network by accident.
#[derive(Debug, Clone)]
pub struct LocalhostResolver;

impl ResolveDns for LocalhostResolver {
    fn resolve_dns<'a>(&'a self, name: &'a str) -> DnsFuture<'a> {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        if name == "localhost" || name.ends_with(".localhost") {
            DnsFuture::ready(Ok(vec![IpAddr::V4(Ipv4Addr::LOCALHOST)]))
        } else if let Ok(ip) = name.parse::<IpAddr>() {
            DnsFuture::ready(Ok(vec![ip]))
        } else {
            DnsFuture::ready(Err(ResolveDnsError::new(format!(
                "test resolver: unknown host {name}"
            ))))
        }
    }
}

/// An S3 client with static credentials in `us-east-1`, retries off.
pub fn sdk_client(
    endpoint: &str,
    ak: &str,
    sk: &str,
    path_style: bool,
    recorder: &Recorder,
) -> Client {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::AwsLc))
        .build_with_resolver(LocalhostResolver);
    let conf = aws_sdk_s3::config::Builder::new()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .credentials_provider(Credentials::new(ak, sk, None, None, "e2e"))
        .endpoint_url(endpoint)
        .force_path_style(path_style)
        .retry_config(RetryConfig::disabled())
        .http_client(http)
        .interceptor(recorder.clone())
        .build();
    Client::from_conf(conf)
}

/// HTTP status of a failed SDK call, when a response arrived.
pub fn status<E, R>(err: &SdkError<E, R>) -> Option<u16>
where
    R: HasStatus,
{
    err.raw_response().map(HasStatus::status_u16)
}

/// S3 error code of a failed SDK call.
pub fn code<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> Option<String> {
    err.code().map(str::to_owned)
}

/// `(status, code)` of a failed SDK call, for exact assertions.
pub fn status_and_code<E, R>(err: &SdkError<E, R>) -> (Option<u16>, Option<String>)
where
    E: ProvideErrorMetadata,
    R: HasStatus,
{
    (status(err), code(err))
}

/// A readable description of a failed SDK call (for panic messages).
pub fn describe<E, R>(err: &SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    format!(
        "{} (code {:?}, message {:?}): {:?}",
        aws_smithy_types::error::display::DisplayErrorContext(err),
        err.code(),
        err.message(),
        err.raw_response()
    )
}

/// Status of the raw response type the SDK errors carry.
pub trait HasStatus {
    fn status_u16(&self) -> u16;
}

impl HasStatus for aws_sdk_s3::config::http::HttpResponse {
    fn status_u16(&self) -> u16 {
        self.status().as_u16()
    }
}

/// Unwrap an SDK result or panic with the whole error (status, code, message).
pub trait Expect<T> {
    fn expect_ok(self, what: &str) -> T;
}

impl<T, E, R> Expect<T> for Result<T, SdkError<E, R>>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    fn expect_ok(self, what: &str) -> T {
        match self {
            Ok(v) => v,
            Err(e) => panic!("{what}: {}", describe(&e)),
        }
    }
}
