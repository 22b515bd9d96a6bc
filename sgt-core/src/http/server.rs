//! Serving the routes over TCP, with TLS (rustls) or plain HTTP behind a TLS-terminating proxy.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

use super::body_budget::BodyBudget;
use crate::admin::AdminService;
use crate::agent::AgentService;
use crate::error::{Error, Result};

/// Limits that keep slow, idle or too many clients from holding the server's resources.
/// Past a limit the server answers with a JSON error or closes a connection; it never
/// answers success for work it did not finish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Connections open at once. At the limit the server stops accepting (new connections
    /// wait in the kernel's backlog) until one closes.
    pub max_connections: usize,
    /// Requests being handled at once. Past it a request is answered at once with 503 and an
    /// `error` body, which osquery treats as a failure: it keeps its data and retries later.
    pub max_requests_in_flight: usize,
    /// A TLS handshake must finish within this.
    pub handshake_timeout: Duration,
    /// A request's headers must arrive within this from when the connection is ready for
    /// them; this also closes a keep-alive connection left idle that long (HTTP/1.1).
    pub header_read_timeout: Duration,
    /// From a request's headers to its answer's headers (reading the body, handling it):
    /// past it the answer is 503 with an `error` body. osquery abandons a request after 16 s,
    /// so a later answer would reach no one.
    pub request_timeout: Duration,
    /// At shutdown, requests in flight get this long to finish before connections are cut.
    pub drain_timeout: Duration,
    /// Bytes of request bodies held at once, as received and as inflated from gzip. A request
    /// whose `Content-Length`, or whose inflating body, would pass it is answered 503 with an
    /// `error` body. At least twice [`super::LARGEST_BODY_BYTES`], or the largest bodies could
    /// never be served.
    pub max_body_memory: u64,
}

impl Default for ConnectionLimits {
    /// 20,000 connections, 4,096 requests in flight, 10 s handshakes, 65 s for headers (so a
    /// connection polled every 60 s stays open), 15 s per request, 20 s to drain, 256 MiB of
    /// request bodies.
    fn default() -> Self {
        ConnectionLimits {
            max_connections: 20_000,
            max_requests_in_flight: 4_096,
            handshake_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(65),
            request_timeout: Duration::from_secs(15),
            drain_timeout: Duration::from_secs(20),
            max_body_memory: 256 * 1024 * 1024,
        }
    }
}

/// How the server accepts connections.
#[derive(Debug, Clone)]
pub enum Listener {
    /// TLS 1.2/1.3; see [`tls_listener`].
    Tls {
        /// The rustls configuration (certificate, key, client certificate verifier).
        config: Arc<ServerConfig>,
        /// When true, agent endpoints refuse requests on connections that presented no
        /// client certificate (see [`ClientCertificates::Required`]).
        agents_need_client_certificate: bool,
    },
    /// Plain HTTP, for running behind a load balancer that terminates TLS.
    PlainHttp,
}

/// Whether the TLS listener asks clients for certificates (mutual TLS for agents).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ClientCertificates {
    /// Not asked for: agents authenticate with enroll secrets and node keys only.
    #[default]
    NotAsked,
    /// Asked for but optional. A certificate a client presents must chain to one of these
    /// CA certificates (PEM), or the handshake fails.
    Allowed {
        /// The CA certificates (PEM) client certificates must chain to.
        ca_pem: Vec<u8>,
    },
    /// As `Allowed`, and agent endpoints (`/api/v1/osquery/…`) refuse requests on connections
    /// without a certificate, with an `error` body. The admin API, `/healthz` and `/metrics`
    /// are still served without one: admin clients authenticate with bearer tokens.
    Required {
        /// The CA certificates (PEM) client certificates must chain to.
        ca_pem: Vec<u8>,
    },
}

