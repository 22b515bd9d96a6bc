//! How the simulated agents reach the server.
//!
//! - **Agent mode** (the default) connects as osquery does (`osquery/remote/transports/tls.cpp`,
//!   `http_client.cpp`): every agent holds one kept-alive connection per loop (config, logger,
//!   distributed, and the carver while it uploads), opened when the loop first needs it,
//!   opened again when the server has closed it (osquery retries a request once on a new
//!   connection, so that is a reconnect, not an error), and replaced every
//!   `--tls-session-timeout`. Each agent connects from its own loopback address, so a large
//!   fleet never runs out of ephemeral ports.
//! - **Pooled mode** shares `--connections` kept-alive connections among all agents, which
//!   measures the server's request path without the cost of holding a fleet's connections.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use bytes::Bytes;
use http::{HeaderValue, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use rustls_pki_types::pem::PemObject;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;

/// How agents connect: `agent` (each agent its own connections, as osquery) or `pooled`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionMode {
    /// One kept-alive connection per agent loop, as a real osquery agent holds them.
    Agent,
    /// `--connections` kept-alive connections shared by every agent.
    Pooled,
}

/// The loops of an agent that each hold a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AgentLoop {
    /// Config refresh; enrolls too.
    Config,
    /// Logger (`logger_tls_period`).
    Log,
    /// Distributed reads and writes.
    Distributed,
    /// The carver, while it uploads.
    Carve,
}

impl AgentLoop {
    /// How many there are: the size of an agent's connection array.
    pub(crate) const COUNT: usize = 4;
}

/// Sockets an agent holds at most in agent mode when it never carves (config, logger,
/// distributed).
pub(crate) const SOCKETS_PER_AGENT: u64 = 3;
/// Open files the simulator keeps for itself beyond its agents' sockets.
pub(crate) const RESERVED_FILES: u64 = 64;

/// Connection counts of a whole run, shared by every agent.
#[derive(Debug, Default)]
pub(crate) struct ConnectionCounters {
    /// Connections open now.
    pub(crate) open: AtomicU64,
    /// Connections opened (each a TCP and TLS handshake).
    pub(crate) opened: AtomicU64,
    /// Connections opened again because the server had closed the previous one.
    pub(crate) reconnects: AtomicU64,
    /// Connections replaced because their TLS session timed out.
    pub(crate) renewals: AtomicU64,
}

/// What the report says about connections.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ConnectionSummary {
    pub(crate) mode: ConnectionMode,
    /// The most connections open at once, sampled every second (agent mode).
    pub(crate) open_peak: Option<u64>,
    /// Connections opened over the run, and per second (agent mode).
    pub(crate) handshakes: Option<u64>,
    pub(crate) handshakes_per_second: Option<f64>,
    /// Connections the server closed that an agent opened again (agent mode).
    pub(crate) reconnects: Option<u64>,
    /// Connections replaced at `--tls-session-timeout` (agent mode).
    pub(crate) session_renewals: Option<u64>,
}

/// Any byte stream a connection runs on: TLS or plain TCP.
trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// Opens agent connections to one server.
pub(crate) struct Connector {
    server: SocketAddr,
    host: HeaderValue,
    tls: Option<(tokio_rustls::TlsConnector, ServerName<'static>)>,
    /// Whether agents connect from their own loopback address (the server is on 127.0.0.0/8).
    spread_sources: bool,
    connect_timeout: Duration,
    request_timeout: Duration,
    session_timeout: Duration,
    pub(crate) counters: Arc<ConnectionCounters>,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector")
            .field("server", &self.server)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

/// What a [`Connector`] needs to know.
pub(crate) struct ConnectorOptions<'a> {
    pub(crate) url: &'a str,
    pub(crate) ca_cert: Option<&'a std::path::Path>,
    pub(crate) insecure: bool,
    pub(crate) request_timeout: Duration,
    pub(crate) session_timeout: Duration,
}

impl Connector {
    /// A connector for the server at `url` (`https://` or `http://`), resolved once.
    ///
    /// # Errors
    /// A URL without a host, a name that does not resolve, an unreadable CA file.
    pub(crate) async fn new(options: ConnectorOptions<'_>) -> anyhow::Result<Connector> {
        let url = reqwest::Url::parse(options.url)
            .with_context(|| format!("--url {} is not a URL", options.url))?;
        let host = url.host_str().context("--url has no host")?.to_owned();
        let port = url
            .port_or_known_default()
            .context("--url has no port and no known scheme")?;
        let addresses: Vec<SocketAddr> =
            tokio::net::lookup_host((host.trim_matches(['[', ']']), port))
                .await
                .with_context(|| format!("cannot resolve {host}"))?
                .collect();
        let server = reachable(&addresses)
            .await
            .with_context(|| format!("cannot connect to {host}:{port} ({addresses:?})"))?;
        let host_header = match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.clone(),
        };
        let tls = match url.scheme() {
            "https" => {
                let config = client_tls_config(options.ca_cert, options.insecure)?;
                let name = ServerName::try_from(host.trim_matches(['[', ']']).to_owned())
                    .with_context(|| format!("{host} is not a TLS server name"))?;
                Some((tokio_rustls::TlsConnector::from(Arc::new(config)), name))
            }
            "http" => None,
            other => bail!("--url scheme {other} is neither https nor http"),
        };
        let spread_sources = matches!(server.ip(), IpAddr::V4(ip) if ip.is_loopback());
        Ok(Connector {
            server,
            host: HeaderValue::from_str(&host_header)?,
            tls,
            spread_sources,
            connect_timeout: Duration::from_secs(10),
            request_timeout: options.request_timeout,
            session_timeout: options.session_timeout,
            counters: Arc::new(ConnectionCounters::default()),
        })
    }

