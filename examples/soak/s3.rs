//! aws-sdk-s3 clients (static credentials, retries off so every error is seen) and the
//! helpers that read an SDK error's status and S3 code.

use std::time::Duration;

use aws_sdk_s3::Client;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region, SharedHttpClient};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};

use crate::procs::REGION;

/// One connection pool shared by every client built with it, as an application with
/// several tenants' keys would have.
pub fn http_client() -> SharedHttpClient {
    aws_smithy_http_client::Builder::new().build_http()
}

/// A path-style client, retries off (the soak must see the first answer), with an
/// operation timeout so a hung request becomes a counted error instead of a stall.
pub fn client(endpoint: &str, ak: &str, sk: &str, http: SharedHttpClient) -> Client {
    let conf = aws_sdk_s3::config::Builder::new()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .credentials_provider(Credentials::new(ak, sk, None, None, "soak"))
        .endpoint_url(endpoint)
        .force_path_style(true)
        .retry_config(RetryConfig::disabled())
        .timeout_config(
            TimeoutConfig::builder()
                .operation_timeout(Duration::from_secs(120))
                .build(),
        )
        .http_client(http)
        .build();
    Client::from_conf(conf)
}

/// What a failed call answered: HTTP status and S3 code when a response arrived, and a
/// one-line description for the report.
#[derive(Debug, Clone)]
pub struct Failure {
    pub status: Option<u16>,
    pub code: Option<String>,
    pub text: String,
}

impl Failure {
    pub fn is(&self, status: u16, code: &str) -> bool {
        self.status == Some(status) && self.code.as_deref() == Some(code)
    }

    /// No response: the connection was closed or reset while the request was sent.
    pub fn is_reset(&self) -> bool {
        self.status.is_none()
            && ["Broken pipe", "Connection reset", "connection closed"]
                .iter()
                .any(|m| self.text.contains(m))
    }
}

pub fn failure<E>(err: &SdkError<E, HttpResponse>) -> Failure
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let status = err.raw_response().map(|r| r.status().as_u16());
    let code = err.code().map(str::to_owned);
    let text = format!(
        "status {status:?} code {code:?}: {}",
        aws_smithy_types::error::display::DisplayErrorContext(err)
    );
    Failure { status, code, text }
}
