//! An embedded, filesystem-backed S3 server (s3s-fs) that checks SigV4 signatures:
//! the quickstart's local upstream, and the in-process upstream of the test suite.

use std::net::SocketAddr;
use std::path::Path;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// A running embedded upstream; dropping it stops accepting new connections.
pub struct EmbeddedUpstream {
    pub addr: SocketAddr,
    stop: watch::Sender<bool>,
}

impl EmbeddedUpstream {
    /// `http://addr`.
    #[must_use]
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stop accepting connections.
    pub fn stop(&self) {
        let _ = self.stop.send(true);
    }
}

impl Drop for EmbeddedUpstream {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Serve the directory `root` as S3 on `bind`, accepting only `access_key`/`secret_key`.
///
/// # Errors
/// When the directory cannot be used or the address cannot be bound.
pub async fn spawn_fs_upstream(
    root: &Path,
    bind: SocketAddr,
    access_key: &str,
    secret_key: &str,
) -> anyhow::Result<EmbeddedUpstream> {
    std::fs::create_dir_all(root)?;
    let fs = s3s_fs::FileSystem::new(root)
        .map_err(|e| anyhow::anyhow!("cannot open upstream data directory: {e:?}"))?;
    let mut builder = S3ServiceBuilder::new(fs);
    builder.set_auth(SimpleAuth::from_single(access_key, secret_key));
    let service = builder.build();
    let listener = TcpListener::bind(bind).await?;
    let addr = listener.local_addr()?;
    let (stop, mut stopped) = watch::channel(false);
    tokio::spawn(async move {
        loop {
            let (stream, _) = tokio::select! {
                r = listener.accept() => match r {
                    Ok(x) => x,
                    Err(_) => continue,
                },
                _ = stopped.changed() => break,
            };
            // Without TCP_NODELAY small responses stall on Nagle + delayed ACK.
            let _ = stream.set_nodelay(true);
            let service = service.clone();
            tokio::spawn(async move {
                let _ = ConnBuilder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(EmbeddedUpstream { addr, stop })
}
