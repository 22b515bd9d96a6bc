//! Connection and request limits: shedding past the in-flight limit, the request timeout, the
//! connection cap, the TLS handshake timeout, and draining requests in flight at shutdown.
//! Every refusal is a JSON body with an `error` member, so osquery keeps its data.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};
use sgt_core::agent::Backends;
use sgt_core::http::{paths, ConnectionLimits};
use sgt_core::log_sink::LogSink;
use sgt_core::testkit::doubles::{FaultyLogSink, MemoryBlobStore, RecordingLogSink};
use sgt_local::{FileSecrets, SqliteStore};
use sgt_tests::TestServer;
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
    let secrets_dir = tempfile::tempdir().unwrap();
    let sink = Arc::new(FaultyLogSink::slow(RecordingLogSink::new(), sink_delay));
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
async fn at_the_connection_cap_new_connections_wait_for_a_free_slot() {
    let limits = ConnectionLimits {
        max_connections: 1,
        ..ConnectionLimits::default()
    };
    let (server, _sink, _dir) = serve_with(Duration::ZERO, limits).await;
    // A bare TCP connection takes the only slot (the server waits for its TLS handshake).
    let holder = tokio::net::TcpStream::connect(("127.0.0.1", server.port()))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let waiting = server
        .client()
        .get(server.url("/healthz"))
        .timeout(Duration::from_millis(700))
        .send()
        .await;
    assert!(
        waiting.as_ref().is_err_and(|e| e.is_timeout()),
        "{waiting:?}"
    );
    // Once it closes, the slot is free and the next connection is served.
    drop(holder);
    let served = server
        .client()
        .get(server.url("/healthz"))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .unwrap();
    assert_eq!(served.status(), StatusCode::OK);
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
async fn login_attempts_past_the_per_user_limit_get_429_even_with_the_right_password() {
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
}
