//! The transport as osquery's client uses it: HTTP/1.1 without ALPN over TLS 1.2 or 1.3,
//! several requests on one kept-alive connection.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore, SupportedCipherSuite, SupportedProtocolVersion};
use serde_json::{json, Value};
use sgt_bin::server::paths;
use sgt_tests::{Agent, TestServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

async fn connect(
    server: &TestServer,
    versions: &[&'static SupportedProtocolVersion],
    suites: Option<Vec<SupportedCipherSuite>>,
) -> std::io::Result<TlsStream<TcpStream>> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(server.ca_file()).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let mut provider = rustls::crypto::ring::default_provider();
    if let Some(suites) = suites {
        provider.cipher_suites = suites;
    }
    let config = ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = TcpStream::connect(("127.0.0.1", server.port())).await?;
    TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
}

/// Sends one request the way osquery does and reads one response (status, JSON body).
async fn exchange(
    stream: &mut TlsStream<TcpStream>,
    port: u16,
    path: &str,
    body: &Value,
) -> (u16, Value) {
    let body = serde_json::to_vec(body).unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: localhost:{port}\r\nContent-Type: application/json\r\nAccept: application/json\r\nUser-Agent: osquery/5.23.1\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&body).await.unwrap();
    stream.flush().await.unwrap();

    let mut buf = Vec::new();
    let header_end = loop {
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "connection closed before a response");
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..header_end]).to_string();
    let status: u16 = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().unwrap())
        })
        .expect("content-length");
    while buf.len() < header_end + length {
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "connection closed inside a body");
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = serde_json::from_slice(&buf[header_end..header_end + length]).unwrap();
    (status, body)
}

#[tokio::test]
async fn three_requests_share_one_kept_alive_connection() {
    let server = TestServer::start().await;
    let mut agent = Agent::new(&server, "h");
    agent.enroll().await;
    let mut stream = connect(
        &server,
        &[&rustls::version::TLS13, &rustls::version::TLS12],
        None,
    )
    .await
    .unwrap();
    let key = json!({"node_key": agent.node_key});
    let (status, config) = exchange(&mut stream, server.port(), paths::CONFIG, &key).await;
    assert_eq!(status, 200);
    assert!(config["schedule"].is_object());
    let (status, read) = exchange(&mut stream, server.port(), paths::DISTRIBUTED_READ, &key).await;
    assert_eq!((status, read), (200, json!({"queries": {}})));
    let log = json!({"node_key": agent.node_key, "log_type": "status", "data": [{"message": "hi", "severity": 0}]});
    assert_eq!(
        exchange(&mut stream, server.port(), paths::LOG, &log).await,
        (200, json!({}))
    );
    server.stop().await;
}

#[tokio::test]
async fn tls_1_2_with_an_ecdhe_gcm_suite_and_tls_1_3_both_work() {
    let server = TestServer::start().await;
    let mut agent = Agent::new(&server, "h");
    agent.enroll().await;
    let key = json!({"node_key": agent.node_key});

    let ecdhe_gcm =
        vec![rustls::crypto::ring::cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256];
    let mut tls12 = connect(&server, &[&rustls::version::TLS12], Some(ecdhe_gcm))
        .await
        .unwrap();
    {
        let (_, connection) = tls12.get_ref();
        assert_eq!(
            connection.protocol_version(),
            Some(rustls::ProtocolVersion::TLSv1_2)
        );
    }
    assert_eq!(
        exchange(&mut tls12, server.port(), paths::CONFIG, &key)
            .await
            .0,
        200
    );

    let mut tls13 = connect(&server, &[&rustls::version::TLS13], None)
        .await
        .unwrap();
    {
        let (_, connection) = tls13.get_ref();
        assert_eq!(
            connection.protocol_version(),
            Some(rustls::ProtocolVersion::TLSv1_3)
        );
    }
    assert_eq!(
        exchange(&mut tls13, server.port(), paths::CONFIG, &key)
            .await
            .0,
        200
    );

    server.stop().await;
}

#[tokio::test]
async fn a_client_that_does_not_trust_the_ca_is_refused() {
    let server = TestServer::start().await;
    let config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(RootCertStore::empty())
            .with_no_client_auth();
    let tcp = TcpStream::connect(("127.0.0.1", server.port()))
        .await
        .unwrap();
    let result = TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await;
    assert!(result.is_err());
    server.stop().await;
}

#[tokio::test]
async fn the_config_is_gzipped_only_for_agents_that_accept_gzip() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    let schedule: serde_json::Map<String, Value> = (0..40)
        .map(|i| {
            let query = format!("SELECT pid, name FROM processes WHERE pid = {i};");
            (format!("q{i}"), json!({"query": query, "interval": 3600}))
        })
        .collect();
    let (status, answer) = server
        .admin(
            reqwest::Method::PUT,
            "/api/v1/environments/default/config",
            Some(&admin),
            Some(json!({"schedule": schedule})),
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::OK, "{answer}");
    let mut agent = Agent::new(&server, "gzip-host");
    agent.enroll().await;
    let fetch = |accept_encoding: Option<&'static str>| {
        let mut request = server
            .client()
            .post(server.url(paths::CONFIG))
            .json(&json!({"node_key": agent.node_key}));
        if let Some(value) = accept_encoding {
            request = request.header("accept-encoding", value);
        }
        async move {
            let response = request.send().await.unwrap();
            let encoding = response
                .headers()
                .get("content-encoding")
                .map(|v| v.to_str().unwrap().to_owned());
            (encoding, response.bytes().await.unwrap())
        }
    };
    // An agent without --tls_accept_gzip gets plain JSON, as before.
    let (encoding, plain) = fetch(None).await;
    assert_eq!(encoding, None);
    let config: Value = serde_json::from_slice(&plain).unwrap();
    assert_eq!(config["schedule"]["q7"]["interval"], 3600);
    // One with it gets the same bytes gzipped, marked exactly as osquery requires.
    let (encoding, gzipped) = fetch(Some("gzip")).await;
    assert_eq!(encoding.as_deref(), Some("gzip"));
    assert!(
        gzipped.len() * 3 < plain.len(),
        "{} of {}",
        gzipped.len(),
        plain.len()
    );
    let mut inflated = Vec::new();
    std::io::Read::read_to_end(
        &mut flate2::read::GzDecoder::new(&gzipped[..]),
        &mut inflated,
    )
    .unwrap();
    assert_eq!(inflated, plain);
    // A refusal of gzip is honoured.
    assert_eq!(fetch(Some("gzip;q=0")).await, (None, plain));
    server.stop().await;
}
