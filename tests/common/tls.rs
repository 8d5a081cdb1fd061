//! A TLS front for the proxy, so aws-sdk-s3 behaves as it does against an https
//! endpoint: there it sends streaming bodies as `STREAMING-UNSIGNED-PAYLOAD-TRAILER`
//! (over plain http it signs every chunk instead). The front terminates TLS with a
//! test-only certificate for `localhost`/`127.0.0.1`, issued by a test-only CA whose
//! key was discarded after signing, and copies bytes to the proxy unchanged, so the
//! proxy sees exactly what the SDK signed.

use std::net::SocketAddr;
use std::sync::Arc;

use aws_sdk_s3::Client;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_smithy_http_client::tls::{Provider, TlsContext, TrustStore, rustls_provider::CryptoMode};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::pem::PemObject as _;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::REGION;
use super::clients::{LocalhostResolver, Recorder};

/// The test CA the client trusts (its key no longer exists).
const CA_PEM: &[u8] = include_bytes!("tls/ca.crt");
/// Server certificate (SANs `localhost`, `127.0.0.1`; valid until 2126) and its key.
const CERT_PEM: &[u8] = include_bytes!("tls/localhost.crt");
const KEY_PEM: &[u8] = include_bytes!("tls/localhost.key");

/// A running TLS terminator in front of `backend`.
pub struct TlsFront {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TlsFront {
    pub async fn start(backend: SocketAddr) -> Self {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(CERT_PEM)
            .collect::<Result<_, _>>()
            .expect("test certificate");
        let key = PrivateKeyDer::from_pem_slice(KEY_PEM).expect("test key");
        let provider = Arc::new(tokio_rustls::rustls::crypto::aws_lc_rs::default_provider());
        let config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .expect("server config");
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind TLS front");
        let addr = listener.local_addr().expect("front addr");
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let _ = tcp.set_nodelay(true);
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let Ok(mut inner) = TcpStream::connect(backend).await else {
                        return;
                    };
                    let _ = inner.set_nodelay(true);
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut inner).await;
                });
            }
        });
        Self { addr, task }
    }

    /// `https://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// A path-style SDK client that trusts only the test CA.
    pub fn client(&self, ak: &str, sk: &str, recorder: &Recorder) -> Client {
        let tls = TlsContext::builder()
            .with_trust_store(TrustStore::empty().with_pem_certificate(CA_PEM))
            .build()
            .expect("TLS context");
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(Provider::Rustls(CryptoMode::AwsLc))
            .tls_context(tls)
            .build_with_resolver(LocalhostResolver);
        let conf = aws_sdk_s3::config::Builder::new()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(REGION))
            .credentials_provider(Credentials::new(ak, sk, None, None, "e2e"))
            .endpoint_url(self.endpoint())
            .force_path_style(true)
            .retry_config(RetryConfig::disabled())
            .http_client(http)
            .interceptor(recorder.clone())
            .build();
        Client::from_conf(conf)
    }
}
