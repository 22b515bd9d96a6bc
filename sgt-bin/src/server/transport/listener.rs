//! Serving the routes over TCP, with TLS (rustls) or plain HTTP behind a TLS-terminating proxy.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

use super::body_budget::BodyBudget;
use super::connection::{
    serve_http1, serve_until_done, ConnectionActivity, IdleTimeouts, InFlightBody,
};
use crate::server::metrics::Metrics;
use sgt_core::error::{Error, Result};

/// Limits that keep slow, idle or too many clients from holding the server's resources.
/// Past a limit the server answers with a JSON error or closes a connection; it never
/// answers success for work it did not finish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Connections open at once. At the limit a new connection waits up to
    /// `at_capacity_wait` for one to close, and is closed unserved if none does (or at once
    /// when many already wait): agents retry at their next interval.
    pub max_connections: usize,
    /// How long a new connection waits for a free slot at `max_connections`.
    pub at_capacity_wait: Duration,
    /// Requests being handled at once. Past it a request is answered at once with 503 and an
    /// `error` body, which osquery treats as a failure: it keeps its data and retries later.
    pub max_requests_in_flight: usize,
    /// A TLS handshake must finish within this, and a connection's first request must
    /// begin within this after it (or after the TCP accept, without TLS): a connection
    /// that sends nothing is closed.
    pub handshake_timeout: Duration,
    /// A connection with no request in flight for this long is closed, whatever protocol it
    /// speaks or does not speak (HTTP/1.1 keep-alive, HTTP/2, a half-sent request's
    /// headers). A request is in flight from its headers until its answer is sent.
    pub idle_timeout: Duration,
    /// From a request's headers to its answer's headers (reading the body, handling it):
    /// past it the answer is 503 with an `error` body. osquery abandons a request after 16 s,
    /// so a later answer would reach no one.
    pub request_timeout: Duration,
    /// At shutdown, requests in flight get this long to finish before connections are cut.
    pub drain_timeout: Duration,
    /// Bytes of agent request bodies held at once: as received, as inflated from gzip, and
    /// as parsed. A request whose `Content-Length`, inflating body or parsed form would pass
    /// it is answered 503 with an `error` body. At least three times
    /// [`super::LARGEST_BODY_BYTES`], or the largest bodies could never be served.
    pub max_body_memory: u64,
}

