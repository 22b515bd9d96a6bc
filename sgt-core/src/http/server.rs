//! Serving the routes over TCP, with TLS (rustls) or plain HTTP behind a TLS-terminating proxy.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::admin::AdminService;
use crate::agent::AgentService;
use crate::error::{Error, Result};

/// A TLS handshake that takes longer is dropped (osquery gives a whole request 16 s).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How the server accepts connections.
#[derive(Debug, Clone)]
pub enum Listener {
    /// TLS 1.2/1.3 with this configuration.
    Tls(Arc<ServerConfig>),
    /// Plain HTTP, for running behind a load balancer that terminates TLS.
    PlainHttp,
}

/// A rustls server configuration from PEM files' contents: the certificate chain (leaf first)
/// and its private key. TLS 1.2 and 1.3 only, ECDHE suites only, ALPN h2 and http/1.1.
///
/// # Errors
/// `InvalidInput` when the PEM holds no certificate or key, or they do not match.
pub fn tls_server_config(cert_chain_pem: &[u8], key_pem: &[u8]) -> Result<Arc<ServerConfig>> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_chain_pem)
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| Error::invalid_input(format!("certificate PEM: {e}")))?;
    if certs.is_empty() {
        return Err(Error::invalid_input("certificate PEM holds no certificate"));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|e| Error::invalid_input(format!("private key PEM: {e}")))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| Error::invalid_input(format!("tls versions: {e}")))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| Error::invalid_input(format!("certificate and key: {e}")))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Serves [`super::routes`] on `listener` until `shutdown` completes, then stops accepting.
/// Each connection runs on its own task, HTTP/1.1 with keep-alive or HTTP/2.
///
/// # Errors
/// None once started; per-connection failures are logged and do not stop the server.
pub async fn serve(
    listener: TcpListener,
    service: Arc<AgentService>,
    admin: Arc<AdminService>,
    mode: Listener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<()> {
    let metrics = Arc::clone(service.metrics());
    let app = warp::service(super::routes(service, admin));
    let acceptor = match &mode {
        Listener::Tls(config) => Some(TlsAcceptor::from(Arc::clone(config))),
        Listener::PlainHttp => None,
    };
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            _ = &mut shutdown => return Ok(()),
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        // Every answered request is counted with its endpoint, status and time.
        let service = TowerToHyperService::new(app.clone());
        let metrics = Arc::clone(&metrics);
        let service =
            hyper::service::service_fn(move |request: http::Request<hyper::body::Incoming>| {
                let path = request.uri().path().to_owned();
                let started = std::time::Instant::now();
                let answer = hyper::service::Service::call(&service, request);
                let metrics = Arc::clone(&metrics);
                async move {
                    let response = answer.await;
                    if let Ok(response) = &response {
                        metrics.record_request(
                            &path,
                            response.status().as_u16(),
                            started.elapsed(),
                        );
                    }
                    response
                }
            });
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let builder = auto::Builder::new(TokioExecutor::new());
            let served = match acceptor {
                Some(acceptor) => {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(tls)) => builder.serve_connection(TokioIo::new(tls), service).await,
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "tls handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "tls handshake timed out");
                            return;
                        }
                    }
                }
                None => builder.serve_connection(TokioIo::new(tcp), service).await,
            };
            if let Err(e) = served {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
}
