//! Connection and request limits: shedding past the in-flight limit, the request timeout, the
//! connection cap, the TLS handshake timeout, and draining requests in flight at shutdown.
//! Every refusal is a JSON body with an `error` member, so osquery keeps its data.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};
use sgt_bin::server::paths;
use sgt_bin::server::transport::listener::ConnectionLimits;
use sgt_core::log_sink::LogSink;
use sgt_core::testkit::doubles::{FaultyLogSink, MemoryBlobStore, RecordingLogSink};
use sgt_core::Backends;
use sgt_local::{FileSecrets, SqliteStore};
use sgt_tests::{Agent, TestServer};
use tokio::io::AsyncReadExt;

/// A server whose log sink takes `sink_delay` per batch, with `limits`.
async fn serve_with(
    sink_delay: Duration,
    limits: ConnectionLimits,
) -> (
    TestServer,
    Arc<FaultyLogSink<RecordingLogSink>>,
    tempfile::TempDir,
) {
    serve_with_sink(
        FaultyLogSink::slow(RecordingLogSink::new(), sink_delay),
        limits,
    )
    .await
}

/// A server on `sink`, with `limits`.
async fn serve_with_sink(
    sink: FaultyLogSink<RecordingLogSink>,
    limits: ConnectionLimits,
) -> (
    TestServer,
    Arc<FaultyLogSink<RecordingLogSink>>,
    tempfile::TempDir,
) {
    let secrets_dir = tempfile::tempdir().unwrap();
    let sink = Arc::new(sink);
    let backends = Backends {
        store: Arc::new(SqliteStore::in_memory().await.unwrap()),
        secrets: Arc::new(FileSecrets::open(secrets_dir.path().join("secrets.json")).unwrap()),
        log_sink: Arc::clone(&sink) as Arc<dyn LogSink>,
        blobs: Arc::new(MemoryBlobStore::new()),
    };
    let server = TestServer::with_backends_and_limits(backends, limits).await;
    (server, sink, secrets_dir)
}

