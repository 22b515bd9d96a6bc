//! One agent's whole life over real TLS: enroll, config, logs, a live query, a carve, deletion,
//! `node_invalid`, re-enroll.

use reqwest::StatusCode;
use serde_json::{json, Value};
use sgt_bin::server::paths;
use sgt_bin::server::services::agent::carve_archive_key;
use sgt_core::blobs::BlobKey;
use sgt_core::log_sink::LogType;
use sgt_core::store::{CarveStatus, DeliveryState};
use sgt_core::types::{now_unix, CarveSessionId, NodeKey};
use sgt_tests::{distinct_bytes, sha256_hex, Agent, TestServer};

fn result_lines(host: &str) -> Vec<Value> {
    let common = json!({"hostIdentifier": host, "calendarTime": "Mon Jan  6 10:00:00 2025 UTC", "unixTime": 1736157600, "epoch": 0, "numerics": false});
    let with = |extra: Value| {
        let mut line = common.clone();
        line.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        line
    };
    vec![
        // Differential, event format.
        with(
            json!({"name": "procs", "counter": 3, "columns": {"pid": "42", "name": "sshd"}, "action": "added"}),
        ),
        with(
            json!({"name": "procs", "counter": 3, "columns": {"pid": "41", "name": "cron"}, "action": "removed", "decorations": {"host_uuid": "U"}}),
        ),
        // Differential, batch format.
        with(
            json!({"name": "users", "counter": 0, "diffResults": {"removed": [], "added": [{"uid": "0", "username": "root"}]}}),
        ),
        // Snapshot.
        with(
            json!({"name": "osquery_info", "counter": 0, "snapshot": [{"version": "5.23.1"}], "action": "snapshot"}),
        ),
        // Snapshot as events.
        with(
            json!({"name": "uptime", "counter": 0, "columns": {"total_seconds": "100"}, "action": "snapshot"}),
        ),
    ]
}

fn status_lines(host: &str) -> Vec<Value> {
    vec![
        json!({"hostIdentifier": host, "calendarTime": "Mon Jan  6 10:00:00 2025 UTC", "unixTime": 1736157600, "severity": 0, "filename": "init.cpp", "line": 123, "message": "osqueryd started", "version": "5.23.1"}),
        // Before 5.10 the numbers were strings.
        json!({"hostIdentifier": host, "calendarTime": "Mon Jan  6 10:00:00 2025 UTC", "unixTime": "1736157600", "severity": "1", "filename": "config.cpp", "line": "77", "message": "a warning", "version": "5.9.1"}),
    ]
}