    /// The source address of agent `index`: its own in 127.0.0.0/8 when the server is on
    /// loopback (127.0.0.2 upward, so 127.0.0.1 stays the server's), else the system's choice.
    pub(crate) fn source_for(&self, index: usize) -> Option<IpAddr> {
        self.spread_sources.then(|| {
            let n = (index as u32).wrapping_add(2) & 0x00ff_ffff;
            IpAddr::V4(Ipv4Addr::from(0x7f00_0000 | n))
        })
    }

    async fn open(&self, source: Option<IpAddr>, renew_at: Instant) -> Result<Open, String> {
        let socket = match self.server {
            SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4(),
            SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6(),
        }
        .map_err(|_| "socket".to_owned())?;
        if let Some(source) = source {
            socket
                .bind(SocketAddr::new(source, 0))
                .map_err(|_| "bind".to_owned())?;
        }
        let tcp = tokio::time::timeout(self.connect_timeout, socket.connect(self.server))
            .await
            .map_err(|_| "connect timeout".to_owned())?
            .map_err(|_| "connect".to_owned())?;
        let _ = tcp.set_nodelay(true);
        let stream: Box<dyn Stream> = match &self.tls {
            Some((tls, name)) => Box::new(
                tls.connect(name.clone(), tcp)
                    .await
                    .map_err(|_| "tls handshake".to_owned())?,
            ),
            None => Box::new(tcp),
        };
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|_| "http handshake".to_owned())?;
        let counters = Arc::clone(&self.counters);
        counters.opened.fetch_add(1, Ordering::Relaxed);
        counters.open.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(async move {
            let _ = connection.await;
            counters.open.fetch_sub(1, Ordering::Relaxed);
        });
        Ok(Open { sender, renew_at })
    }
}

/// The first of `addresses` that accepts a TCP connection (`localhost` names both ::1 and
/// 127.0.0.1; a server may listen on one only).
async fn reachable(addresses: &[SocketAddr]) -> Option<SocketAddr> {
    for &address in addresses {
        let attempt = tokio::time::timeout(
            Duration::from_secs(5),
            tokio::net::TcpStream::connect(address),
        );
        if let Ok(Ok(_)) = attempt.await {
            return Some(address);
        }
    }
    None
}

/// One open connection.
struct Open {
    sender: SendRequest<Full<Bytes>>,
    /// When its TLS session times out and it is replaced.
    renew_at: Instant,
}

/// The connection of one agent loop, as osquery's thread-local HTTP client holds it.
#[derive(Default)]
pub(crate) struct LoopConnection {
    open: Option<Open>,
    /// Opened before: later connections live a whole `--tls-session-timeout`, the first
    /// only part of one, so a fleet's renewals spread over time as a running fleet's do.
    opened_before: bool,
}

impl LoopConnection {
    /// Sends `request()` on this loop's connection, opening it first when needed; returns the
    /// answer's status and body, or the kind of failure. `session_phase` (0 to 1) is the
    /// share of a session timeout the agent's first connection lives.
    pub(crate) async fn send(
        &mut self,
        connector: &Connector,
        source: Option<IpAddr>,
        session_phase: f64,
        request: impl Fn() -> Request<Full<Bytes>>,
    ) -> Result<(StatusCode, Bytes), String> {
        let outcome = tokio::time::timeout(
            connector.request_timeout,
            self.exchange(connector, source, session_phase, &request),
        )
        .await;
        match outcome {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(kind)) => {
                self.open = None;
                Err(kind)
            }
            Err(_) => {
                // The connection's state is unknown: osquery's client drops it too.
                self.open = None;
                Err("timeout".to_owned())
            }
        }
    }

    /// Drops the connection (the carver's thread ends when its upload does).
    pub(crate) fn close(&mut self) {
        self.open = None;
    }

    async fn exchange(
        &mut self,
        connector: &Connector,
        source: Option<IpAddr>,
        session_phase: f64,
        request: &impl Fn() -> Request<Full<Bytes>>,
    ) -> Result<(StatusCode, Bytes), String> {
        let counters = &connector.counters;
        if self
            .open
            .as_ref()
            .is_some_and(|open| Instant::now() >= open.renew_at)
        {
            self.open = None;
            counters.renewals.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(open) = &mut self.open {
            if open.sender.is_closed() || open.sender.ready().await.is_err() {
                self.open = None;
                counters.reconnects.fetch_add(1, Ordering::Relaxed);
            }
        }
        let reused = self.open.is_some();
        if self.open.is_none() {
            self.open = Some(self.connect(connector, source, session_phase).await?);
        }
        let open = self.open.as_mut().expect("opened above");
        let response = match open.sender.send_request(request()).await {
            Ok(response) => response,
            // The server closed a kept-alive connection as the request went out: osquery's
            // client sends it once more on a new connection.
            Err(e) if reused && (e.is_canceled() || e.is_closed() || e.is_incomplete_message()) => {
                counters.reconnects.fetch_add(1, Ordering::Relaxed);
                self.open = Some(self.connect(connector, source, session_phase).await?);
                let open = self.open.as_mut().expect("opened above");
                open.sender
                    .send_request(request())
                    .await
                    .map_err(|_| "transport".to_owned())?
            }
            Err(_) => return Err("transport".to_owned()),
        };
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|_| "transport".to_owned())?
            .to_bytes();
        Ok((status, body))
    }

    async fn connect(
        &mut self,
        connector: &Connector,
        source: Option<IpAddr>,
        session_phase: f64,
    ) -> Result<Open, String> {
        let lifetime = if self.opened_before {
            connector.session_timeout
        } else {
            connector
                .session_timeout
                .mul_f64(session_phase.clamp(0.0, 1.0))
        };
        let open = connector.open(source, Instant::now() + lifetime).await?;
        self.opened_before = true;
        Ok(open)
    }
}

