//! Enrollment approval over TLS: a node enrolling into an environment that approves
//! enrollments gets its key and a minimal config, no live queries, no carves, and its logs
//! are refused with an error body (so osquery keeps them) until an operator approves it.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sgt_core::log_sink::LogType;
use sgt_tests::{Agent, TestServer};

fn lines(host: &str, count: usize) -> Vec<Value> {
    (0..count)
        .map(|i| json!({"name": "pending_buffer", "hostIdentifier": host, "unixTime": 1736157600 + i, "action": "added", "columns": {"i": i.to_string()}}))
        .collect()
}

#[tokio::test]
async fn a_pending_node_gets_nothing_until_approved_and_loses_no_log_line() {
    let server =
        TestServer::start_with_config("detail_interval_seconds = 1\nlabel_interval_seconds = 1\n")
            .await;
    let admin = server.admin_token().await;
    let (status, settings) = server
        .admin(
            Method::PUT,
            "/api/v1/environments/default/settings",
            Some(&admin),
            Some(json!({"enroll_approval": true})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{settings}");
    let mut agent = Agent::new(&server, "new-host");
    agent.enroll().await;
    let node = server.only_node().await;
    assert!(node.pending);

    // A minimal config: the options only.
    let (status, config) = agent.config().await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        config.get("schedule").is_none() && config.get("packs").is_none(),
        "{config}"
    );
    assert!(config["options"].is_object(), "{config}");
    // No campaign, no detail query, even aimed at it by id.
    let id = server.create_query_for(&node.id, "q1", "SELECT 1;").await;
    for _ in 0..12 {
        assert_eq!(agent.distributed_read().await.1, json!({"queries": {}}));
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // Logs refused with an error body: osquery keeps them buffered.
    let buffered = lines("new-host", 5);
    let (status, body) = agent.log("result", buffered.clone(), false).await;
    assert_ne!(body, json!({}), "{status}");
    assert!(
        body["error"].as_str().unwrap().contains("approval"),
        "{body}"
    );
    let (_, body) = agent
        .log(
            "status",
            vec![json!({"severity": "0", "message": "m"})],
            false,
        )
        .await;
    assert!(body.get("error").is_some(), "{body}");
    assert!(server.log_records(LogType::Result).is_empty());
    // Listed as pending.
    let (_, pending) = server
        .admin(
            Method::GET,
            "/api/v1/nodes?pending=true",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(pending["items"][0]["id"], node.id.as_str());
    assert_eq!(pending["items"][0]["pending"], true);

    let (status, approved) = server
        .admin(
            Method::POST,
            &format!("/api/v1/nodes/{}/approve", node.id),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{approved}");
    assert_eq!(approved["pending"], false);

    // Now the full config, the campaign, and the buffered lines, all of them.
    let (_, config) = agent.config().await;
    assert!(config["schedule"].is_object(), "{config}");
    let mut delivered = false;
    for _ in 0..20 {
        let (_, read) = agent.distributed_read().await;
        if read["queries"].get(id.as_str()).is_some() {
            delivered = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(delivered, "the campaign reaches the approved node");
    assert_eq!(
        agent.log("result", buffered.clone(), false).await,
        (StatusCode::OK, json!({}))
    );
    let stored = server.log_records(LogType::Result);
    assert_eq!(stored.len(), buffered.len());
    for (record, sent) in stored.iter().zip(&buffered) {
        assert_eq!(&record["line"], sent);
    }

    // A node enrolling again keeps its approval; rejecting takes an approved node nowhere.
    agent.enroll().await;
    assert!(!server.only_node().await.pending);
    let (status, _) = server
        .admin(
            Method::POST,
            &format!("/api/v1/nodes/{}/reject", node.id),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);

    // Another host is rejected: deleted, its key refused.
    let mut other = Agent::new(&server, "unwanted");
    other.enroll().await;
    let unwanted = server
        .nodes()
        .await
        .into_iter()
        .find(|n| n.host_identifier.as_str() == "unwanted")
        .unwrap();
    assert!(unwanted.pending);
    let (status, _) = server
        .admin(
            Method::POST,
            &format!("/api/v1/nodes/{}/reject", unwanted.id),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(other.config().await.1, json!({"node_invalid": true}));
    assert_eq!(
        server.audit_actions(&admin, "node.").await,
        ["node.reject", "node.approve"]
    );
    server.stop().await;
}