#[tokio::test]
async fn an_agent_lives_its_whole_life_over_tls() {
    let server = TestServer::start().await;
    let mut agent = Agent::new(&server, "web-01.example.com");

    // Enroll.
    agent.enroll().await;
    let node = server
        .backends()
        .store
        .node_by_key(&NodeKey::parse(agent.node_key.clone()).unwrap())
        .await
        .unwrap();
    assert_eq!(node.environment.as_str(), "default");
    assert_eq!(node.host_identifier.as_str(), "web-01.example.com");
    assert_eq!(node.platform_type, "9");
    assert_eq!(node.hardware_uuid, "UUID-web-01.example.com");
    assert_eq!(node.osquery_version(), Some("5.23.1"));

    // Config: the default schedule, byte-identical while unchanged.
    let raw_config = || async {
        server
            .client()
            .post(server.url(paths::CONFIG))
            .body(json!({"node_key": agent.node_key}).to_string())
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
    };
    let first = raw_config().await;
    let second = raw_config().await;
    assert_eq!(first, second);
    let config: Value = serde_json::from_slice(&first).unwrap();
    assert!(config["schedule"]["osquery_info"]["query"].is_string());
    assert!(
        config.get("etag").is_none(),
        "no etag for agents that send none"
    );
    assert!(config.get("error").is_none());

    // Newer agents send an etag: first "" gets the config with its etag, then "ok".
    let (_, with_etag) = agent.call(paths::CONFIG, json!({"etag": ""})).await;
    let etag = with_etag["etag"].as_str().unwrap().to_owned();
    assert_ne!(etag, "ok");
    assert_eq!(with_etag["schedule"], config["schedule"]);
    let (_, unchanged) = agent.call(paths::CONFIG, json!({"etag": etag})).await;
    assert_eq!(unchanged, json!({"etag": "ok"}));

    // The node key may also come in the Authorization header (5.23+), body empty.
    let (status, by_header) = server
        .post_bytes(
            paths::CONFIG,
            &[("authorization", &format!("NodeKey {}", agent.node_key))],
            json!({"node_key": ""}).to_string(),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(by_header, config);

    // Logs: every result shape plain, status lines gzip, both answered {} once durable.
    let results = result_lines(&agent.host_identifier);
    assert_eq!(
        agent.log("result", results.clone(), false).await,
        (StatusCode::OK, json!({}))
    );
    let statuses = status_lines(&agent.host_identifier);
    assert_eq!(
        agent.log("status", statuses.clone(), true).await,
        (StatusCode::OK, json!({}))
    );
    assert_eq!(
        agent.log("result", vec![], false).await,
        (StatusCode::OK, json!({}))
    );
    let stored_results = server.log_records(LogType::Result);
    let stored_statuses = server.log_records(LogType::Status);
    assert_eq!(stored_results.len(), results.len());
    assert_eq!(stored_statuses.len(), statuses.len());
    for (record, line) in stored_results.iter().zip(&results) {
        assert_eq!(&record["line"], line);
        assert_eq!(record["node_id"], node.id.as_str());
        assert_eq!(record["environment"], "default");
        assert_eq!(record["log_type"], "result");
    }
    for (record, line) in stored_statuses.iter().zip(&statuses) {
        assert_eq!(&record["line"], line);
    }

    // A live query: delivered once, answered, stored.
    let (_, nothing) = agent.distributed_read().await;
    assert_eq!(nothing, json!({"queries": {}}));
    let query_id = server
        .create_query_for(&node.id, "q-1", "SELECT version FROM osquery_info;")
        .await;
    let (_, work) = agent.distributed_read().await;
    assert_eq!(
        work,
        json!({"queries": {"q-1": "SELECT version FROM osquery_info;"}})
    );
    let (_, again) = agent.distributed_read().await;
    assert_eq!(again, json!({"queries": {}}), "delivered once only");
    let answer = json!({
        "queries": {"q-1": [{"version": "5.23.1"}]},
        "statuses": {"q-1": 0},
        "messages": {"q-1": ""},
        "stats": {"q-1": {"wall_time_ms": 3, "user_time": 0, "system_time": 1, "memory": 0}},
    });
    assert_eq!(
        agent.distributed_write(answer.clone()).await,
        (StatusCode::OK, json!({}))
    );
    // osquery may resend a request once: the duplicate is harmless.
    assert_eq!(
        agent.distributed_write(answer).await,
        (StatusCode::OK, json!({}))
    );
    let stored = server
        .backends()
        .store
        .query_results(&query_id, None, 0)
        .await
        .unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].node_id, node.id);
    assert_eq!(stored[0].result.rows, vec![json!({"version": "5.23.1"})]);
    assert_eq!(stored[0].result.stats.as_ref().unwrap()["wall_time_ms"], 3);
    let targets = server
        .backends()
        .store
        .query_targets(&query_id)
        .await
        .unwrap();
    assert_eq!(targets[0].state, DeliveryState::Succeeded);

    // A carve of several blocks, reassembled byte-identical; a block sent after it completed
    // is refused with an error body, not taken silently.
    let archive = distinct_bytes(20_000);
    let session = agent.carve(&archive, 8192).await;
    let (status, body) = agent.carve_block(&session, 2, &archive[16384..]).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("complete"),
        "{body}"
    );
    let session_id = CarveSessionId::parse(session).unwrap();
    let carve = server.backends().store.carve(&session_id).await.unwrap();
    assert_eq!(carve.status, CarveStatus::Complete);
    assert_eq!(carve.blocks_received, 3);
    assert_eq!(carve.carve.node_id, node.id);
    assert_eq!(carve.sha256.as_deref(), Some(sha256_hex(&archive).as_str()));
    let stored_archive = server
        .backends()
        .blobs
        .get(&carve_archive_key(&session_id))
        .await
        .unwrap();
    assert_eq!(stored_archive, archive);
    let block_key = BlobKey::parse(format!("carves/{session_id}/block-0")).unwrap();
    assert!(
        server.backends().blobs.get(&block_key).await.is_err(),
        "blocks dropped after assembly"
    );

    // Deleted from the store: the next request gets node_invalid, a JSON boolean.
    server.backends().store.delete_node(&node.id).await.unwrap();
    // Deleted behind the service's back (as another instance would): seen at the refresh.
    server.service().refresh_cache().await.unwrap();
    let (status, invalid) = agent.config().await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(invalid, json!({"node_invalid": true}));
    assert_eq!(
        agent.distributed_read().await.1,
        json!({"node_invalid": true})
    );
    assert_eq!(
        agent.log("status", status_lines("x"), false).await.1,
        json!({"node_invalid": true})
    );

    // Re-enroll works and the new key is served.
    let old_key = agent.node_key.clone();
    agent.enroll().await;
    assert_ne!(agent.node_key, old_key);
    let (status, config_again) = agent.config().await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(config_again, config);

    server.stop().await;
}

