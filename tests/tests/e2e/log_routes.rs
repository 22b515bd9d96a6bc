//! Log routes over TLS: several `[[log_sink]]` destinations at once, each getting the kinds
//! of record it is routed, and a batch acknowledged once every route stored it.

use reqwest::StatusCode;
use serde_json::{json, Value};
use sgt_tests::{Agent, TestServer};

/// The records of the JSON Lines file `name` in `dir`.
fn records(dir: &std::path::Path, name: &str) -> Vec<Value> {
    std::fs::read_to_string(dir.join(name))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test]
async fn every_route_gets_the_kinds_it_takes() {
    let logs = tempfile::tempdir().unwrap();
    let (all, statuses) = (logs.path().join("all"), logs.path().join("statuses"));
    let server = TestServer::start_with_config(&format!(
        "[[log_sink]]\nurl = \"file://{}\"\n\n[[log_sink]]\nurl = \"file://{}\"\nkinds = [\"status\"]\n",
        all.display(),
        statuses.display()
    ))
    .await;
    let mut agent = Agent::new(&server, "routed");
    agent.enroll().await;
    let results = vec![
        json!({"name": "procs", "action": "added", "columns": {"pid": "1"}}),
        json!({"name": "procs", "action": "added", "columns": {"pid": "2"}}),
    ];
    let status =
        vec![json!({"severity": "0", "filename": "x.cpp", "line": "1", "message": "hello"})];
    assert_eq!(
        agent.log("result", results.clone(), false).await,
        (StatusCode::OK, json!({}))
    );
    assert_eq!(
        agent.log("status", status.clone(), true).await,
        (StatusCode::OK, json!({}))
    );
    let lines = |records: Vec<Value>| {
        records
            .into_iter()
            .map(|r| r["line"].clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(lines(records(&all, "result.jsonl")), results);
    assert_eq!(lines(records(&all, "status.jsonl")), status);
    assert_eq!(lines(records(&statuses, "status.jsonl")), status);
    assert!(
        records(&statuses, "result.jsonl").is_empty(),
        "results are not routed there"
    );
    server.stop().await;
}