/// A TLS listener from PEM files' contents: the certificate chain (leaf first), its private
/// key, and the client certificate policy. TLS 1.2 and 1.3 only, ECDHE suites only, ALPN h2
/// and http/1.1.
///
/// # Errors
/// `InvalidInput` when the PEM holds no certificate or key, they do not match, or the client
/// CA PEM holds no usable CA certificate.
pub fn tls_listener(
    cert_chain_pem: &[u8],
    key_pem: &[u8],
    client_certificates: &ClientCertificates,
) -> Result<Listener> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_chain_pem)
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| Error::invalid_input(format!("certificate PEM: {e}")))?;
    if certs.is_empty() {
        return Err(Error::invalid_input("certificate PEM holds no certificate"));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|e| Error::invalid_input(format!("private key PEM: {e}")))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| Error::invalid_input(format!("tls versions: {e}")))?;
    let builder = match client_certificates {
        ClientCertificates::NotAsked => builder.with_no_client_auth(),
        ClientCertificates::Allowed { ca_pem } | ClientCertificates::Required { ca_pem } => {
            builder.with_client_cert_verifier(client_verifier(ca_pem, provider)?)
        }
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| Error::invalid_input(format!("certificate and key: {e}")))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Listener::Tls {
        config: Arc::new(config),
        agents_need_client_certificate: matches!(
            client_certificates,
            ClientCertificates::Required { .. }
        ),
    })
}

