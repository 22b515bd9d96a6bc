//! The admin API over TLS: campaigns, roles, secret rotation, config and packs, nodes, carves,
//! the audit log, and the OpenAPI document checked against the live router.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sgt_core::types::now_unix;
use sgt_tests::{distinct_bytes, Agent, TestServer};

const GET: Method = Method::GET;
const POST: Method = Method::POST;
const PUT: Method = Method::PUT;
const DELETE: Method = Method::DELETE;

async fn create_env_with_secret(server: &TestServer, admin: &str, name: &str) -> String {
    let (status, body) = server
        .admin(
            POST,
            "/api/v1/environments",
            Some(admin),
            Some(json!({"name": name})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, secret) = server
        .admin(
            POST,
            &format!("/api/v1/environments/{name}/secrets"),
            Some(admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{secret}");
    secret["secret"].as_str().unwrap().to_owned()
}

async fn create_user(server: &TestServer, admin: &str, name: &str, role: &str) -> String {
    let password = format!("{name}-password-123");
    let (status, body) = server
        .admin(
            POST,
            "/api/v1/users",
            Some(admin),
            Some(json!({"username": name, "role": role, "password": password})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert!(body.get("password_hash").is_none());
    server.login(name, &password).await
}

async fn enrolled<'a>(server: &'a TestServer, host: &str, secret: &str) -> Agent<'a> {
    let mut agent = Agent::new(server, host);
    let (status, body) = agent.enroll_with(secret).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    agent
}

#[tokio::test]
async fn a_campaign_reaches_only_its_environment_once_including_later_enrollees() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    let prod = create_env_with_secret(&server, &admin, "prod").await;
    let dev = create_env_with_secret(&server, &admin, "dev").await;
    let operator = create_user(&server, &admin, "olivia", "operator").await;

    let prod_a = enrolled(&server, "prod-a", &prod).await;
    let prod_b = enrolled(&server, "prod-b", &prod).await;
    let dev_a = enrolled(&server, "dev-a", &dev).await;

    let (status, campaign) = server
        .admin(
            POST,
            "/api/v1/queries",
            Some(&operator),
            Some(json!({"sql": "SELECT version FROM osquery_info;", "targets": {"environments": ["prod"]}})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{campaign}");
    assert_eq!(campaign["targeted"], 2);
    assert_eq!(campaign["created_by"], "olivia");
    let id = campaign["id"].as_str().unwrap().to_owned();

    // A prod host enrolling after the campaign was made gets it too.
    let prod_late = enrolled(&server, "prod-late", &prod).await;

    for agent in [&prod_a, &prod_b, &prod_late] {
        let (_, read) = agent.distributed_read().await;
        assert_eq!(
            read["queries"][&id], "SELECT version FROM osquery_info;",
            "{}",
            agent.host_identifier
        );
        let (_, again) = agent.distributed_read().await;
        assert_eq!(
            again,
            json!({"queries": {}}),
            "delivered once to {}",
            agent.host_identifier
        );
    }
    assert_eq!(dev_a.distributed_read().await.1, json!({"queries": {}}));

    for agent in [&prod_a, &prod_b, &prod_late] {
        let answer = json!({"queries": {&id: [{"version": format!("5.23.1-{}", agent.host_identifier)}]}, "statuses": {&id: 0}});
        assert_eq!(agent.distributed_write(answer).await.0, StatusCode::OK);
    }
    // The dev host answering a query it never got is ignored.
    let stray = json!({"queries": {&id: [{"version": "x"}]}, "statuses": {&id: 0}});
    assert_eq!(dev_a.distributed_write(stray).await.0, StatusCode::OK);

    let (status, shown) = server
        .admin(GET, &format!("/api/v1/queries/{id}"), Some(&operator), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (shown["targeted"].clone(), shown["succeeded"].clone()),
        (json!(3), json!(3))
    );

    // Results, paginated, each with the host it came from.
    let mut hosts = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/queries/{id}/results?limit=2&cursor={c}"),
            None => format!("/api/v1/queries/{id}/results?limit=2"),
        };
        let (status, page) = server.admin(GET, &path, Some(&operator), None).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        for item in page["items"].as_array().unwrap() {
            let host = item["host_identifier"].as_str().unwrap().to_owned();
            assert_eq!(item["rows"][0]["version"], format!("5.23.1-{host}"));
            hosts.push(host);
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    hosts.sort();
    assert_eq!(hosts, ["prod-a", "prod-b", "prod-late"]);

    let (_, targets) = server
        .admin(
            GET,
            &format!("/api/v1/queries/{id}/targets"),
            Some(&operator),
            None,
        )
        .await;
    assert!(targets
        .as_array()
        .unwrap()
        .iter()
        .all(|t| t["state"] == "succeeded"));

    // Cancelled: a prod host enrolling now does not get it.
    let (status, _) = server
        .admin(
            POST,
            &format!("/api/v1/queries/{id}/cancel"),
            Some(&operator),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let after_cancel = enrolled(&server, "prod-after-cancel", &prod).await;
    assert_eq!(
        after_cancel.distributed_read().await.1,
        json!({"queries": {}})
    );
    server.stop().await;
}

/// The documented route (path with `{params}`) that a concrete admin path is served by.
fn route_of(path: &str) -> &'static str {
    let segments: Vec<&str> = path.split('/').collect();
    sgt_bin::server::admin_api::documented_routes()
        .iter()
        .map(|route| route.path)
        .filter(|route| {
            let parts: Vec<&str> = route.split('/').collect();
            parts.len() == segments.len()
                && parts
                    .iter()
                    .zip(&segments)
                    .all(|(part, segment)| part.starts_with('{') || part == segment)
        })
        // A literal segment beats a parameter: `/queries/{id}/cancel` over nothing shorter.
        .max_by_key(|route| route.split('/').filter(|p| !p.starts_with('{')).count())
        .unwrap_or_else(|| panic!("{path} is no documented route"))
}

#[tokio::test]
async fn roles_are_enforced_on_every_route() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    create_env_with_secret(&server, &admin, "prod").await;
    let viewer = create_user(&server, &admin, "vic", "viewer").await;
    let operator = create_user(&server, &admin, "otto", "operator").await;
    let mut agent = Agent::new(&server, "h1");
    agent.enroll().await;
    let node_id = server.only_node().await.id.to_string();

    let writes: Vec<(Method, String, Option<Value>)> = vec![
        (
            POST,
            "/api/v1/environments".into(),
            Some(json!({"name": "x"})),
        ),
        (DELETE, "/api/v1/environments/prod".into(), None),
        (
            PUT,
            "/api/v1/environments/prod/settings".into(),
            Some(json!({"node_expiry_days": 7})),
        ),
        (
            PUT,
            "/api/v1/environments/prod/config".into(),
            Some(json!({"options": {}})),
        ),
        (
            PUT,
            "/api/v1/environments/prod/packs/p".into(),
            Some(json!({"queries": {}})),
        ),
        (DELETE, "/api/v1/environments/prod/packs/p".into(), None),
        (POST, "/api/v1/environments/prod/secrets".into(), None),
        (DELETE, "/api/v1/environments/prod/secrets/any".into(), None),
        (DELETE, format!("/api/v1/nodes/{node_id}"), None),
        (POST, format!("/api/v1/nodes/{node_id}/approve"), None),
        (POST, format!("/api/v1/nodes/{node_id}/reject"), None),
        (
            POST,
            "/api/v1/queries".into(),
            Some(json!({"sql": "SELECT 1;", "targets": {"all": true}})),
        ),
        (POST, "/api/v1/queries/any/cancel".into(), None),
        (
            PUT,
            "/api/v1/saved-queries/uptime".into(),
            Some(json!({"sql": "SELECT * FROM uptime;"})),
        ),
        (DELETE, "/api/v1/saved-queries/uptime".into(), None),
        (PUT, "/api/v1/labels/web".into(), Some(json!({}))),
        (DELETE, "/api/v1/labels/web".into(), None),
        (
            POST,
            "/api/v1/labels/web/members".into(),
            Some(json!({"add": [node_id]})),
        ),
        (
            POST,
            "/api/v1/carves".into(),
            Some(json!({"node_id": node_id, "path": "/etc/hosts"})),
        ),
        (
            POST,
            "/api/v1/users".into(),
            Some(json!({"username": "x", "role": "admin", "password": "long-enough-pw"})),
        ),
        (
            Method::PATCH,
            "/api/v1/users/otto".into(),
            Some(json!({"role": "admin"})),
        ),
        (DELETE, "/api/v1/users/otto".into(), None),
        (POST, "/api/v1/tokens".into(), Some(json!({"name": "ci"}))),
    ];
    // The list is every documented route that changes something and is not open to every
    // user (revoking one's own token is), so a new one cannot be left out of this test.
    let mut tried: Vec<(String, &str)> = writes
        .iter()
        .map(|(method, path, _)| (method.as_str().to_lowercase(), route_of(path)))
        .collect();
    tried.sort();
    let mut documented: Vec<(String, &str)> = sgt_bin::server::admin_api::documented_routes()
        .iter()
        .filter(|route| route.method != "get")
        .filter(|route| route.role != "anyone" && route.role != "viewer")
        .map(|route| (route.method.to_string(), route.path))
        .collect();
    documented.sort();
    assert_eq!(tried, documented);
    for (method, path, body) in &writes {
        let (status, answer) = server
            .admin(method.clone(), path, Some(&viewer), body.clone())
            .await;
        assert_eq!(
            status,
            StatusCode::FORBIDDEN,
            "viewer {method} {path}: {answer}"
        );
        assert_eq!(answer["error"]["code"], "forbidden");
        let (status, answer) = server.admin(method.clone(), path, None, body.clone()).await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "anonymous {method} {path}: {answer}"
        );
        assert_eq!(answer["error"]["code"], "unauthorized");
    }
    // Admin-only writes are refused to operators too.
    for (method, path, body) in &writes[..3] {
        let (status, _) = server
            .admin(method.clone(), path, Some(&operator), body.clone())
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "operator {method} {path}");
    }
    // Nothing changed.
    assert_eq!(
        server
            .backends()
            .store
            .list_environments()
            .await
            .unwrap()
            .len(),
        2
    );
    assert_eq!(agent.config().await.0, StatusCode::OK);

    // Viewers read everything.
    for path in [
        "/api/v1/environments",
        "/api/v1/nodes",
        "/api/v1/queries",
        "/api/v1/saved-queries",
        "/api/v1/labels",
        "/api/v1/carves",
        "/api/v1/users",
        "/api/v1/audit",
        "/api/v1/environments/prod/config",
        "/api/v1/environments/prod/secrets",
    ] {
        let (status, answer) = server.admin(GET, path, Some(&viewer), None).await;
        assert_eq!(status, StatusCode::OK, "viewer GET {path}: {answer}");
        let (status, _) = server.admin(GET, path, None, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "anonymous GET {path}");
    }

    // An API token works until revoked, then at once it does not.
    let (status, created) = server
        .admin(
            POST,
            "/api/v1/tokens",
            Some(&operator),
            Some(json!({"name": "ci", "expires_in_days": 30})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let api_token = created["token"].as_str().unwrap().to_owned();
    assert_eq!(
        server
            .admin(GET, "/api/v1/me", Some(&api_token), None)
            .await
            .1["username"],
        "otto"
    );
    let (_, listed) = server
        .admin(GET, "/api/v1/tokens", Some(&operator), None)
        .await;
    assert!(listed
        .as_array()
        .unwrap()
        .iter()
        .all(|t| t.get("token").is_none() && t.get("token_hash").is_none()));
    let token_id = created["id"].as_str().unwrap();
    let (status, _) = server
        .admin(
            DELETE,
            &format!("/api/v1/tokens/{token_id}"),
            Some(&operator),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = server
        .admin(GET, "/api/v1/me", Some(&api_token), None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // A deleted user's session stops working at once.
    let (status, _) = server
        .admin(DELETE, "/api/v1/users/vic", Some(&admin), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        server.admin(GET, "/api/v1/me", Some(&viewer), None).await.0,
        StatusCode::UNAUTHORIZED
    );

    // Wrong passwords and unknown users get the same answer.
    let (s1, b1) = server
        .admin(
            POST,
            "/api/v1/login",
            None,
            Some(json!({"username": "otto", "password": "wrong-password"})),
        )
        .await;
    let (s2, b2) = server
        .admin(
            POST,
            "/api/v1/login",
            None,
            Some(json!({"username": "nobody", "password": "wrong-password"})),
        )
        .await;
    assert_eq!((s1, &b1), (s2, &b2));
    assert_eq!(s1, StatusCode::UNAUTHORIZED);
    // The last admin cannot be removed.
    let (status, body) = server
        .admin(DELETE, "/api/v1/users/admin", Some(&admin), None)
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    server.stop().await;
}

#[tokio::test]
async fn secrets_rotate_without_downtime() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    let old = create_env_with_secret(&server, &admin, "prod").await;
    let (_, listed) = server
        .admin(GET, "/api/v1/environments/prod/secrets", Some(&admin), None)
        .await;
    let old_id = listed[0]["id"].as_str().unwrap().to_owned();
    assert!(listed[0].get("secret").is_none(), "values are never listed");

    let early = enrolled(&server, "early", &old).await;
    let (status, new) = server
        .admin(
            POST,
            "/api/v1/environments/prod/secrets",
            Some(&admin),
            Some(json!({"expires_in_days": 365})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let new = new["secret"].as_str().unwrap().to_owned();
    // Both secrets enroll while they overlap.
    let with_new = enrolled(&server, "with-new", &new).await;
    let with_old = enrolled(&server, "with-old", &old).await;

    let (status, _) = server
        .admin(
            DELETE,
            &format!("/api/v1/environments/prod/secrets/{old_id}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    // Enrolled agents keep working whichever secret they used.
    for agent in [&early, &with_new, &with_old] {
        assert_eq!(
            agent.config().await.0,
            StatusCode::OK,
            "{}",
            agent.host_identifier
        );
    }
    // New enrolls with the old secret are refused at once; the new one works.
    let mut late = Agent::new(&server, "late");
    assert_eq!(
        late.enroll_with(&old).await,
        (StatusCode::UNAUTHORIZED, json!({"node_invalid": true}))
    );
    assert_eq!(late.enroll_with(&new).await.0, StatusCode::OK);

    let (_, listed) = server
        .admin(GET, "/api/v1/environments/prod/secrets", Some(&admin), None)
        .await;
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["use_count"], 2);
    assert!(listed[0]["last_used_at"].is_number());
    assert!(listed[0]["expires_at"].is_number());
    server.stop().await;
}

#[tokio::test]
async fn config_and_packs_reach_agents_per_platform() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    let mut linux = Agent::new(&server, "linux-host");
    linux.enroll().await;

    let bad = json!({"schedule": {"q": {"query": "SELECT 1;", "interval": 0}}});
    let (status, body) = server
        .admin(
            PUT,
            "/api/v1/environments/default/config",
            Some(&admin),
            Some(bad),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("interval"));
    let before = linux.config().await.1;
    assert!(
        before["schedule"]["osquery_info"].is_object(),
        "bad config changed nothing"
    );

    let config = json!({"options": {"distributed_interval": 30}, "schedule": {"uptime": {"query": "SELECT * FROM uptime;", "interval": 60}}});
    let (status, stored) = server
        .admin(
            PUT,
            "/api/v1/environments/default/config",
            Some(&admin),
            Some(config.clone()),
        )
        .await;
    assert_eq!((status, stored), (StatusCode::OK, config.clone()));
    let pack = json!({"platform": "darwin", "queries": {"apps": {"query": "SELECT name FROM apps;", "interval": 3600}}});
    let (status, _) = server
        .admin(
            PUT,
            "/api/v1/environments/default/packs/mac",
            Some(&admin),
            Some(pack.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let everywhere = json!({"queries": {"users": {"query": "SELECT * FROM users;", "interval": 600}, "winonly": {"query": "SELECT 1;", "platform": "windows"}}});
    server
        .admin(
            PUT,
            "/api/v1/environments/default/packs/base",
            Some(&admin),
            Some(everywhere),
        )
        .await;

    let (_, seen) = linux.config().await;
    assert_eq!(seen["options"]["distributed_interval"], 30);
    assert!(
        seen["packs"].get("mac").is_none(),
        "darwin pack left out for linux"
    );
    assert!(seen["packs"]["base"]["queries"].get("users").is_some());
    assert!(seen["packs"]["base"]["queries"].get("winonly").is_none());

    let mut mac = Agent::new(&server, "mac-host");
    let (_, enrolled) = server
        .post(sgt_bin::server::paths::ENROLL, &json!({"enroll_secret": server.enroll_secret(), "host_identifier": "mac-host", "platform_type": "21", "host_details": {}}))
        .await;
    mac.node_key = enrolled["node_key"].as_str().unwrap().to_owned();
    assert_eq!(mac.config().await.1["packs"]["mac"], pack);

    let (_, packs) = server
        .admin(
            GET,
            "/api/v1/environments/default/packs",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(packs.as_object().unwrap().len(), 2);
    let (status, _) = server
        .admin(
            DELETE,
            "/api/v1/environments/default/packs/mac",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(mac.config().await.1["packs"].get("mac").is_none());
    server.stop().await;
}

#[tokio::test]
async fn nodes_are_listed_filtered_and_deleted() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    let mut a = Agent::new(&server, "web-alpha");
    a.enroll().await;
    let mut b = Agent::new(&server, "db-beta");
    b.enroll().await;
    let (_, page) = server
        .admin(GET, "/api/v1/nodes?search=alpha", Some(&admin), None)
        .await;
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["host_identifier"], "web-alpha");
    assert_eq!(items[0]["platform"], "linux");
    assert_eq!(items[0]["osquery_version"], "5.23.1");
    assert!(items[0].get("key").is_none() && items[0].get("node_key").is_none());
    let id = items[0]["id"].as_str().unwrap().to_owned();
    let (_, shown) = server
        .admin(GET, &format!("/api/v1/nodes/{id}"), Some(&admin), None)
        .await;
    assert_eq!(
        shown["host_details"]["system_info"]["hostname"],
        "web-alpha"
    );
    let (_, linux) = server
        .admin(
            GET,
            "/api/v1/nodes?platform=linux&environment=default",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(linux["items"].as_array().unwrap().len(), 2);
    let (status, _) = server
        .admin(DELETE, &format!("/api/v1/nodes/{id}"), Some(&admin), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(a.config().await.1, json!({"node_invalid": true}));
    assert_eq!(b.config().await.0, StatusCode::OK);
    let (status, body) = server
        .admin(GET, "/api/v1/nodes?limit=abc", Some(&admin), None)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["code"], "invalid_input");
    server.stop().await;
}

#[tokio::test]
async fn a_carve_is_requested_followed_and_downloaded() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    let mut agent = Agent::new(&server, "suspect");
    agent.enroll().await;
    let node_id = server.only_node().await.id.to_string();
    let (status, query) = server
        .admin(
            POST,
            "/api/v1/carves",
            Some(&admin),
            Some(json!({"node_id": node_id, "path": "/tmp/evil's file"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{query}");
    let id = query["id"].as_str().unwrap();
    let (_, read) = agent.distributed_read().await;
    assert_eq!(
        read["queries"][id],
        "SELECT * FROM carves WHERE carve = 1 AND path = '/tmp/evil''s file';"
    );

    let archive = distinct_bytes(3 * 8192 + 100);
    let session = agent.carve(&archive, 8192).await;
    let (_, carves) = server
        .admin(
            GET,
            &format!("/api/v1/carves?node_id={node_id}"),
            Some(&admin),
            None,
        )
        .await;
    // The session id, the upload capability, is never shown; the carve has an id of its own.
    let carve = sgt_tests::carve_id(&session);
    assert_ne!(carve, session);
    let carves = &carves["items"];
    assert_eq!(carves[0]["id"], carve.as_str());
    assert!(!carves.to_string().contains(&session), "{carves}");
    let (_, shown) = server
        .admin(GET, &format!("/api/v1/carves/{carve}"), Some(&admin), None)
        .await;
    assert!(!shown.to_string().contains(&session), "{shown}");
    assert_eq!(shown["status"], "complete");
    let (status, _) = server
        .admin(
            GET,
            &format!("/api/v1/carves/{session}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "the session id is not a carve id"
    );
    assert_eq!(carves[0]["status"], "complete");
    assert_eq!(carves[0]["progress_percent"], 100);

    let response = server
        .client()
        .get(server.url(&format!("/api/v1/carves/{carve}/archive")))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/x-tar");
    assert_eq!(
        response.headers()["content-length"],
        archive.len().to_string().as_str()
    );
    assert_eq!(response.bytes().await.unwrap(), archive);
    let (status, _) = server
        .admin(GET, &format!("/api/v1/carves/{carve}/archive"), None, None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    server.stop().await;
}

#[tokio::test]
async fn every_change_is_audited() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    create_env_with_secret(&server, &admin, "corp").await;
    let (_, log) = server.admin(GET, "/api/v1/audit", Some(&admin), None).await;
    let actions: Vec<&str> = log["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["secret.create", "environment.create"]);
    assert!(log["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["actor"] == "admin"));
    assert!(!log.to_string().contains(&server.enroll_secret()));
    server.stop().await;
}

#[tokio::test]
async fn saved_queries_are_kept_replaced_run_by_name_and_deleted() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    let operator = create_user(&server, &admin, "otto", "operator").await;
    let viewer = create_user(&server, &admin, "vic", "viewer").await;
    let mut agent = Agent::new(&server, "saved-1");
    agent.enroll().await;

    let (status, saved) = server
        .admin(
            PUT,
            "/api/v1/saved-queries/uptime",
            Some(&admin),
            Some(json!({"sql": " SELECT * FROM uptime; ", "description": "how long up"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{saved}");
    assert_eq!(saved["sql"], "SELECT * FROM uptime;");
    assert_eq!(saved["updated_by"], "admin");
    let created_at = saved["created_at"].clone();
    // An operator replaces it; its creation time stays.
    let (status, replaced) = server
        .admin(
            PUT,
            "/api/v1/saved-queries/uptime",
            Some(&operator),
            Some(json!({"sql": "SELECT total_seconds FROM uptime;"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{replaced}");
    assert_eq!(replaced["updated_by"], "otto");
    assert_eq!(replaced["description"], "");
    assert_eq!(replaced["created_at"], created_at);
    let (status, shown) = server
        .admin(GET, "/api/v1/saved-queries/uptime", Some(&viewer), None)
        .await;
    assert_eq!((status, &shown), (StatusCode::OK, &replaced));
    let (_, listed) = server
        .admin(GET, "/api/v1/saved-queries", Some(&viewer), None)
        .await;
    assert_eq!(listed, json!([replaced]));

    // A campaign runs it by name, with the SQL saved at that moment.
    let (status, campaign) = server
        .admin(
            POST,
            "/api/v1/queries",
            Some(&operator),
            Some(json!({"saved_query": "uptime", "targets": {"all": true}})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{campaign}");
    assert_eq!(campaign["sql"], "SELECT total_seconds FROM uptime;");
    let id = campaign["id"].as_str().unwrap();
    let (_, read) = agent.distributed_read().await;
    assert_eq!(read["queries"][id], "SELECT total_seconds FROM uptime;");

    // Deleted: gone, and the campaign it started stays.
    let (status, _) = server
        .admin(
            DELETE,
            "/api/v1/saved-queries/uptime",
            Some(&operator),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = server
        .admin(GET, "/api/v1/saved-queries/uptime", Some(&viewer), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = server
        .admin(GET, &format!("/api/v1/queries/{id}"), Some(&viewer), None)
        .await;
    assert_eq!(status, StatusCode::OK);

    let (_, log) = server.admin(GET, "/api/v1/audit", Some(&admin), None).await;
    let entries: Vec<(&str, &str, &str)> = log["items"]
        .as_array()
        .unwrap()
        .iter()
        .take(4)
        .map(|e| {
            (
                e["actor"].as_str().unwrap(),
                e["action"].as_str().unwrap(),
                e["target"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        entries,
        [
            ("otto", "saved_query.delete", "uptime"),
            ("otto", "query.create", id),
            ("otto", "saved_query.put", "uptime"),
            ("admin", "saved_query.put", "uptime"),
        ]
    );
    assert_eq!(log["items"][1]["detail"]["saved_query"], "uptime");

    // The log filtered: by actor, action prefix, target and time, paged within the filter.
    let listed = |query: &str| {
        let path = format!("/api/v1/audit?{query}");
        let server = &server;
        let viewer = viewer.clone();
        async move {
            let (status, page) = server.admin(GET, &path, Some(&viewer), None).await;
            assert_eq!(status, StatusCode::OK, "{path}: {page}");
            let actions: Vec<String> = page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| {
                    format!(
                        "{} {}",
                        e["actor"].as_str().unwrap(),
                        e["action"].as_str().unwrap()
                    )
                })
                .collect();
            (actions, page["next_cursor"].as_str().map(str::to_owned))
        }
    };
    let (by_otto, _) = listed("actor=otto").await;
    assert_eq!(
        by_otto,
        [
            "otto saved_query.delete",
            "otto query.create",
            "otto saved_query.put"
        ]
    );
    let (puts, _) = listed("action=saved_query.put").await;
    assert_eq!(puts, ["otto saved_query.put", "admin saved_query.put"]);
    let (first, cursor) = listed("action=saved_query.&limit=1").await;
    assert_eq!(first, ["otto saved_query.delete"]);
    let (second, _) = listed(&format!(
        "action=saved_query.&limit=1&cursor={}",
        cursor.unwrap()
    ))
    .await;
    assert_eq!(second, ["otto saved_query.put"]);
    let (on_uptime, _) = listed("target=uptime&actor=admin").await;
    assert_eq!(on_uptime, ["admin saved_query.put"]);
    let (future, _) = listed(&format!("since={}", now_unix() + 3600)).await;
    assert!(future.is_empty());
    let (recent, _) = listed(&format!("since={}&actor=otto", now_unix() - 3600)).await;
    assert_eq!(recent.len(), 3);
    server.stop().await;
}

#[tokio::test]
async fn the_openapi_document_matches_the_router() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    let (status, doc) = server.admin(GET, "/api/v1/openapi.json", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(doc["openapi"], "3.0.3");
    let paths = doc["paths"].as_object().unwrap();
    let mut documented = 0;
    for (path, operations) in paths {
        for (method, operation) in operations.as_object().unwrap() {
            documented += 1;
            assert!(operation["responses"].is_object(), "{method} {path}");
            // Parameters get values no resource has, so nothing real is touched.
            let concrete: String = path
                .split('/')
                .map(|s| if s.starts_with('{') { "zz-none" } else { s })
                .collect::<Vec<_>>()
                .join("/");
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let body =
                matches!(method, Method::POST | Method::PUT | Method::PATCH).then(|| json!({}));
            let (status, answer) = server
                .admin(method.clone(), &concrete, Some(&admin), body)
                .await;
            assert_ne!(
                status,
                StatusCode::METHOD_NOT_ALLOWED,
                "{method} {path} not routed: {answer}"
            );
            assert_ne!(
                answer["error"]["message"], "no such endpoint",
                "{method} {path} not routed"
            );
        }
    }
    assert_eq!(
        documented,
        sgt_bin::server::admin_api::documented_routes().len()
    );
    // And a path that is not documented is not routed.
    let (status, answer) = server
        .admin(GET, "/api/v1/undocumented", Some(&admin), None)
        .await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
    server.stop().await;
}

#[tokio::test]
async fn expired_tokens_are_refused_and_purged_at_the_next_login() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    let store = &server.backends().store;
    let username = sgt_core::types::Username::parse("admin").unwrap();
    // Age every token of admin's: it is now past its expiry.
    for mut token in store.list_tokens(Some(&username)).await.unwrap() {
        store.delete_token(&token.id).await.unwrap();
        token.expires_at = Some(sgt_core::types::now_unix() - 1);
        store.create_token(&token).await.unwrap();
    }
    let (status, _) = server.admin(GET, "/api/v1/me", Some(&admin), None).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "an expired token is refused"
    );
    let fresh = server.admin_token().await;
    let left = store.list_tokens(Some(&username)).await.unwrap();
    assert_eq!(left.len(), 1, "only the new session remains: {left:?}");
    assert_eq!(
        server.admin(GET, "/api/v1/me", Some(&fresh), None).await.0,
        StatusCode::OK
    );
    server.stop().await;
}

#[tokio::test]
async fn a_password_change_needs_the_current_password_and_ends_other_sessions() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    let stolen = create_user(&server, &admin, "vic", "viewer").await;
    let own = server.login("vic", "vic-password-123").await;
    let change = |token: String, body: Value| {
        let server = &server;
        async move {
            server
                .admin(Method::PATCH, "/api/v1/users/vic", Some(&token), Some(body))
                .await
        }
    };
    // A bearer token alone does not change the password.
    let (status, body) = change(stolen.clone(), json!({"password": "taken-over-password"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = change(
        stolen.clone(),
        json!({"password": "taken-over-password", "current_password": "a-wrong-guess-1"}),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    server.login("vic", "vic-password-123").await;
    // With the current password it does, and every other session of vic's ends.
    let (status, body) = change(
        own.clone(),
        json!({"password": "a-new-password-456", "current_password": "vic-password-123"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        server.admin(GET, "/api/v1/me", Some(&stolen), None).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        server.admin(GET, "/api/v1/me", Some(&own), None).await.0,
        StatusCode::OK
    );
    server.login("vic", "a-new-password-456").await;
    // An admin resetting someone's password needs no current password, and ends their sessions.
    let (status, body) = server
        .admin(
            Method::PATCH,
            "/api/v1/users/vic",
            Some(&admin),
            Some(json!({"password": "reset-by-admin-789"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        server.admin(GET, "/api/v1/me", Some(&own), None).await.0,
        StatusCode::UNAUTHORIZED
    );
    server.stop().await;
}

#[tokio::test]
async fn every_user_can_revoke_its_own_sessions_and_only_its_own() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    let viewer = create_user(&server, &admin, "vic", "viewer").await;
    let (status, tokens) = server
        .admin(GET, "/api/v1/tokens", Some(&viewer), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let mine = tokens[0]["id"].as_str().unwrap().to_owned();
    // Someone else's token is not the viewer's to revoke, nor even to know of.
    let (_, admins) = server
        .admin(GET, "/api/v1/tokens", Some(&admin), None)
        .await;
    let theirs = admins[0]["id"].as_str().unwrap().to_owned();
    let (status, _) = server
        .admin(
            DELETE,
            &format!("/api/v1/tokens/{theirs}"),
            Some(&viewer),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        server.admin(GET, "/api/v1/me", Some(&admin), None).await.0,
        StatusCode::OK
    );
    let (status, body) = server
        .admin(
            DELETE,
            &format!("/api/v1/tokens/{mine}"),
            Some(&viewer),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert_eq!(
        server.admin(GET, "/api/v1/me", Some(&viewer), None).await.0,
        StatusCode::UNAUTHORIZED
    );
    server.stop().await;
}

#[tokio::test]
async fn the_authorization_scheme_is_matched_case_insensitively() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let response = server
            .client()
            .get(server.url("/api/v1/me"))
            .header("authorization", format!("{scheme} {admin}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{scheme}");
    }
    server.stop().await;
}

#[tokio::test]
async fn a_user_name_with_an_at_sign_is_found_percent_encoded_or_not() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    let (status, body) = server
        .admin(
            POST,
            "/api/v1/users",
            Some(&admin),
            Some(json!({"username": "ana@corp", "role": "viewer", "password": "long-enough-pw"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    for path in ["/api/v1/users/ana%40corp", "/api/v1/users/ana@corp"] {
        let (status, body) = server.admin(GET, path, Some(&admin), None).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        assert_eq!(body["username"], "ana@corp");
    }
    server.stop().await;
}

#[tokio::test]
async fn the_carve_list_pages() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    let mut agent = Agent::new(&server, "carved-thrice");
    agent.enroll().await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        let session = agent.carve(&distinct_bytes(5000), 4096).await;
        ids.push(sgt_tests::carve_id(&session));
    }
    let (status, first) = server
        .admin(GET, "/api/v1/carves?limit=2&cursor=", Some(&admin), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["items"].as_array().unwrap().len(), 2);
    let cursor = first["next_cursor"].as_str().unwrap();
    let (status, second) = server
        .admin(
            GET,
            &format!("/api/v1/carves?limit=2&cursor={cursor}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{second}");
    assert_eq!(second["items"].as_array().unwrap().len(), 1);
    assert!(second["next_cursor"].is_null());
    let mut listed: Vec<String> = first["items"]
        .as_array()
        .unwrap()
        .iter()
        .chain(second["items"].as_array().unwrap())
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .collect();
    listed.sort();
    ids.sort();
    assert_eq!(listed, ids);
    let (status, body) = server
        .admin(GET, "/api/v1/carves?cursor=nonsense", Some(&admin), None)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["code"], "invalid_input");
    server.stop().await;
}

#[tokio::test]
async fn every_paged_list_takes_an_empty_cursor_as_its_first_page_and_refuses_a_bad_one() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    let mut agent = Agent::new(&server, "paged");
    agent.enroll().await;
    agent.carve(&distinct_bytes(100), 4096).await;
    let (status, query) = server
        .admin(
            POST,
            "/api/v1/queries",
            Some(&admin),
            Some(json!({"sql": "SELECT 1;", "targets": {"all": true}})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{query}");
    let (_, read) = agent.distributed_read().await;
    let id = query["id"].as_str().unwrap();
    assert!(read["queries"][id].is_string(), "{read}");
    agent
        .distributed_write(json!({"queries": {id: [{"1": "1"}]}, "statuses": {id: 0}}))
        .await;
    for list in [
        "/api/v1/nodes",
        "/api/v1/queries",
        &format!("/api/v1/queries/{id}/results"),
        "/api/v1/carves",
        "/api/v1/audit",
    ] {
        let (status, page) = server
            .admin(GET, &format!("{list}?cursor=&limit=5"), Some(&admin), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{list}: {page}");
        assert!(
            !page["items"].as_array().unwrap().is_empty(),
            "{list}: an empty cursor is the first page: {page}"
        );
        let (status, body) = server
            .admin(
                GET,
                &format!("{list}?cursor=..%2F*&limit=5"),
                Some(&admin),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{list}: {body}");
        assert_eq!(body["error"]["code"], "invalid_input", "{list}: {body}");
    }
    server.stop().await;
}

#[tokio::test]
async fn guessing_the_current_password_through_a_session_is_rate_limited() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    let stolen = create_user(&server, &admin, "vic", "viewer").await;
    let guess = |n: usize| json!({"password": "taken-over-password", "current_password": format!("guess-number-{n}")});
    for n in 0..10 {
        let (status, body) = server
            .admin(
                Method::PATCH,
                "/api/v1/users/vic",
                Some(&stolen),
                Some(guess(n)),
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{n}: {body}");
    }
    let (status, body) = server
        .admin(
            Method::PATCH,
            "/api/v1/users/vic",
            Some(&stolen),
            Some(guess(10)),
        )
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    server.stop().await;
}

/// Twelve PUTs of different packs at once: every one answers 200 with its pack, and all
/// twelve are in the config afterwards (each read-edit-write retries when another wins).
#[tokio::test(flavor = "multi_thread")]
async fn concurrent_pack_edits_are_all_kept() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    let puts = (0..12).map(|i| {
        let (server, admin) = (&server, &admin);
        async move {
            let pack =
                json!({"queries": {format!("q{i}"): {"query": "SELECT 1;", "interval": 60}}});
            let (status, answer) = server
                .admin(
                    PUT,
                    &format!("/api/v1/environments/default/packs/p{i}"),
                    Some(admin),
                    Some(pack.clone()),
                )
                .await;
            assert_eq!((status, answer), (StatusCode::OK, pack));
        }
    });
    futures_util::future::join_all(puts).await;
    let (_, packs) = server
        .admin(
            GET,
            "/api/v1/environments/default/packs",
            Some(&admin),
            None,
        )
        .await;
    let mut names: Vec<&String> = packs.as_object().unwrap().keys().collect();
    names.sort();
    let mut expected: Vec<String> = (0..12).map(|i| format!("p{i}")).collect();
    expected.sort();
    assert_eq!(names, expected.iter().collect::<Vec<_>>());
    server.stop().await;
}

/// `GET …/config` carries the config's version as its ETag; a PUT with `If-Match` of an
/// older version is refused with 409 and changes nothing; one with the current version
/// lands and answers the next ETag; a malformed `If-Match` is 400.
#[tokio::test]
async fn config_replacement_with_if_match_refuses_a_stale_version() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    let url = server.url("/api/v1/environments/default/config");
    let get = || server.client().get(&url).bearer_auth(&admin).send();
    let put = |if_match: &str, config: Value| {
        server
            .client()
            .put(&url)
            .bearer_auth(&admin)
            .header("if-match", if_match)
            .json(&config)
            .send()
    };
    let read = get().await.unwrap();
    let etag = read.headers()["etag"].to_str().unwrap().to_owned();
    let first = json!({"options": {"distributed_interval": 10}});
    let written = put(&etag, first.clone()).await.unwrap();
    assert_eq!(written.status(), StatusCode::OK);
    let next_etag = written.headers()["etag"].to_str().unwrap().to_owned();
    assert_ne!(next_etag, etag);
    assert_eq!(written.json::<Value>().await.unwrap(), first);

    let stale = put(&etag, json!({"options": {"distributed_interval": 99}}))
        .await
        .unwrap();
    assert_eq!(stale.status(), StatusCode::CONFLICT);
    let body: Value = stale.json().await.unwrap();
    assert_eq!(body["error"]["code"], "conflict");
    let now = get().await.unwrap();
    assert_eq!(now.headers()["etag"].to_str().unwrap(), next_etag);
    assert_eq!(now.json::<Value>().await.unwrap(), first);

    for malformed in ["3", "\"x\"", "W/\"2\""] {
        let refused = put(malformed, first.clone()).await.unwrap();
        assert_eq!(refused.status(), StatusCode::BAD_REQUEST, "{malformed}");
    }
    let any = put("*", json!({})).await.unwrap();
    assert_eq!(any.status(), StatusCode::OK);
    server.stop().await;
}

/// Two admins demoting themselves at once, five rounds: each round exactly one PATCH
/// answers 200 and the other 409 `conflict`, and an admin always remains.
#[tokio::test(flavor = "multi_thread")]
async fn two_admins_demoting_themselves_at_once_leave_an_admin() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    let (status, _) = server
        .admin(
            POST,
            "/api/v1/users",
            Some(&admin),
            Some(json!({"username": "second", "role": "admin", "password": "second-password-1"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let second = server.login("second", "second-password-1").await;
    for round in 0..5 {
        let server = &server;
        let demote = |path: &'static str, token: String| async move {
            server
                .admin(
                    Method::PATCH,
                    path,
                    Some(&token),
                    Some(json!({"role": "viewer"})),
                )
                .await
        };
        let ((first, _), (other, _)) = tokio::join!(
            demote("/api/v1/users/admin", admin.clone()),
            demote("/api/v1/users/second", second.clone())
        );
        let mut statuses = [first, other];
        statuses.sort();
        assert_eq!(
            statuses,
            [StatusCode::OK, StatusCode::CONFLICT],
            "round {round}"
        );
        let (_, users) = server.admin(GET, "/api/v1/users", Some(&admin), None).await;
        let admins: Vec<&Value> = users
            .as_array()
            .unwrap()
            .iter()
            .filter(|u| u["role"] == "admin")
            .collect();
        assert_eq!(admins.len(), 1, "round {round}: {users}");
        // The remaining admin promotes the other back.
        let (remaining, token, other) = if first == StatusCode::OK {
            ("second", &second, "admin")
        } else {
            ("admin", &admin, "second")
        };
        assert_eq!(admins[0]["username"], remaining);
        let (status, _) = server
            .admin(
                Method::PATCH,
                &format!("/api/v1/users/{other}"),
                Some(token),
                Some(json!({"role": "admin"})),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    server.stop().await;
}

/// A token that outlived its user (on DynamoDB a user's tokens are found through an
/// eventually consistent index, so one created just before the deletion can survive it)
/// does not work for a later user of the same name.
#[tokio::test]
async fn a_token_of_a_deleted_user_does_not_work_for_a_later_user_of_that_name() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    let create = || {
        server.admin(
            POST,
            "/api/v1/users",
            Some(&admin),
            Some(json!({"username": "reused", "role": "admin", "password": "reused-password-1"})),
        )
    };
    assert_eq!(create().await.0, StatusCode::CREATED);
    let name = sgt_core::types::Username::parse("reused").unwrap();
    let first = server.backends().store.user(&name).await.unwrap();
    let (status, _) = server
        .admin(DELETE, "/api/v1/users/reused", Some(&admin), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(create().await.0, StatusCode::CREATED);
    let later = server.backends().store.user(&name).await.unwrap();
    assert_ne!(
        first.id, later.id,
        "a later user of the name is another user"
    );

    // The surviving token, as the eventually consistent deletion left it.
    let survivor = "sgt_survivor_of_the_first_user";
    server
        .backends()
        .store
        .create_token(&sgt_core::store::ApiToken {
            id: "survivor".into(),
            username: name.clone(),
            user_id: first.id.clone(),
            kind: sgt_core::store::TokenKind::Api,
            name: "made just before the deletion".into(),
            token_hash: sgt_tests::sha256_hex(survivor.as_bytes()),
            created_at: 1,
            expires_at: None,
        })
        .await
        .unwrap();
    let (status, _) = server.admin(GET, "/api/v1/me", Some(survivor), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // The later user's own session works.
    let own = server.login("reused", "reused-password-1").await;
    assert_eq!(
        server.admin(GET, "/api/v1/me", Some(&own), None).await.0,
        StatusCode::OK
    );
    server.stop().await;
}