/// Enrolls one agent; returns its node key.
async fn enroll(server: &TestServer, host: &str) -> String {
    let (status, body) = server
        .post(
            paths::ENROLL,
            &json!({"enroll_secret": server.enroll_secret(), "host_identifier": host}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["node_key"].as_str().unwrap().to_owned()
}

fn log_body(key: &str, name: &str) -> Value {
    json!({"node_key": key, "log_type": "result", "data": [{"name": name, "action": "added"}]})
}

fn assert_error_body(status: StatusCode, body: &Value, needle: &str) {
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let message = body["error"].as_str().unwrap_or_default();
    assert!(message.contains(needle), "{body}");
}

#[tokio::test]
async fn requests_past_the_in_flight_limit_are_shed_with_an_error_body() {
    let limits = ConnectionLimits {
        max_requests_in_flight: 1,
        ..ConnectionLimits::default()
    };
    let (server, sink, _dir) = serve_with(Duration::from_millis(800), limits).await;
    let key = enroll(&server, "shed").await;
    let first_body = log_body(&key, "first");
    let first = server.post(paths::LOG, &first_body);
    let second = async {
        // Sent while the first one waits on the slow sink.
        tokio::time::sleep(Duration::from_millis(200)).await;
        server.post(paths::LOG, &log_body(&key, "second")).await
    };
    let ((first_status, first_body), (second_status, second_body)) = tokio::join!(first, second);
    assert_eq!(first_status, StatusCode::OK, "{first_body}");
    assert_eq!(first_body, json!({}));
    assert_error_body(second_status, &second_body, "busy");
    // Only the acknowledged batch is in the sink.
    let records = sink.inner().records();
    assert_eq!(records.len(), 1, "{records:?}");
    assert!(records[0].contains("\"first\""));
    // Once the first is answered, the next request is served again.
    let (status, body) = server.post(paths::LOG, &log_body(&key, "third")).await;
    assert_eq!((status, body), (StatusCode::OK, json!({})));
}

#[tokio::test]
async fn the_replay_flood_after_a_sink_outage_is_absorbed_without_losing_a_line() {
    const AGENTS: usize = 100;
    const LINES: usize = 50;
    let limits = ConnectionLimits {
        max_requests_in_flight: 8,
        ..ConnectionLimits::default()
    };
    // The sink is down for the first batch of every agent, then catches up slowly.
    let sink = FaultyLogSink::failing_first_then_slow(
        RecordingLogSink::new(),
        AGENTS,
        Duration::from_millis(20),
    );
    let (server, sink, _dir) = serve_with_sink(sink, limits).await;
    let mut keys = Vec::new();
    for i in 0..AGENTS {
        keys.push(enroll(&server, &format!("replay-{i}")).await);
    }
    let batch = |key: &str, agent: usize| {
        let data: Vec<Value> = (0..LINES)
            .map(|line| json!({"name": format!("a{agent}-l{line}"), "action": "added"}))
            .collect();
        json!({"node_key": key, "log_type": "result", "data": data})
    };
    // The outage: every agent's first send fails, so each keeps its buffer.
    for (agent, key) in keys.iter().enumerate() {
        let (status, body) = server.post(paths::LOG, &batch(key, agent)).await;
        assert_error_body(status, &body, "");
    }
    assert!(sink.inner().records().is_empty());

    // The recovery: every agent replays its buffer at once, retrying with backoff until
    // acknowledged, as osquery does. The in-flight limit sheds what the sink cannot take.
    let started = Instant::now();
    let replays = keys.iter().enumerate().map(|(agent, key)| {
        let server = &server;
        let body = batch(key, agent);
        async move {
            let mut attempts = 0u32;
            let mut shed = 0u32;
            loop {
                attempts += 1;
                let (status, answer) = server.post(paths::LOG, &body).await;
                if status == StatusCode::OK {
                    assert_eq!(answer, json!({}));
                    return (attempts, shed);
                }
                assert_error_body(status, &answer, "busy");
                shed += 1;
                let backoff = Duration::from_millis(20 * u64::from(attempts * attempts));
                tokio::time::sleep(backoff.min(Duration::from_secs(1))).await;
            }
        }
    });
    let outcomes = tokio::time::timeout(
        Duration::from_secs(120),
        futures_util::future::join_all(replays),
    )
    .await
    .expect("every agent's replay is acknowledged");
    let attempts: u32 = outcomes.iter().map(|(a, _)| a).sum();
    let shed: u32 = outcomes.iter().map(|(_, s)| s).sum();
    assert!(shed > 0, "the flood was large enough to be shed");
    assert!(
        attempts < (AGENTS * 20) as u32,
        "retries stay bounded: {attempts} attempts"
    );
    // Every line is in the sink exactly once: shed requests stored nothing.
    let mut names: Vec<String> = sink
        .inner()
        .records()
        .iter()
        .map(|r| {
            serde_json::from_str::<Value>(r).unwrap()["line"]["name"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    names.sort();
    let mut expected: Vec<String> = (0..AGENTS)
        .flat_map(|a| (0..LINES).map(move |l| format!("a{a}-l{l}")))
        .collect();
    expected.sort();
    assert_eq!(names.len(), expected.len());
    assert_eq!(names, expected);
    // The server is still answering at once.
    let (status, body) = server.post(paths::LOG, &log_body(&keys[0], "after")).await;
    assert_eq!((status, body), (StatusCode::OK, json!({})));
    eprintln!(
        "replay flood: {AGENTS} agents, {attempts} attempts, {shed} shed, {:?}",
        started.elapsed()
    );
}

/// A log body of about `bytes` bytes: one line whose column holds that many `x`.
fn log_body_of_size(key: &str, name: &str, bytes: usize) -> Value {
    json!({"node_key": key, "log_type": "result", "data": [{"name": name, "action": "added", "columns": {"x": "x".repeat(bytes)}}]})
}

#[tokio::test]
async fn request_bodies_together_stay_within_the_body_memory_budget() {
    let limits = ConnectionLimits {
        max_body_memory: 2 * 1024 * 1024,
        ..ConnectionLimits::default()
    };
    let (server, sink, _dir) = serve_with(Duration::from_millis(800), limits).await;
    let key = enroll(&server, "budget").await;
    // 700 KiB held while the slow sink stores it, twice (as sent and as parsed); 500 KiB
    // more, twice, does not fit beside it.
    let first_body = log_body_of_size(&key, "first", 700 * 1024);
    let first = server.post(paths::LOG, &first_body);
    let second_body = log_body_of_size(&key, "second", 500 * 1024);
    let second = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        server.post(paths::LOG, &second_body).await
    };
    let ((first_status, first_answer), (second_status, second_answer)) =
        tokio::join!(first, second);
    assert_eq!((first_status, first_answer), (StatusCode::OK, json!({})));
    // 503 before its body is parsed (the parsed copy does not fit), with an error body.
    assert_error_body(second_status, &second_answer, "retry later");
    // Once the first is answered its share is back, and the resend is stored.
    let (status, answer) = server.post(paths::LOG, &second_body).await;
    assert_eq!((status, answer), (StatusCode::OK, json!({})));

    // Inflated bytes count too: a 2 KiB gzip body that inflates to 2 MiB does not fit.
    let bomb = serde_json::to_vec(&log_body_of_size(&key, "inflating", 2 * 1024 * 1024)).unwrap();
    let compressed = sgt_tests::gzip(&bomb);
    assert!(compressed.len() < 16 * 1024);
    let (status, answer) = server
        .post_bytes(paths::LOG, &[("content-encoding", "gzip")], compressed)
        .await;
    assert_error_body(status, &answer, "");
    let records = sink.inner().records();
    assert_eq!(records.len(), 2);
    assert!(records[0].contains("\"first\"") && records[1].contains("\"second\""));
}

#[tokio::test]
async fn a_request_slower_than_the_timeout_gets_an_error_body_not_success() {
    let limits = ConnectionLimits {
        request_timeout: Duration::from_millis(500),
        ..ConnectionLimits::default()
    };
    let (server, _sink, _dir) = serve_with(Duration::from_secs(3), limits).await;
    let key = enroll(&server, "slow").await;
    let started = Instant::now();
    let (status, body) = server.post(paths::LOG, &log_body(&key, "late")).await;
    assert_error_body(status, &body, "took too long");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "answered in time"
    );
}

#[tokio::test]
async fn at_the_connection_cap_a_new_connection_waits_briefly_then_is_refused() {
    let limits = ConnectionLimits {
        max_connections: 1,
        at_capacity_wait: Duration::from_millis(500),
        ..ConnectionLimits::default()
    };
    let (server, _sink, _dir) = serve_with(Duration::ZERO, limits).await;
    // A bare TCP connection takes the only slot (the server waits for its TLS handshake).
    let holder = tokio::net::TcpStream::connect(("127.0.0.1", server.port()))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The next is closed after the wait, long before the client's own timeout.
    let started = Instant::now();
    let refused = server
        .client()
        .get(server.url("/healthz"))
        .timeout(Duration::from_secs(10))
        .send()
        .await;
    let took = started.elapsed();
    assert!(
        refused.as_ref().is_err_and(|e| !e.is_timeout()),
        "{refused:?}"
    );
    assert!((400..3000).contains(&took.as_millis()), "{took:?}");
    // A slot freed while a connection waits is its: it is served.
    let client = server.client().clone();
    let url = server.url("/healthz");
    let waiting = tokio::spawn(async move {
        client
            .get(url)
            .timeout(Duration::from_secs(10))
            .send()
            .await
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(holder);
    let served = waiting.await.unwrap().unwrap();
    assert_eq!(served.status(), StatusCode::OK);
    let metrics = server.metrics_text().await;
    assert!(
        metrics.contains("\nsgt_connections_refused_total 1\n"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_connection_that_never_finishes_its_handshake_is_closed() {
    let limits = ConnectionLimits {
        handshake_timeout: Duration::from_millis(500),
        ..ConnectionLimits::default()
    };
    let (server, _sink, _dir) = serve_with(Duration::ZERO, limits).await;
    let mut socket = tokio::net::TcpStream::connect(("127.0.0.1", server.port()))
        .await
        .unwrap();
    let started = Instant::now();
    let mut buffer = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_secs(5), socket.read(&mut buffer))
        .await
        .expect("the server closes the connection");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    assert!(started.elapsed() >= Duration::from_millis(400));
}

#[tokio::test]
async fn shutdown_lets_a_request_in_flight_finish_and_store_its_lines() {
    let (server, sink, _dir) =
        serve_with(Duration::from_millis(700), ConnectionLimits::default()).await;
    let key = enroll(&server, "drain").await;
    let client = server.client().clone();
    let url = server.url(paths::LOG);
    let in_flight = tokio::spawn(async move {
        let response = client
            .post(url)
            .json(&log_body(&key, "draining"))
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.json::<Value>().await.unwrap())
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let port = server.port();
    server.stop().await;
    let (status, body) = in_flight.await.unwrap();
    assert_eq!((status, body), (StatusCode::OK, json!({})));
    assert_eq!(sink.inner().records().len(), 1);
    // And the server no longer accepts.
    assert!(tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err());
}

#[tokio::test]
async fn enrolls_past_the_per_address_limit_get_429_and_enroll_no_one() {
    let server = TestServer::start_with_config(
        "enroll_burst_per_address = 3\nenroll_per_minute_per_address = 1\n",
    )
    .await;
    for host in ["a", "b", "c"] {
        enroll(&server, host).await;
    }
    let (status, body) = server
        .post(
            paths::ENROLL,
            &json!({"enroll_secret": server.enroll_secret(), "host_identifier": "d"}),
        )
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("too many enrolls")),
        "{body}"
    );
    assert!(body.get("node_key").is_none());
    let nodes = server.nodes().await;
    assert_eq!(nodes.len(), 3);
}

#[tokio::test]
async fn clones_sharing_a_host_identity_cannot_re_key_each_other_in_a_loop() {
    let server = TestServer::start_with_config(
        "enroll_burst_per_host = 3\nenroll_per_minute_per_host = 1\n",
    )
    .await;
    let uuid = "4C4C4544-0000-1000-8000-000000000001";
    let mut first = Agent::with_uuid(&server, "golden-image", uuid);
    let mut clone = Agent::with_uuid(&server, "golden-image", uuid);
    first.enroll().await;
    clone.enroll().await;
    first.enroll().await;
    // The fourth enroll of one identity within the minute is refused: the node keeps the
    // key the third gave it, and the refused agent keeps retrying with backoff.
    let (status, body) = clone.enroll_with(&server.enroll_secret()).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("host identity enrolled too often")),
        "{body}"
    );
    assert!(body.get("node_key").is_none(), "{body}");
    let (status, config) = first.config().await;
    assert_eq!(status, StatusCode::OK, "{config}");
    assert!(config.get("node_invalid").is_none(), "{config}");
    let nodes = server.nodes().await;
    assert_eq!(nodes.len(), 1);
    // Another host, or the same name with another hardware uuid, is a different identity.
    let mut other = Agent::with_uuid(
        &server,
        "golden-image",
        "4C4C4544-0000-1000-8000-000000000002",
    );
    other.enroll().await;
    Agent::new(&server, "another-host").enroll().await;
    assert_eq!(server.nodes().await.len(), 3);
}

#[tokio::test]
async fn login_failures_lock_out_their_address_not_the_user_elsewhere() {
    let server = TestServer::start().await;
    let password = std::fs::read_to_string(server.data_dir().join("admin_password"))
        .unwrap()
        .trim()
        .to_owned();
    let attempt = |username: &'static str, password: String| {
        let server = &server;
        async move {
            server
                .admin(
                    reqwest::Method::POST,
                    "/api/v1/login",
                    None,
                    Some(json!({"username": username, "password": password})),
                )
                .await
        }
    };
    for _ in 0..10 {
        let (status, body) = attempt("admin", "wrong-password".to_owned()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    }
    let (status, body) = attempt("admin", password.clone()).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["error"]["code"], "rate_limited", "{body}");
    assert!(body.get("token").is_none());
    // Another user name has its own allowance (the address allows 30).
    let (status, body) = attempt("someone-else", "x".to_owned()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    // The attacker's failures do not lock the real user out on another address.
    let elsewhere = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(&std::fs::read(server.ca_file()).unwrap()).unwrap(),
        )
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .build()
        .unwrap();
    let response = elsewhere
        .post(server.url("/api/v1/login"))
        .json(&json!({"username": "admin", "password": password}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert!(body["token"].is_string(), "{body}");
}

/// A TLS connection to `server` offering `alpn`, trusting its CA.
async fn tls_connect(
    server: &TestServer,
    alpn: &[&[u8]],
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_file_iter(server.ca_file()).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", server.port()))
        .await
        .unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(
            rustls::pki_types::ServerName::try_from("localhost").unwrap(),
            tcp,
        )
        .await
        .unwrap()
}

/// Reads (and discards) until the server closes the connection; how long that took.
async fn time_until_closed(stream: &mut (impl tokio::io::AsyncRead + Unpin)) -> Duration {
    let started = Instant::now();
    let mut buffer = [0u8; 4096];
    loop {
        let read = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buffer))
            .await
            .expect("the server closes the connection within 10 s");
        if matches!(read, Ok(0) | Err(_)) {
            return started.elapsed();
        }
    }
}

#[tokio::test]
async fn silent_and_idle_connections_are_closed_whatever_they_speak() {
    use tokio::io::AsyncWriteExt;
    let limits = ConnectionLimits {
        max_connections: 1,
        handshake_timeout: Duration::from_secs(1),
        idle_timeout: Duration::from_secs(2),
        ..ConnectionLimits::default()
    };
    let (server, _sink, _dir) = serve_with(Duration::ZERO, limits).await;

    // A TLS handshake, then nothing: closed after the handshake timeout.
    let mut silent = tls_connect(&server, &[]).await;
    let took = time_until_closed(&mut silent).await;
    assert!((800..3000).contains(&took.as_millis()), "{took:?}");

    // HTTP/2's preface and settings, then no request: closed after the handshake timeout.
    let mut h2 = tls_connect(&server, &[b"h2"]).await;
    h2.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .await
        .unwrap();
    let took = time_until_closed(&mut h2).await;
    assert!((800..3000).contains(&took.as_millis()), "{took:?}");

    // Half a request's headers: closed too.
    let mut half = tls_connect(&server, &[b"http/1.1"]).await;
    half.write_all(b"POST /api/v1/osquery/config HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let took = time_until_closed(&mut half).await;
    assert!(took < Duration::from_secs(4), "{took:?}");

    // HTTP/2 kept alive after a request (reqwest negotiates h2): it holds the only slot
    // until it has been idle for the idle timeout; then a new client is served.
    let response = server
        .client()
        .get(server.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    assert_eq!(response.status(), StatusCode::OK);
    // Until then a new client is refused after the 1 s wait at the cap, and tries again.
    let started = Instant::now();
    let fresh = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(&std::fs::read(server.ca_file()).unwrap()).unwrap(),
        )
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let served = loop {
        match fresh.get(server.url("/healthz")).send().await {
            Ok(served) => break served,
            Err(e) => {
                assert!(!e.is_timeout(), "{e:?}");
                assert!(started.elapsed() < Duration::from_secs(6), "{e:?}");
            }
        }
    };
    assert_eq!(served.status(), StatusCode::OK);
    let waited = started.elapsed();
    assert!(
        (1500..6000).contains(&waited.as_millis()),
        "served after {waited:?}"
    );
}

#[tokio::test]
async fn metrics_are_served_only_to_the_allowed_networks() {
    let server = TestServer::start_with_config("metrics_allow = [\"127.0.0.2/32\"]\n").await;
    let response = server
        .client()
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let body: Value = response.json().await.unwrap();
    assert!(body["error"].is_string(), "{body}");
    let monitoring = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(&std::fs::read(server.ca_file()).unwrap()).unwrap(),
        )
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .build()
        .unwrap();
    let response = monitoring.get(server.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.text().await.unwrap().contains("sgt_"));
    server.stop().await;
}

#[tokio::test]
async fn a_carve_too_slow_to_assemble_within_a_request_is_acknowledged_and_completes() {
    // Joining the archive takes 3 s; requests may take 1 s.
    let secrets_dir = tempfile::tempdir().unwrap();
    let blobs = Arc::new(MemoryBlobStore::with_slow_concat(Duration::from_secs(3)));
    let store = Arc::new(SqliteStore::in_memory().await.unwrap());
    let backends = Backends {
        store: Arc::clone(&store) as Arc<dyn sgt_core::store::Store>,
        secrets: Arc::new(FileSecrets::open(secrets_dir.path().join("secrets.json")).unwrap()),
        log_sink: Arc::new(RecordingLogSink::new()),
        blobs: Arc::clone(&blobs) as Arc<dyn sgt_core::blobs::BlobStore>,
    };
    let limits = ConnectionLimits {
        request_timeout: Duration::from_secs(1),
        ..ConnectionLimits::default()
    };
    let server = TestServer::with_backends_and_limits(backends, limits).await;
    let mut agent = Agent::new(&server, "carver");
    agent.enroll().await;
    let archive = sgt_tests::distinct_bytes(3 * 4096 + 5);
    let started = Instant::now();
    let session = agent.carve(&archive, 4096).await;
    assert!(started.elapsed() >= Duration::from_secs(3), "assembled");
    let id = sgt_core::types::CarveSessionId::parse(session.as_str()).unwrap();
    let stored = sgt_core::blobs::BlobStore::get(
        blobs.as_ref(),
        &sgt_bin::server::services::agent::carve_archive_key(&id),
    )
    .await
    .unwrap();
    assert_eq!(stored, archive);
    server.stop().await;
}

#[tokio::test]
async fn carves_whose_assembly_was_cut_short_are_assembled_by_the_sweep() {
    use sgt_core::store::CarveStatus;
    let (server, _sink, _dir) = serve_with(Duration::ZERO, ConnectionLimits::default()).await;
    // Every block stored and recorded, as before a restart that cut the assembly short.
    let archive = sgt_tests::distinct_bytes(2 * 1000 + 1);
    let session = stored_carve(&server, "restarted", 0, 1000, &archive, 3).await;
    let store = &server.backends().store;
    let sweep = server.service().sweep_carves().await.unwrap();
    assert_eq!((sweep.assembled, sweep.expired), (1, 0));
    let carve = store.carve(&session).await.unwrap();
    assert_eq!(carve.status, CarveStatus::Complete);
    let stored = server
        .backends()
        .blobs
        .get(&sgt_bin::server::services::agent::carve_archive_key(
            &session,
        ))
        .await
        .unwrap();
    assert_eq!(stored, archive);
    // Nothing is left to do on the next sweep.
    assert_eq!(
        server.service().sweep_carves().await.unwrap(),
        Default::default()
    );
    server.stop().await;
}

#[tokio::test]
async fn a_carve_block_from_another_node_is_refused() {
    let (server, _sink, _dir) = serve_with(Duration::ZERO, ConnectionLimits::default()).await;
    let mut owner = Agent::new(&server, "owner");
    owner.enroll().await;
    let mut other = Agent::new(&server, "other");
    other.enroll().await;
    owner.solicit_carve("g", "r").await;
    let (status, started) = owner
        .call(
            paths::CARVE_START,
            json!({"block_count": 1, "block_size": 1024, "carve_size": 10, "carve_id": "g", "request_id": "r"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{started}");
    let session = started["session_id"].as_str().unwrap();
    use base64::Engine;
    let data = base64::engine::general_purpose::STANDARD.encode(b"0123456789");
    // Another node's key (as osquery 5.23+ sends it in the header) on the owner's session.
    let (status, body) = server
        .post_bytes(
            paths::CARVE_CONTINUE,
            &[("authorization", &format!("NodeKey {}", other.node_key))],
            json!({"block_id": 0, "session_id": session, "data": data}).to_string(),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(body["error"].is_string(), "{body}");
    let id = sgt_core::types::CarveSessionId::parse(session).unwrap();
    assert_eq!(
        server
            .backends()
            .store
            .carve(&id)
            .await
            .unwrap()
            .blocks_received,
        0
    );
    // The owner's own key is accepted.
    let (status, body) = server
        .post_bytes(
            paths::CARVE_CONTINUE,
            &[("authorization", &format!("NodeKey {}", owner.node_key))],
            json!({"block_id": 0, "session_id": session, "data": data}).to_string(),
        )
        .await;
    assert_eq!((status, body), (StatusCode::OK, json!({})));
    server.stop().await;
}

#[tokio::test]
async fn abandoned_carves_expire_and_their_blocks_are_deleted() {
    use sgt_core::store::CarveStatus;
    let (server, _sink, _dir) = serve_with(Duration::ZERO, ConnectionLimits::default()).await;
    let store = &server.backends().store;
    // One started a day and a minute ago, one an hour ago; each has one of its two blocks.
    let first_block = vec![7u8; 1024];
    let mut sessions = Vec::new();
    for (host, age) in [
        (
            "gone-quiet",
            sgt_bin::server::services::agent::CARVE_ABANDONED_AFTER_SECONDS + 60,
        ),
        ("still-busy", 3600),
    ] {
        sessions.push(stored_carve(&server, host, age, 1024, &first_block, 2).await);
    }
    let sweep = server.service().sweep_carves().await.unwrap();
    assert_eq!((sweep.assembled, sweep.expired), (0, 1));
    let (old, recent) = (&sessions[0], &sessions[1]);
    assert_eq!(store.carve(old).await.unwrap().status, CarveStatus::Failed);
    let block = sgt_bin::server::services::agent::carve_block_key(old, 0);
    assert!(
        server.backends().blobs.get(&block).await.is_err(),
        "blocks deleted"
    );
    assert_eq!(
        store.carve(recent).await.unwrap().status,
        CarveStatus::Receiving
    );
    let block = sgt_bin::server::services::agent::carve_block_key(recent, 0);
    assert!(server.backends().blobs.get(&block).await.is_ok(), "kept");
    server.stop().await;
}

#[tokio::test]
async fn a_node_uploads_at_most_four_carves_at_once() {
    let (server, _sink, _dir) = serve_with(Duration::ZERO, ConnectionLimits::default()).await;
    let mut agent = Agent::new(&server, "busy");
    agent.enroll().await;
    for i in 0..=sgt_bin::server::services::agent::CARVE_MAX_OPEN_PER_NODE {
        let (guid, request) = (format!("g{i}"), format!("r{i}"));
        agent.solicit_carve(&guid, &request).await;
        let (status, body) = agent
            .call(
                paths::CARVE_START,
                json!({"block_count": 1, "block_size": 1024, "carve_size": 10, "carve_id": guid, "request_id": request}),
            )
            .await;
        if i < sgt_bin::server::services::agent::CARVE_MAX_OPEN_PER_NODE {
            assert_eq!(status, StatusCode::OK, "{i}: {body}");
        } else {
            assert_eq!(status, StatusCode::CONFLICT, "{body}");
            assert!(body["error"].is_string(), "{body}");
        }
    }
    server.stop().await;
}

/// A carve of a newly enrolled agent `host`, written straight to the store and blob store as
/// if its upload had started `age` seconds ago: `blocks_of` cut into `block_size` blocks,
/// each stored and recorded, out of `block_count` announced.
async fn stored_carve(
    server: &TestServer,
    host: &str,
    age: i64,
    block_size: u64,
    blocks_of: &[u8],
    block_count: u64,
) -> sgt_core::types::CarveSessionId {
    let mut agent = Agent::new(server, host);
    agent.enroll().await;
    let node = server
        .nodes()
        .await
        .into_iter()
        .find(|n| n.host_identifier.as_str() == host)
        .unwrap();
    let session = sgt_core::types::CarveSessionId::generate();
    let store = &server.backends().store;
    store
        .create_carve(&sgt_core::store::NewCarve {
            session_id: session.clone(),
            node_id: node.id,
            carve_guid: "g".into(),
            request_id: "r".into(),
            block_count,
            block_size,
            // The whole archive when every block is given, else full blocks.
            carve_size: if blocks_of.len() as u64 > (block_count - 1) * block_size {
                blocks_of.len() as u64
            } else {
                block_count * block_size
            },
            created_at: sgt_core::types::now_unix() - age,
        })
        .await
        .unwrap();
    for (i, block) in blocks_of.chunks(block_size as usize).enumerate() {
        let key = sgt_bin::server::services::agent::carve_block_key(&session, i as u64);
        server
            .backends()
            .blobs
            .put(&key, bytes::Bytes::copy_from_slice(block))
            .await
            .unwrap();
        store.record_carve_block(&session, i as u64).await.unwrap();
    }
    session
}

/// Host details are kept where they are read, not where they cost: the serving cache (up to a
/// million nodes) holds none, a node list page carries only the hostname and osquery
/// version of each row, and one node read by id has them all.
#[tokio::test]
async fn host_details_stay_out_of_the_node_cache_and_list_pages() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    let padding = vec![0; 2000];
    let details = json!({
        "system_info": {"hostname": "big-host", "uuid": "U-1", "padding": padding},
        "osquery_info": {"version": "5.23.1", "padding": padding},
        "os_version": {"name": "Debian", "padding": padding},
        "platform_info": {"vendor": "v"}
    });
    let (status, enrolled) = server
        .post(
            sgt_bin::server::paths::ENROLL,
            &json!({"enroll_secret": server.enroll_secret(), "host_identifier": "big",
                    "platform_type": "9", "host_details": details}),
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::OK, "{enrolled}");
    let key = enrolled["node_key"].as_str().unwrap();

    // Twice: once from the store, once from the cache.
    for _ in 0..2 {
        let node = server.service().authenticate(key).await.unwrap();
        assert_eq!(node.host_details, json!({}));
        assert_eq!(node.platform, "linux");
    }
    let listed = server
        .backends()
        .store
        .list_nodes(&Default::default())
        .await
        .unwrap();
    assert_eq!(
        listed[0].host_details,
        json!({"system_info": {"hostname": "big-host"}, "osquery_info": {"version": "5.23.1"}})
    );
    let (_, page) = server
        .admin(reqwest::Method::GET, "/api/v1/nodes", Some(&admin), None)
        .await;
    assert_eq!(page["items"][0]["hostname"], "big-host");
    assert_eq!(page["items"][0]["osquery_version"], "5.23.1");
    let id = page["items"][0]["id"].as_str().unwrap();
    let (_, one) = server
        .admin(
            reqwest::Method::GET,
            &format!("/api/v1/nodes/{id}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(one["host_details"], details);
    server.stop().await;
}

/// A 2 GiB carve on the embedded default (blocks and archive as files): every block is
/// acknowledged, the archive is assembled in the background, and it downloads byte for
/// byte. The test holds one 16 MiB block at a time, never the archive.
#[tokio::test(flavor = "multi_thread")]
async fn a_two_gib_carve_completes_and_downloads_byte_identical() {
    use futures_util::StreamExt;
    use sha2::{Digest, Sha256};
    const BLOCK: usize = 16 * 1024 * 1024;
    const BLOCKS: usize = 128;
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    let mut agent = Agent::new(&server, "big-carver");
    agent.enroll().await;
    agent
        .solicit_carve(sgt_tests::CARVE_GUID, sgt_tests::CARVE_REQUEST_ID)
        .await;
    let (status, started) = agent
        .call(
            paths::CARVE_START,
            json!({
                "block_count": BLOCKS,
                "block_size": BLOCK,
                "carve_size": BLOCK * BLOCKS,
                "carve_id": sgt_tests::CARVE_GUID,
                "request_id": sgt_tests::CARVE_REQUEST_ID,
            }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{started}");
    let session = started["session_id"].as_str().unwrap().to_owned();
    // Each block is the same distinct bytes stamped with its number, so a block out of
    // place changes the archive's hash.
    let mut block = sgt_tests::distinct_bytes(BLOCK).to_vec();
    let mut sent = Sha256::new();
    for i in 0..BLOCKS {
        block[..8].copy_from_slice(&(i as u64).to_le_bytes());
        sent.update(&block);
        let (status, body) = agent.carve_block(&session, i, &block).await;
        assert_eq!((status, body), (StatusCode::OK, json!({})), "block {i}");
    }
    let sent = hex::encode(sent.finalize());

    let carve_id = sgt_tests::carve_id(&session);
    let deadline = Instant::now() + Duration::from_secs(300);
    let carve = loop {
        let (_, carve) = server
            .admin(
                reqwest::Method::GET,
                &format!("/api/v1/carves/{carve_id}"),
                Some(&admin),
                None,
            )
            .await;
        if carve["status"] != "receiving" && carve["status"] != "assembling" {
            break carve;
        }
        assert!(
            Instant::now() < deadline,
            "not assembled in 5 minutes: {carve}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(carve["status"], "complete", "{carve}");
    assert_eq!(carve["sha256"], sent.as_str());
    let response = server
        .client()
        .get(server.url(&format!("/api/v1/carves/{carve_id}/archive")))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut received = Sha256::new();
    let mut length = 0usize;
    let mut body = response.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.unwrap();
        length += chunk.len();
        received.update(&chunk);
    }
    assert_eq!(length, BLOCK * BLOCKS);
    assert_eq!(hex::encode(received.finalize()), sent);
    server.stop().await;
}

/// Reads from `stream` until `want` has been answered that many times (`{"status":"ok"}`
/// bodies); fails after 5 s.
async fn read_answers(
    stream: &mut tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
    want: usize,
) -> String {
    let mut text = String::new();
    let mut buffer = [0u8; 4096];
    while text.matches(r#"{"status":"ok"}"#).count() < want {
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buffer))
            .await
            .expect("answered within 5 s")
            .unwrap();
        assert!(n > 0, "the server closed the connection after: {text}");
        text.push_str(&String::from_utf8_lossy(&buffer[..n]));
    }
    text
}

#[tokio::test]
async fn a_quiet_kept_alive_connection_serves_whatever_comes_next() {
    use tokio::io::AsyncWriteExt;
    let (server, _sink, _dir) = serve_with(Duration::ZERO, ConnectionLimits::default()).await;
    let request = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    let mut stream = tls_connect(&server, &[b"http/1.1"]).await;
    stream.write_all(request.as_bytes()).await.unwrap();
    read_answers(&mut stream, 1).await;
    // Quiet past the second after which the server sets the connection's HTTP state aside.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stream.write_all(request.as_bytes()).await.unwrap();
    read_answers(&mut stream, 1).await;
    // A request that arrives in pieces across a quiet spell, then two at once.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stream.write_all(&request.as_bytes()[..10]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stream.write_all(&request.as_bytes()[10..]).await.unwrap();
    read_answers(&mut stream, 1).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stream
        .write_all(format!("{request}{request}").as_bytes())
        .await
        .unwrap();
    let both = read_answers(&mut stream, 2).await;
    assert_eq!(both.matches("HTTP/1.1 200 OK").count(), 2, "{both}");
}