#[tokio::test]
async fn re_enrolling_the_same_host_rekeys_it() {
    let server = TestServer::start().await;
    let mut agent = Agent::new(&server, "laptop-7");
    agent.enroll().await;
    let first_key = agent.node_key.clone();
    agent.enroll().await;
    assert_ne!(agent.node_key, first_key);
    let mut old = Agent::new(&server, "laptop-7");
    old.node_key = first_key;
    assert_eq!(old.config().await.1, json!({"node_invalid": true}));
    assert_eq!(agent.config().await.0, StatusCode::OK);
    let nodes = server.nodes().await;
    assert_eq!(nodes.len(), 1, "one host, one node");
    server.stop().await;
}

#[tokio::test]
async fn last_seen_is_written_in_batches() {
    let server = TestServer::start().await;
    let mut agent = Agent::new(&server, "h");
    agent.enroll().await;
    let key = NodeKey::parse(agent.node_key.clone()).unwrap();
    let store = &server.backends().store;
    let node = store.node_by_key(&key).await.unwrap();
    // Pretend the node was last seen long ago, then let it make a request.
    let long_ago = now_unix() - 3600;
    sqlite_set_last_seen(&server, &node.id, long_ago).await;
    assert_eq!(agent.distributed_read().await.0, StatusCode::OK);
    assert_eq!(
        store.node_by_key(&key).await.unwrap().last_seen,
        long_ago,
        "not written per request"
    );
    assert_eq!(server.service().flush_last_seen().await.unwrap(), 1);
    assert!(store.node_by_key(&key).await.unwrap().last_seen >= now_unix() - 5);
    server.stop().await;
}

/// Moves a node's last_seen back in time through the SQLite file itself.
async fn sqlite_set_last_seen(server: &TestServer, node: &sgt_core::types::NodeId, at: i64) {
    use sqlx::Connection;
    let url = format!("sqlite://{}", server.data_dir().join("sgt.db").display());
    let mut db = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::query("UPDATE nodes SET last_seen = ? WHERE id = ?")
        .bind(at)
        .bind(node.as_str())
        .execute(&mut db)
        .await
        .unwrap();
    db.close().await.unwrap();
}