/// A POST of `body` to `path` on `connector`'s server, as an agent sends it.
pub(crate) fn agent_request(
    connector: &Connector,
    path: &str,
    body: &Bytes,
    gzip: bool,
) -> Request<Full<Bytes>> {
    let mut request = Request::post(path)
        .header(http::header::HOST, connector.host.clone())
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::USER_AGENT, "osquery/5.23.1");
    if gzip {
        request = request.header(http::header::CONTENT_ENCODING, "gzip");
    }
    request
        .body(Full::new(body.clone()))
        .unwrap_or_else(|_| Request::new(Full::new(Bytes::new())))
}

/// The TLS client configuration: trusting `ca_cert` only when given, any certificate with
/// `insecure`, else the public web roots.
fn client_tls_config(
    ca_cert: Option<&std::path::Path>,
    insecure: bool,
) -> anyhow::Result<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()?;
    let mut config = if insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth()
    } else {
        let mut roots = rustls::RootCertStore::empty();
        match ca_cert {
            Some(path) => {
                let pem = std::fs::read(path)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                for cert in rustls_pki_types::CertificateDer::pem_slice_iter(&pem) {
                    roots.add(cert.with_context(|| format!("bad PEM in {}", path.display()))?)?;
                }
                if roots.is_empty() {
                    bail!("{} holds no certificate", path.display());
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    // osquery resumes TLS sessions when it reconnects (`--tls_session_reuse`).
    config.resumption = rustls::client::Resumption::in_memory_sessions(4096);
    Ok(config)
}

/// `--insecure`: accepts any server certificate, still checking the handshake's signatures.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls_pki_types::CertificateDer<'_>,
        _intermediates: &[rustls_pki_types::CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Refuses a run whose agents need more sockets than `limit` open files allow, saying how
/// many agents fit.
///
/// # Errors
/// When `agents` do not fit.
pub(crate) fn check_sockets_fit(agents: usize, carves: bool, limit: u64) -> anyhow::Result<()> {
    let per_agent = SOCKETS_PER_AGENT + u64::from(carves);
    let needed = agents as u64 * per_agent + RESERVED_FILES;
    if needed > limit {
        let fit = limit.saturating_sub(RESERVED_FILES) / per_agent;
        bail!(
            "{agents} agents hold up to {needed} sockets ({per_agent} per agent, one per osquery loop, plus {RESERVED_FILES}), \
             but this process may open only {limit} files (its hard `ulimit -n`): at most {fit} agents fit. \
             Run fewer agents, raise the hard limit, or use --connection-mode pooled"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fleet_too_large_for_the_limit_is_refused_with_what_fits() {
        assert!(check_sockets_fit(100, false, 1024).is_ok());
        let refused = check_sockets_fit(1000, false, 1024)
            .unwrap_err()
            .to_string();
        assert!(refused.contains("at most 320 agents fit"), "{refused}");
        let refused = check_sockets_fit(300, true, 1024).unwrap_err().to_string();
        assert!(refused.contains("at most 240 agents fit"), "{refused}");
    }

    #[tokio::test]
    async fn loopback_agents_each_get_their_own_source_address() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let connector = Connector::new(ConnectorOptions {
            url: &url,
            ca_cert: None,
            insecure: false,
            request_timeout: Duration::from_secs(1),
            session_timeout: Duration::from_secs(3600),
        })
        .await
        .unwrap();
        assert_eq!(
            connector.source_for(0),
            Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)))
        );
        assert_eq!(
            connector.source_for(70_000),
            Some(IpAddr::V4(Ipv4Addr::new(127, 1, 17, 114)))
        );
        assert_eq!(connector.host, url.trim_start_matches("http://"));
    }
}
