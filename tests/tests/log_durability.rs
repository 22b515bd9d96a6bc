//! The log endpoint answers success only once the lines are durable; when the sink fails the
//! agent gets an error body (never an empty one), keeps its lines, and its resend is stored.

use std::sync::Arc;

use reqwest::StatusCode;
use serde_json::json;
use sgt_core::service::Backends;
use sgt_core::testkit::doubles::{FaultyLogSink, MemoryBlobStore, RecordingLogSink};
use sgt_local::{FileSecrets, SqliteStore};
use sgt_tests::{Agent, TestServer};

#[tokio::test]
async fn a_failing_sink_gets_an_error_and_the_resend_is_stored_once() {
    let secrets_dir = tempfile::tempdir().unwrap();
    let sink = Arc::new(FaultyLogSink::failing_first(RecordingLogSink::new(), 2));
    let backends = Backends {
        store: Arc::new(SqliteStore::in_memory().await.unwrap()),
        secrets: Arc::new(FileSecrets::open(secrets_dir.path().join("secrets.json")).unwrap()),
        log_sink: Arc::clone(&sink) as _,
        blobs: Arc::new(MemoryBlobStore::new()),
    };
    let server = TestServer::with_backends(backends).await;
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