#[tokio::test]
async fn a_secret_whose_environment_is_gone_enrolls_no_one() {
    let server = TestServer::start().await;
    server
        .backends()
        .store
        .delete_environment(&sgt_core::types::EnvironmentName::default_name())
        .await
        .unwrap();
    let mut agent = Agent::new(&server, "h");
    let secret = server.enroll_secret();
    let (status, body) = agent.enroll_with(&secret).await;
    assert_eq!(
        (status, body),
        (StatusCode::UNAUTHORIZED, json!({"node_invalid": true}))
    );
    assert!(server
        .backends()
        .store
        .list_nodes(&Default::default())
        .await
        .unwrap()
        .is_empty());
    server.stop().await;
}

/// A Fleet flag file names the carve endpoints `/carve/begin` and `/carve/block`: an agent
/// using them carves exactly as through sgt's own names.
#[tokio::test]
async fn fleet_carve_paths_carve_like_sgts_own() {
    let server = TestServer::start().await;
    let mut agent = Agent::new(&server, "from-fleet");
    agent.enroll().await;
    let archive = distinct_bytes(10_000);
    let session = agent
        .carve_at(
            (paths::FLEET_CARVE_START, paths::FLEET_CARVE_CONTINUE),
            &archive,
            4096,
        )
        .await;
    let session_id = CarveSessionId::parse(session).unwrap();
    let carve = server.backends().store.carve(&session_id).await.unwrap();
    assert_eq!(carve.status, CarveStatus::Complete);
    assert_eq!(carve.sha256.as_deref(), Some(sha256_hex(&archive).as_str()));
    let stored = server
        .backends()
        .blobs
        .get(&carve_archive_key(&session_id))
        .await
        .unwrap();
    assert_eq!(stored, archive);
    // Counted under the carve endpoints, not as unknown paths.
    let metrics = server.metrics_text().await;
    for counted in [
        "sgt_http_requests_total{endpoint=\"carve_start\",status=\"2xx\"} 1",
        "sgt_http_requests_total{endpoint=\"carve_continue\",status=\"2xx\"} 3",
    ] {
        assert!(
            metrics.lines().any(|l| l == counted),
            "{counted}: {metrics}"
        );
    }
    server.stop().await;
}

/// With `node_expiry_days`, a node silent for longer is removed by the sweep (audited as the
/// server's own action); its agent gets `node_invalid`, enrolls again and is back. A node
/// seen meanwhile stays.
#[tokio::test]
async fn silent_nodes_expire_and_come_back_by_enrolling_again() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    let (status, body) = server
        .admin(
            reqwest::Method::PUT,
            "/api/v1/environments/default/settings",
            Some(&admin),
            Some(json!({"node_expiry_days": 1})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["settings"]["node_expiry_days"], 1);
    let mut silent = Agent::new(&server, "silent");
    silent.enroll().await;
    let mut active = Agent::new(&server, "active");
    active.enroll().await;
    let nodes = server.nodes().await;
    let id_of = |host: &str| {
        nodes
            .iter()
            .find(|n| n.host_identifier.as_str() == host)
            .unwrap()
            .id
            .clone()
    };
    let (silent_id, active_id) = (id_of("silent"), id_of("active"));
    // A day and a bit later, as the sweep sees it; the active node was seen since.
    let later = now_unix() + 86_400 + 120;
    server
        .backends()
        .store
        .record_last_seen(&[(active_id.clone(), later - 60)])
        .await
        .unwrap();
    let sweep = server.admin_service().expire_nodes(later).await.unwrap();
    assert_eq!(sweep.expired, 1);
    let left: Vec<_> = server.nodes().await.into_iter().map(|n| n.id).collect();
    assert_eq!(left, std::slice::from_ref(&active_id));
    assert_eq!(active.config().await.0, StatusCode::OK);

    let (_, log) = server
        .admin(
            reqwest::Method::GET,
            "/api/v1/audit?action=node.expire",
            Some(&admin),
            None,
        )
        .await;
    let entry = &log["items"][0];
    assert_eq!(entry["actor"], "(sgt)");
    assert_eq!(entry["target"], "default");
    assert_eq!(entry["detail"]["expired"], 1);
    assert_eq!(entry["detail"]["node_ids"][0], silent_id.as_str());

    // The expired agent is told to enroll again, and does.
    let (_, answer) = silent.config().await;
    assert_eq!(answer, json!({"node_invalid": true}));
    silent.enroll().await;
    assert_eq!(silent.config().await.0, StatusCode::OK);
    let hosts: Vec<String> = server
        .nodes()
        .await
        .into_iter()
        .map(|n| n.host_identifier.to_string())
        .collect();
    assert_eq!(hosts.len(), 2);
    assert!(hosts.contains(&"silent".to_owned()), "{hosts:?}");
    // A sweep today finds nothing to remove.
    assert_eq!(
        server
            .admin_service()
            .expire_nodes(now_unix())
            .await
            .unwrap()
            .expired,
        0
    );
    server.stop().await;
}

