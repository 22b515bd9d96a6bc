//! Labels over TLS: a dynamic label's query reaches the agents and their answers decide its
//! members; campaigns and packs aimed at a label reach exactly its members; manual labels do
//! the same by hand.

use reqwest::Method;
use reqwest::StatusCode;
use serde_json::{json, Value};
use sgt_tests::{Agent, TestServer};

const GET: Method = Method::GET;
const PUT: Method = Method::PUT;
const POST: Method = Method::POST;
const DELETE: Method = Method::DELETE;

/// The ids of the members of `label`, as the admin API lists them.
async fn members(server: &TestServer, token: &str, label: &str) -> Vec<String> {
    let (status, page) = server
        .admin(
            GET,
            &format!("/api/v1/nodes?label={label}"),
            Some(token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap().to_owned())
        .collect()
}

/// The node id of the agent enrolled as `host`.
async fn node_id(server: &TestServer, host: &str) -> String {
    server
        .nodes()
        .await
        .into_iter()
        .find(|n| n.host_identifier.as_str() == host)
        .unwrap()
        .id
        .to_string()
}

/// Reads until the agent is handed the query `id` (within 5 s); returns its SQL.
async fn read_until_asked(agent: &Agent<'_>, id: &str) -> String {
    for _ in 0..50 {
        let (status, read) = agent.distributed_read().await;
        assert_eq!(status, StatusCode::OK);
        if let Some(sql) = read["queries"][id].as_str() {
            return sql.to_owned();
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("{id} was never asked");
}

/// The packs in the agent's config, by name.
async fn packs(agent: &Agent<'_>) -> Vec<String> {
    let (status, config) = agent.config().await;
    assert_eq!(status, StatusCode::OK);
    config["packs"]
        .as_object()
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default()
}

/// Creates a campaign aimed at `label`; returns its view.
async fn campaign_for_label(server: &TestServer, token: &str, label: &str) -> Value {
    let (status, created) = server
        .admin(
            POST,
            "/api/v1/queries",
            Some(token),
            Some(json!({"sql": "SELECT 42 AS answer;", "targets": {"labels": [label]}})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    created
}

#[tokio::test]
async fn a_dynamic_label_decides_members_that_campaigns_and_packs_reach() {
    let server =
        TestServer::start_with_config("label_interval_seconds = 1\ndetail_interval_seconds = 0\n")
            .await;
    let admin = server.admin_token().await;
    let sql = "SELECT 1 FROM os_version WHERE name = 'Debian GNU/Linux';";
    let (status, label) = server
        .admin(
            PUT,
            "/api/v1/labels/debian",
            Some(&admin),
            Some(json!({"query": sql, "platform": "linux", "description": "Debian hosts"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{label}");
    assert_eq!(label["query"], sql);
    let mut debian = Agent::new(&server, "debian-1");
    debian.enroll().await;
    let mut other = Agent::new(&server, "fedora-1");
    other.enroll().await;
    server.service().refresh_cache().await.unwrap();

    // Each agent is asked the label's query, and answers it.
    assert_eq!(read_until_asked(&debian, "sgt-label.debian").await, sql);
    assert_eq!(read_until_asked(&other, "sgt-label.debian").await, sql);
    let answer = |rows: Value| json!({"queries": {"sgt-label.debian": rows}, "statuses": {"sgt-label.debian": 0}});
    let (status, body) = debian.distributed_write(answer(json!([{"1": "1"}]))).await;
    assert_eq!((status, body), (StatusCode::OK, json!({})));
    let (status, body) = other.distributed_write(answer(json!([]))).await;
    assert_eq!((status, body), (StatusCode::OK, json!({})));
    let debian_id = node_id(&server, "debian-1").await;
    assert_eq!(
        members(&server, &admin, "debian").await,
        std::slice::from_ref(&debian_id)
    );
    let (_, shown) = server
        .admin(
            GET,
            &format!("/api/v1/nodes/{debian_id}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(shown["labels"], json!(["debian"]));

    // A pack for the label reaches its member only, without its `labels` key.
    let (status, body) = server
        .admin(
            PUT,
            "/api/v1/environments/default/packs/debian-pack",
            Some(&admin),
            Some(json!({"labels": ["debian"], "queries": {"apt": {"query": "SELECT * FROM deb_packages;", "interval": 3600}}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(packs(&debian).await.contains(&"debian-pack".to_owned()));
    assert!(!packs(&other).await.contains(&"debian-pack".to_owned()));
    let (_, config) = debian.config().await;
    assert!(config["packs"]["debian-pack"].get("labels").is_none());

    // A campaign aimed at the label reaches its member only.
    let created = campaign_for_label(&server, &admin, "debian").await;
    assert_eq!(created["targeted"], 1);
    let id = created["id"].as_str().unwrap().to_owned();
    server.service().refresh_cache().await.unwrap();
    let (_, read) = other.distributed_read().await;
    assert!(read["queries"].get(&id).is_none(), "{read}");
    assert_eq!(read_until_asked(&debian, &id).await, "SELECT 42 AS answer;");

    // The host changes: its next answer has no row, and it leaves the label and the pack.
    read_until_asked(&debian, "sgt-label.debian").await;
    debian.distributed_write(answer(json!([]))).await;
    assert!(members(&server, &admin, "debian").await.is_empty());
    assert!(!packs(&debian).await.contains(&"debian-pack".to_owned()));

    // An answer with an error changes nothing; members of a dynamic label are not set by hand.
    read_until_asked(&other, "sgt-label.debian").await;
    other
        .distributed_write(json!({"queries": {"sgt-label.debian": [{"x": 1}]}, "statuses": {"sgt-label.debian": 1}}))
        .await;
    assert!(members(&server, &admin, "debian").await.is_empty());
    let (status, body) = server
        .admin(
            POST,
            "/api/v1/labels/debian/members",
            Some(&admin),
            Some(json!({"add": [debian_id]})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("dynamic"));
    server.stop().await;
}

#[tokio::test]
async fn a_manual_label_does_the_same_by_hand() {
    let server = TestServer::start_with_config("detail_interval_seconds = 0\n").await;
    let admin = server.admin_token().await;
    let mut canary = Agent::new(&server, "canary-1");
    canary.enroll().await;
    let mut other = Agent::new(&server, "web-1");
    other.enroll().await;
    let canary_id = node_id(&server, "canary-1").await;
    let (status, _) = server
        .admin(
            PUT,
            "/api/v1/labels/canary",
            Some(&admin),
            Some(json!({"environment": "default"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    // A pack for a label that does not exist is refused.
    let pack =
        json!({"labels": ["canary"], "queries": {"q": {"query": "SELECT 1;", "interval": 60}}});
    let (status, body) = server
        .admin(
            PUT,
            "/api/v1/environments/default/packs/canary-pack",
            Some(&admin),
            Some(json!({"labels": ["nosuch"], "queries": {}})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, _) = server
        .admin(
            PUT,
            "/api/v1/environments/default/packs/canary-pack",
            Some(&admin),
            Some(pack),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        packs(&canary).await.is_empty()
            || !packs(&canary).await.contains(&"canary-pack".to_owned())
    );

    let (status, changed) = server
        .admin(
            POST,
            "/api/v1/labels/canary/members",
            Some(&admin),
            Some(json!({"add": [canary_id]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(changed, json!({"added": 1, "removed": 0}));
    assert_eq!(
        members(&server, &admin, "canary").await,
        std::slice::from_ref(&canary_id)
    );
    assert!(packs(&canary).await.contains(&"canary-pack".to_owned()));
    assert!(!packs(&other).await.contains(&"canary-pack".to_owned()));
    let created = campaign_for_label(&server, &admin, "canary").await;
    assert_eq!(created["targeted"], 1);
    let id = created["id"].as_str().unwrap().to_owned();
    server.service().refresh_cache().await.unwrap();
    assert!(other.distributed_read().await.1["queries"]
        .get(&id)
        .is_none());
    assert_eq!(read_until_asked(&canary, &id).await, "SELECT 42 AS answer;");

    // Unknown nodes are refused; the label cannot go while a pack is for it.
    let (status, _) = server
        .admin(
            POST,
            "/api/v1/labels/canary/members",
            Some(&admin),
            Some(json!({"add": ["0123456789abcdef"]})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, body) = server
        .admin(DELETE, "/api/v1/labels/canary", Some(&admin), None)
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");

    let (status, changed) = server
        .admin(
            POST,
            "/api/v1/labels/canary/members",
            Some(&admin),
            Some(json!({"remove": [canary_id]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(changed, json!({"added": 0, "removed": 1}));
    assert!(!packs(&canary).await.contains(&"canary-pack".to_owned()));
    let (status, _) = server
        .admin(
            DELETE,
            "/api/v1/environments/default/packs/canary-pack",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = server
        .admin(DELETE, "/api/v1/labels/canary", Some(&admin), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    assert_eq!(
        server.audit_actions(&admin, "label.").await,
        [
            "label.delete",
            "label.members",
            "label.members",
            "label.put"
        ]
    );
    server.stop().await;
}

#[tokio::test]
async fn bad_labels_are_refused_and_change_nothing() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    for (path, body, expected) in [
        ("/api/v1/labels/-bad", json!({}), "label name"),
        (
            "/api/v1/labels/web",
            json!({"platform": "linux"}),
            "dynamic labels only",
        ),
        (
            "/api/v1/labels/web",
            json!({"query": "SELECT 1;", "platform": "beos"}),
            "unknown platform",
        ),
        (
            "/api/v1/labels/web",
            json!({"environment": "nosuch"}),
            "unknown environment",
        ),
        ("/api/v1/labels/web", json!({"query": ""}), "sql must be"),
        ("/api/v1/labels/web", json!({"kind": "manual"}), "a field"),
    ] {
        let (status, answer) = server
            .admin(PUT, path, Some(&admin), Some(body.clone()))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path} {body}: {answer}");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains(expected), "{body}: {message}");
    }
    let (_, labels) = server
        .admin(GET, "/api/v1/labels", Some(&admin), None)
        .await;
    assert_eq!(labels, json!([]));
    let (status, _) = server
        .admin(
            POST,
            "/api/v1/queries",
            Some(&admin),
            Some(json!({"sql": "SELECT 1;", "targets": {"labels": ["nosuch"]}})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = server
        .admin(GET, "/api/v1/labels/nosuch", Some(&admin), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    server.stop().await;
}