/// Verifies client certificates against the CA certificates in `ca_pem`. A connection
/// without a certificate is let through the handshake (the admin API needs none); the
/// requirement for agents is enforced per request.
fn client_verifier(
    ca_pem: &[u8],
    provider: Arc<rustls::crypto::CryptoProvider>,
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem) {
        let cert = cert.map_err(|e| Error::invalid_input(format!("client CA PEM: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| Error::invalid_input(format!("client CA certificate: {e}")))?;
    }
    if roots.is_empty() {
        return Err(Error::invalid_input("client CA PEM holds no certificate"));
    }
    rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
        .allow_unauthenticated()
        .build()
        .map_err(|e| Error::invalid_input(format!("client CA: {e}")))
}

/// True for the agent endpoints' paths, however the slashes are doubled: the paths that
/// [`ClientCertificates::Required`] guards.
fn is_agent_path(path: &str) -> bool {
    let mut segments = path.split('/').filter(|s| !s.is_empty());
    segments.next() == Some("api")
        && segments.next() == Some("v1")
        && segments.next() == Some("osquery")
}

/// Serves [`super::routes`] on `listener` until `shutdown` completes; then stops accepting,
/// lets requests in flight finish (up to [`ConnectionLimits::drain_timeout`]) and returns.
/// Each connection runs on its own task, HTTP/1.1 with keep-alive or HTTP/2.
///
/// # Errors
/// None once started; per-connection failures are logged and do not stop the server.
pub async fn serve(
    listener: TcpListener,
    service: Arc<AgentService>,
    admin: Arc<AdminService>,
    mode: Listener,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<()> {
    let metrics = Arc::clone(service.metrics());
    let app = warp::service(super::routes(service, admin));
    let (acceptor, agents_need_client_certificate) = match &mode {
        Listener::Tls {
            config,
            agents_need_client_certificate,
        } => (
            Some(TlsAcceptor::from(Arc::clone(config))),
            *agents_need_client_certificate,
        ),
        Listener::PlainHttp => (None, false),
    };
    let connection_slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let request_slots = Arc::new(Semaphore::new(limits.max_requests_in_flight.max(1)));
    let body_budget = BodyBudget::new(limits.max_body_memory);
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        // At the connection limit, wait for a slot before accepting more.
        let slot = tokio::select! {
            _ = &mut shutdown => break,
            slot = Arc::clone(&connection_slots).acquire_owned() => {
                slot.expect("the connection semaphore is never closed")
            }
        };
        let (tcp, peer) = tokio::select! {
            _ = &mut shutdown => break,
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
        // Sheds requests past the in-flight limit, answers 503 to those that take longer
        // than the request timeout, refuses agent requests without a required client
        // certificate, and records every answer's endpoint, status and time.
        let app_service = TowerToHyperService::new(app.clone());
        let metrics = Arc::clone(&metrics);
        let request_slots = Arc::clone(&request_slots);
        let body_budget = body_budget.clone();
        let behind_proxy = matches!(mode, Listener::PlainHttp);
        let service_for = move |has_client_certificate: bool| {
            let refuse_agents = agents_need_client_certificate && !has_client_certificate;
            hyper::service::service_fn(move |mut request: http::Request<hyper::body::Incoming>| {
                let client = client_ip(peer.ip(), request.headers(), behind_proxy);
                request
                    .extensions_mut()
                    .insert(super::ClientAddress(client));
                let endpoint = crate::metrics::Endpoint::of(request.uri().path());
                let started = std::time::Instant::now();
                let refused = refuse_agents && is_agent_path(request.uri().path());
                let slot = Arc::clone(&request_slots).try_acquire_owned();
                // The body's declared size is taken from the budget before it is read; one
                // over every route's limit is refused unread by its route, so it costs nothing.
                let declared = declared_length(request.headers());
                let body_share =
                    (declared <= super::LARGEST_BODY_BYTES).then(|| body_budget.try_take(declared));
                let over_budget = matches!(body_share, Some(None));
                // Decoders charge what they inflate to the same budget.
                request.extensions_mut().insert(body_budget.clone());
                let answer = (slot.is_ok() && !refused && !over_budget)
                    .then(|| hyper::service::Service::call(&app_service, request));
                let metrics = Arc::clone(&metrics);
                async move {
                    let _slot = slot;
                    let _body_share = body_share;
                    let response = match answer {
                        None if refused => Ok(super::reply::error_body(
                            http::StatusCode::FORBIDDEN,
                            "this server requires agents to present a client certificate",
                        )),
                        None => Ok(unavailable("the server is busy, retry later")),
                        Some(answer) => {
                            match tokio::time::timeout(limits.request_timeout, answer).await {
                                Ok(response) => response,
                                Err(_) => Ok(unavailable("the request took too long, retry later")),
                            }
                        }
                    };
                    if let Ok(response) = &response {
                        metrics.record_request(
                            endpoint,
                            response.status().as_u16(),
                            started.elapsed(),
                        );
                    }
                    response
                }
            })
        };
        let acceptor = acceptor.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let _slot = slot;
            let mut builder = auto::Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout);
            let served = match acceptor {
                Some(acceptor) => {
                    match tokio::time::timeout(limits.handshake_timeout, acceptor.accept(tcp)).await
                    {
                        Ok(Ok(tls)) => {
                            // rustls has verified any certificate presented against the CA.
                            let certified = tls.get_ref().1.peer_certificates().is_some();
                            let connection =
                                builder.serve_connection(TokioIo::new(tls), service_for(certified));
                            watcher.watch(connection).await
                        }
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
                None => {
                    let connection =
                        builder.serve_connection(TokioIo::new(tcp), service_for(false));
                    watcher.watch(connection).await
                }
            };
            if let Err(e) = served {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.drain_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("requests still in flight after the drain timeout; cutting them off");
    }
    Ok(())
}

/// The client's address: the TCP peer's, or when plain HTTP runs behind a balancer that
/// terminates TLS, the last `X-Forwarded-For` entry (the balancer appends the address it saw;
/// entries before it come from the client and prove nothing).
fn client_ip(
    peer: std::net::IpAddr,
    headers: &http::HeaderMap,
    behind_proxy: bool,
) -> std::net::IpAddr {
    if !behind_proxy {
        return peer;
    }
    headers
        .get_all("x-forwarded-for")
        .iter()
        .next_back()
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.rsplit(',').next())
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(peer)
}

/// 503 with an `error` member, which both osquery and API clients read as a failure.
/// The request's `Content-Length`, or 0 when it has none (or an unreadable one, which the
/// routes refuse).
fn declared_length(headers: &http::HeaderMap) -> u64 {
    headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

fn unavailable(message: &str) -> warp::reply::Response {
    super::reply::error_body(http::StatusCode::SERVICE_UNAVAILABLE, message)
}