impl Default for ConnectionLimits {
    /// 20,000 connections (a new one waits up to 1 s for a slot), 4,096 requests in flight,
    /// 10 s handshakes, 65 s idle (so a connection polled every 60 s stays open), 15 s per
    /// request, 20 s to drain, 256 MiB of request bodies.
    fn default() -> Self {
        ConnectionLimits {
            max_connections: 20_000,
            at_capacity_wait: Duration::from_secs(1),
            max_requests_in_flight: 4_096,
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(65),
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

/// Serves `routes` on `listener`, recording every answer in `metrics`, until `shutdown` completes; then stops accepting,
/// lets requests in flight finish (up to [`ConnectionLimits::drain_timeout`]) and returns.
/// Each connection runs on its own task: HTTP/1.1 with keep-alive, or HTTP/2 when the client
/// chooses it by ALPN (plain HTTP: either, by the client's first bytes).
///
/// # Errors
/// None once started; per-connection failures are logged and do not stop the server.
pub async fn serve<F>(
    listener: TcpListener,
    routes: F,
    metrics: Arc<Metrics>,
    mode: Listener,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<()>
where
    F: warp::Filter<Extract = (warp::reply::Response,), Error = std::convert::Infallible>
        + Clone
        + Send
        + Sync
        + Unpin
        + 'static,
{
    // One route tree for every connection, called in place for each request (hyper-util's
    // tower adapter would copy it for every request; a copy per connection would be part of
    // each connection's memory).
    let app = Arc::new(std::sync::Mutex::new(warp::service(routes)));
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
    let max_connections = limits.max_connections.clamp(1, MAX_CONNECTIONS);
    let connection_slots = Arc::new(Semaphore::new(max_connections));
    let waiting_room = Arc::new(Semaphore::new(CONNECTIONS_WAITING_FOR_A_SLOT));
    let request_slots = Arc::new(RequestSlots::new(limits.max_requests_in_flight.max(1)));
    let body_budget = BodyBudget::new(limits.max_body_memory);
    let memory_giver = tokio::spawn(give_memory_back_when_idle(body_budget.clone()));
    let (stop_sender, stop) = tokio::sync::watch::channel(false);
    tokio::pin!(shutdown);
    loop {
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
        // At the connection limit a new connection waits up to `at_capacity_wait` for a
        // slot, a few at a time; past that it is closed at once, so that agents retry at
        // their next interval instead of hanging until their own timeout.
        let slot = match Arc::clone(&connection_slots).try_acquire_owned() {
            Ok(slot) => Slot::Free(slot),
            Err(_) => match Arc::clone(&waiting_room).try_acquire_owned() {
                Ok(place) => Slot::WaitFor(place),
                Err(_) => {
                    refuse(&metrics, peer);
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        // Sheds requests past the in-flight limit, answers 503 to those that take longer
        // than the request timeout, refuses agent requests without a required client
        // certificate, and records every answer's endpoint, status and time.
        let app_service = Arc::clone(&app);
        let metrics = Arc::clone(&metrics);
        let service_metrics = Arc::clone(&metrics);
        let request_slots = Arc::clone(&request_slots);
        let body_budget = body_budget.clone();
        let behind_proxy = matches!(mode, Listener::PlainHttp);
        let activity = Arc::new(ConnectionActivity::new());
        let connection_activity = Arc::clone(&activity);
        let service_for = move |has_client_certificate: bool| {
            let refuse_agents = agents_need_client_certificate && !has_client_certificate;
            let activity = Arc::clone(&connection_activity);
            hyper::service::service_fn(move |mut request: http::Request<hyper::body::Incoming>| {
                let in_flight = activity.request_began();
                if let Some(uri) = decoded_path(request.uri()) {
                    *request.uri_mut() = uri;
                }
                let client = client_ip(peer.ip(), request.headers(), behind_proxy);
                request
                    .extensions_mut()
                    .insert(super::ClientAddress(client));
                let endpoint = crate::server::metrics::Endpoint::of(request.uri().path());
                let started = std::time::Instant::now();
                let refused = refuse_agents && is_agent_path(request.uri().path());
                let slot = request_slots.try_take();
                // The body's declared size is taken from the budget before it is read; one
                // over every route's limit is refused unread by its route, so it costs nothing.
                let declared = declared_length(request.headers());
                let body_share =
                    (declared <= super::LARGEST_BODY_BYTES).then(|| body_budget.try_take(declared));
                let over_budget = matches!(body_share, Some(None));
                // Decoders charge what they inflate to the same budget.
                request.extensions_mut().insert(body_budget.clone());
                let answer = (slot.is_some() && !refused && !over_budget).then(|| {
                    let mut app = app_service
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    tower_service::Service::call(&mut *app, request)
                });
                let metrics = Arc::clone(&service_metrics);
                // Boxed: a connection released while quiet is taken apart and put together
                // again, which hyper allows only for services whose futures are `Unpin`.
                Box::pin(async move {
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
                    // The request stays in flight until its answer's body is sent (or dropped).
                    response.map(|r| {
                        r.map(|body| InFlightBody {
                            body,
                            _in_flight: in_flight,
                        })
                    })
                })
            })
        };
        let acceptor = acceptor.clone();
        let mut stop = stop.clone();
        let connection_slots = Arc::clone(&connection_slots);
        let idle = IdleTimeouts {
            before_first_request: limits.handshake_timeout,
            after_last_request: limits.idle_timeout,
        };
        tokio::spawn(async move {
            let slot = match slot {
                Slot::Free(slot) => slot,
                // The place in the waiting room is given back however the wait ends.
                Slot::WaitFor(_place) => {
                    let slot = tokio::select! {
                        slot = tokio::time::timeout(limits.at_capacity_wait, connection_slots.acquire_owned()) => slot,
                        _ = stop.changed() => return,
                    };
                    match slot {
                        Ok(slot) => slot.expect("the connection semaphore is never closed"),
                        Err(_) => return refuse(&metrics, peer),
                    }
                }
            };
            let _open = OpenConnection::new(slot, &metrics);
            let served = match acceptor {
                Some(acceptor) => {
                    // Boxed, as every part of a connection that is not its long idle
                    // HTTP/1.1 life: the task's own size is what each connection costs.
                    // The stream is boxed as the handshake ends: it then moves between the
                    // connection's states without being copied into each.
                    let handshake = Box::pin(async move {
                        tokio::time::timeout(limits.handshake_timeout, acceptor.accept(tcp))
                            .await
                            .map(|accepted| accepted.map(Box::new))
                    });
                    let tls = match handshake.await {
                        Ok(Ok(tls)) => tls,
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "tls handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "tls handshake timed out");
                            return;
                        }
                    };
                    // rustls has verified any certificate presented against the CA.
                    let (_, session) = tls.get_ref();
                    let certified = session.peer_certificates().is_some();
                    let http2 = session.alpn_protocol() == Some(b"h2");
                    activity.ready();
                    if http2 {
                        let serving = Box::pin(async {
                            let connection =
                                hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                                    .timer(TokioTimer::new())
                                    .serve_connection(TokioIo::new(tls), service_for(certified));
                            serve_until_done(connection, &activity, idle, &mut stop).await
                        });
                        serving.await
                    } else {
                        serve_http1(tls, service_for(certified), &activity, idle, &mut stop).await
                    }
                }
                None => {
                    // Behind a balancer, which holds few connections: either protocol, by
                    // the client's first bytes.
                    let serving = Box::pin(async {
                        // No header timer, as for HTTP/1.1 over TLS: `activity` closes a
                        // connection whose request headers do not complete.
                        let mut builder = auto::Builder::new(TokioExecutor::new());
                        builder.http1().header_read_timeout(None);
                        let connection =
                            builder.serve_connection(TokioIo::new(tcp), service_for(false));
                        serve_until_done(connection, &activity, idle, &mut stop).await
                    });
                    serving.await
                }
            };
            if let Err(e) = served {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    let _ = stop_sender.send(true);
    // Every connection gives its slot back when it ends.
    let all_slots = u32::try_from(max_connections).unwrap_or(u32::MAX);
    if tokio::time::timeout(
        limits.drain_timeout,
        connection_slots.acquire_many(all_slots),
    )
    .await
    .is_err()
    {
        tracing::warn!("requests still in flight after the drain timeout; cutting them off");
    }
    memory_giver.abort();
    Ok(())
}

/// The most connections one server holds, whatever is configured: a semaphore's bound, and
/// far past what any open-files limit allows.
const MAX_CONNECTIONS: usize = u32::MAX as usize;

/// Connections that wait for a slot at the connection limit at once; more are closed at once.
/// Kept within the open files [`crate::open_files::SERVER_RESERVED_FILES`] leaves.
const CONNECTIONS_WAITING_FOR_A_SLOT: usize = 64;

/// The requests in flight, counted without a lock: every request takes a slot and gives it
/// back.
#[derive(Debug)]
struct RequestSlots {
    taken: std::sync::atomic::AtomicUsize,
    max: usize,
}

/// A request slot, given back when dropped.
struct RequestSlot(Arc<RequestSlots>);

impl RequestSlots {
    fn new(max: usize) -> Self {
        RequestSlots {
            taken: std::sync::atomic::AtomicUsize::new(0),
            max,
        }
    }

    /// A slot, or `None` when all `max` are taken.
    fn try_take(self: &Arc<Self>) -> Option<RequestSlot> {
        self.taken
            .fetch_update(
                std::sync::atomic::Ordering::AcqRel,
                std::sync::atomic::Ordering::Acquire,
                |taken| (taken < self.max).then_some(taken + 1),
            )
            .ok()
            .map(|_| RequestSlot(Arc::clone(self)))
    }
}

impl Drop for RequestSlot {
    fn drop(&mut self) {
        self.0
            .taken
            .fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

/// A new connection's way to a slot under `max_connections`.
enum Slot {
    /// One was free.
    Free(tokio::sync::OwnedSemaphorePermit),
    /// None was: a place among those that wait for one.
    WaitFor(tokio::sync::OwnedSemaphorePermit),
}

/// Closes a connection unserved at the connection limit (by dropping it) and counts it.
fn refuse(metrics: &Metrics, peer: std::net::SocketAddr) {
    metrics.connection_refused();
    tracing::debug!(%peer, "refused a connection at the connection limit");
}

/// A connection's slot, counted in the open connections until it closes.
struct OpenConnection {
    _slot: tokio::sync::OwnedSemaphorePermit,
    metrics: Arc<Metrics>,
}

impl OpenConnection {
    fn new(slot: tokio::sync::OwnedSemaphorePermit, metrics: &Arc<Metrics>) -> Self {
        metrics.connection_opened();
        OpenConnection {
            _slot: slot,
            metrics: Arc::clone(metrics),
        }
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.metrics.connection_closed();
    }
}

/// How often the server checks whether a burst of large bodies is over.
const MEMORY_CHECK_INTERVAL: Duration = Duration::from_secs(5);

/// Gives freed memory back to the system after each burst of large bodies, once no body
/// holds any of the budget: without it the process keeps the burst's peak resident.
async fn give_memory_back_when_idle(budget: BodyBudget) {
    let mut tick = tokio::time::interval(MEMORY_CHECK_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if budget.idle_after_large_bodies() {
            let _ = tokio::task::spawn_blocking(super::body_budget::give_freed_memory_back).await;
        }
    }
}

/// `uri` with percent-encoded path characters that need no encoding in a path segment
/// (letters, digits, `-._~!$&'()*+,;=:@`) decoded, as RFC 3986 makes them equivalent: a
/// client that encodes the `@` of a user name reaches the same resource. `%2F` and other
/// encodings stay as they are. `None` when nothing changes.
fn decoded_path(uri: &http::Uri) -> Option<http::Uri> {
    let path = uri.path();
    if !path.contains('%') {
        return None;
    }
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        let decoded = (bytes[i] == b'%')
            .then(|| path.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok())
            .filter(|b| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@".contains(b));
        match decoded {
            Some(byte) => {
                out.push(char::from(byte));
                i += 3;
            }
            None => {
                out.push(char::from(bytes[i]));
                i += 1;
            }
        }
    }
    if out == path {
        return None;
    }
    let path_and_query = match uri.query() {
        Some(query) => format!("{out}?{query}"),
        None => out,
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = path_and_query.parse().ok();
    http::Uri::from_parts(parts).ok()
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

#[cfg(test)]
mod tests {
    use super::decoded_path;

    #[test]
    fn path_characters_that_need_no_encoding_are_decoded_and_no_others() {
        let decode = |uri: &str| decoded_path(&uri.parse().unwrap()).map(|u| u.to_string());
        assert_eq!(
            decode("/api/v1/users/a%40b?x=%40").as_deref(),
            Some("/api/v1/users/a@b?x=%40")
        );
        assert_eq!(decode("/api/v1/users/a%2Fb"), None, "a slash stays encoded");
        assert_eq!(decode("/a%2"), None);
        assert_eq!(decode("/plain"), None);
        assert_eq!(decode("/a%41%25").as_deref(), Some("/aA%25"));
    }
}