/// Every detail interval (1 s here) a node's distributed read carries the detail queries;
/// its answers replace its version, system, OS and addresses in the host details the admin
/// API shows, without a re-enroll.
#[tokio::test]
async fn detail_queries_keep_host_details_current() {
    let server = TestServer::start_with_config("detail_interval_seconds = 1\n").await;
    let admin = server.admin_token().await;
    let mut agent = Agent::new(&server, "upgraded");
    agent.enroll().await;
    let node_id = server.only_node().await.id.to_string();
    let path = format!("/api/v1/nodes/{node_id}");
    let (_, before) = server
        .admin(reqwest::Method::GET, &path, Some(&admin), None)
        .await;
    assert_eq!(before["osquery_version"], "5.23.1");

    let mut asked = None;
    for _ in 0..50 {
        let (status, read) = agent.distributed_read().await;
        assert_eq!(status, StatusCode::OK);
        if let Some(queries) = read["queries"].as_object().filter(|q| !q.is_empty()) {
            asked = Some(queries.clone());
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let asked = asked.expect("detail queries within the interval");
    let ids: Vec<&str> = asked.keys().map(String::as_str).collect();
    assert_eq!(
        ids,
        [
            "sgt-details.interface_addresses",
            "sgt-details.os_version",
            "sgt-details.osquery_info",
            "sgt-details.system_info"
        ]
    );
    assert_eq!(
        asked["sgt-details.osquery_info"],
        "SELECT * FROM osquery_info;"
    );
    let (status, body) = agent
        .distributed_write(json!({
            "queries": {
                "sgt-details.osquery_info": [{"version": "5.99.0", "build_platform": "ubuntu"}],
                "sgt-details.system_info": [{"hostname": "renamed-host", "uuid": "uuid-upgraded"}],
                "sgt-details.os_version": [{"name": "Ubuntu", "version": "24.04"}],
                "sgt-details.interface_addresses": [{"interface": "eth0", "address": "10.1.2.3", "mask": "255.255.0.0"}],
            },
            "statuses": {
                "sgt-details.osquery_info": 0,
                "sgt-details.system_info": 0,
                "sgt-details.os_version": 0,
                "sgt-details.interface_addresses": 0,
            },
        }))
        .await;
    assert_eq!((status, body), (StatusCode::OK, json!({})));
    let (_, after) = server
        .admin(reqwest::Method::GET, &path, Some(&admin), None)
        .await;
    assert_eq!(after["osquery_version"], "5.99.0");
    assert_eq!(after["hostname"], "renamed-host");
    assert_eq!(after["host_details"]["os_version"]["version"], "24.04");
    assert_eq!(
        after["host_details"]["interface_addresses"][0]["address"],
        "10.1.2.3"
    );
    // Not a campaign: nothing of it is listed as a live query.
    let (_, queries) = server
        .admin(reqwest::Method::GET, "/api/v1/queries", Some(&admin), None)
        .await;
    assert_eq!(queries["items"], json!([]));
    // And asked again only after another interval.
    let (_, read) = agent.distributed_read().await;
    assert_eq!(read, json!({"queries": {}}));
    server.stop().await;
}
