//! When a backend fails, the agent gets an error body (never an empty one) so it keeps its data
//! and retries; nothing is acknowledged that was not stored, and the server recovers.

use std::sync::Arc;

use reqwest::StatusCode;
use serde_json::json;
use sgt_core::testkit::doubles::{FaultyLogSink, FaultyStore, MemoryBlobStore, RecordingLogSink};
use sgt_core::Backends;
use sgt_local::{FileSecrets, SqliteStore};
use sgt_tests::{Agent, TestServer};

/// The agent API over TLS on `store` and `sink`, with file secrets in a temporary directory
/// (kept alive by the returned guard) and in-memory blobs.
async fn serve_on(
    store: Arc<dyn sgt_core::store::Store>,
    sink: Arc<dyn sgt_core::log_sink::LogSink>,
) -> (TestServer, tempfile::TempDir) {
    let secrets_dir = tempfile::tempdir().unwrap();
    let backends = Backends {
        store,
        secrets: Arc::new(FileSecrets::open(secrets_dir.path().join("secrets.json")).unwrap()),
        log_sink: sink,
        blobs: Arc::new(MemoryBlobStore::new()),
    };
    (TestServer::with_backends(backends).await, secrets_dir)
}

#[tokio::test]
async fn a_failing_sink_gets_an_error_and_the_resend_is_stored_once() {
    let sink = Arc::new(FaultyLogSink::failing_first(RecordingLogSink::new(), 2));
    let store = Arc::new(SqliteStore::in_memory().await.unwrap());
    let (server, _secrets_dir) = serve_on(store, Arc::clone(&sink) as _).await;
    let mut agent = Agent::new(&server, "h");
    agent.enroll().await;
    let lines: Vec<_> = (0..10)
        .map(|i| json!({"name": "q", "unixTime": i, "columns": {"i": i.to_string()}, "action": "added"}))
        .collect();

    for attempt in 0..2 {
        let (status, body) = agent.log("result", lines.clone(), attempt == 1).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "attempt {attempt}");
        assert!(body["error"].is_string(), "{body}");
        assert!(
            sink.inner().records().is_empty(),
            "nothing stored on failure"
        );
    }
    let (status, body) = agent.log("result", lines.clone(), false).await;
    assert_eq!((status, body), (StatusCode::OK, json!({})));
    let stored: Vec<serde_json::Value> = sink
        .inner()
        .records()
        .iter()
        .map(|r| serde_json::from_str(r).unwrap())
        .collect();
    assert_eq!(stored.len(), lines.len());
    for (record, line) in stored.iter().zip(&lines) {
        assert_eq!(&record["line"], line);
    }
    server.stop().await;
}

#[tokio::test]
async fn a_store_outage_answers_errors_then_recovers() {
    let store = Arc::new(FaultyStore::failing_first(
        Arc::new(SqliteStore::in_memory().await.unwrap()),
        0,
    ));
    let sink = Arc::new(RecordingLogSink::new());
    let (server, _secrets_dir) = serve_on(Arc::clone(&store) as _, Arc::clone(&sink) as _).await;
    let mut agent = Agent::new(&server, "h");
    agent.enroll().await;

    // While the store is down, every endpoint answers 503 with an error, never node_invalid
    // (which would make healthy agents throw away their identity) and never an empty body.
    store.fail_next(1000);
    for (path, body) in [
        (sgt_bin::server::paths::CONFIG, json!({})),
        (sgt_bin::server::paths::DISTRIBUTED_READ, json!({})),
        (
            sgt_bin::server::paths::LOG,
            json!({"log_type": "result", "data": [{"name": "q"}]}),
        ),
    ] {
        let (status, answer) = agent.call(path, body).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{path}: {answer}");
        assert!(answer["error"].is_string(), "{path}: {answer}");
        assert!(answer.get("node_invalid").is_none(), "{path}: {answer}");
    }
    let mut newcomer = Agent::new(&server, "new");
    let (status, answer) = newcomer.enroll_with(&server.enroll_secret()).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{answer}");
    assert!(answer.get("node_key").is_none());
    assert!(
        sink.records().is_empty(),
        "no line acknowledged while the store was down"
    );

    store.fail_next(0);
    assert_eq!(agent.config().await.0, StatusCode::OK);
    assert_eq!(
        agent.log("result", vec![json!({"name": "q"})], false).await,
        (StatusCode::OK, json!({}))
    );
    assert_eq!(sink.records().len(), 1);
    server.stop().await;
}

#[tokio::test]
async fn unchanged_configs_logs_and_empty_reads_make_no_store_call() {
    let store = Arc::new(FaultyStore::failing_first(
        Arc::new(SqliteStore::in_memory().await.unwrap()),
        0,
    ));
    let sink = Arc::new(RecordingLogSink::new());
    let (server, _secrets_dir) = serve_on(Arc::clone(&store) as _, Arc::clone(&sink) as _).await;
    let mut agent = Agent::new(&server, "h");
    agent.enroll().await;
    let (status, first) = agent.config().await;
    assert_eq!(status, StatusCode::OK);
    // What the server's ticker does every second: revoked keys and live campaigns.
    server.service().refresh_cache().await.unwrap();
    let before = store.calls();
    let counted_before = server.service().metrics().store_calls_total();
    for i in 0..20 {
        assert_eq!(agent.config().await, (StatusCode::OK, first.clone()));
        assert_eq!(
            agent.distributed_read().await,
            (StatusCode::OK, json!({"queries": {}}))
        );
        assert_eq!(
            agent
                .log("result", vec![json!({"name": "q", "i": i})], false)
                .await,
            (StatusCode::OK, json!({}))
        );
    }
    assert_eq!(store.calls(), before, "served from memory");
    assert_eq!(sink.records().len(), 20);
    assert_eq!(
        server.service().metrics().store_calls_total(),
        counted_before,
        "the metrics count what the store saw"
    );
    let metrics = server.metrics_text().await;
    for line in [
        "sgt_http_requests_total{endpoint=\"config\",status=\"2xx\"} 21",
        "sgt_http_requests_total{endpoint=\"distributed_read\",status=\"2xx\"} 20",
        "sgt_log_lines_accepted_total 20",
        "sgt_enrolls_total 1",
        "sgt_store_calls_total{operation=\"node_by_key\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} in:\n{metrics}");
    }

    // A campaign for the node: the next read asks the store once and gets it, once; the
    // reads after that are back to memory.
    let node = server.only_node().await;
    let id = server.create_query_for(&node.id, "q1", "SELECT 1;").await;
    let (_, read) = agent.distributed_read().await;
    assert_eq!(read["queries"][id.as_str()], "SELECT 1;");
    let with_campaign = store.calls();
    assert_eq!(agent.distributed_read().await.1, json!({"queries": {}}));
    assert_eq!(agent.distributed_read().await.1, json!({"queries": {}}));
    assert!(
        store.calls() - with_campaign <= 2,
        "a young campaign is re-checked until it settles, never re-delivered"
    );

    // A node deleted behind this instance's back keeps working only until the refresh.
    use sgt_core::store::NodeStore;
    store.delete_node(&node.id).await.unwrap();
    server.service().refresh_cache().await.unwrap();
    assert_eq!(agent.config().await.1, json!({"node_invalid": true}));
    server.stop().await;
}
