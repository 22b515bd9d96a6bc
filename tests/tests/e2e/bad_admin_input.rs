//! Bad input on the admin API: every case gets its HTTP status and an
//! `{"error":{"code","message"}}` body, and leaves every resource as it was.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sgt_tests::{Agent, TestServer};

/// Everything an admin request could change, read through the API.
async fn snapshot(server: &TestServer, token: &str) -> Vec<Value> {
    let mut state = Vec::new();
    for path in [
        "/api/v1/environments",
        "/api/v1/environments/default/config",
        "/api/v1/environments/default/packs",
        "/api/v1/environments/default/secrets",
        "/api/v1/users",
        "/api/v1/tokens",
        "/api/v1/nodes",
        "/api/v1/queries",
        "/api/v1/saved-queries",
        "/api/v1/carves",
        "/api/v1/audit?limit=1000",
    ] {
        let (status, body) = server.admin(Method::GET, path, Some(token), None).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        state.push(body);
    }
    state
}

struct Case {
    name: &'static str,
    method: Method,
    path: String,
    body: Option<Vec<u8>>,
    status: StatusCode,
    code: &'static str,
}

fn case(
    name: &'static str,
    method: Method,
    path: impl Into<String>,
    body: Option<Value>,
    status: StatusCode,
) -> Case {
    Case {
        name,
        method,
        path: path.into(),
        body: body.map(|b| serde_json::to_vec(&b).unwrap()),
        status,
        code: match status {
            StatusCode::BAD_REQUEST => "invalid_input",
            StatusCode::NOT_FOUND => "not_found",
            StatusCode::PAYLOAD_TOO_LARGE => "too_large",
            StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
            StatusCode::UNAUTHORIZED => "unauthorized",
            StatusCode::CONFLICT => "already_exists",
            _ => "unexpected",
        },
    }
}

fn raw(
    name: &'static str,
    method: Method,
    path: &str,
    body: impl Into<Vec<u8>>,
    status: StatusCode,
    code: &'static str,
) -> Case {
    Case {
        name,
        method,
        path: path.to_owned(),
        body: Some(body.into()),
        status,
        code,
    }
}

#[tokio::test]
async fn hostile_admin_requests_get_json_errors_and_change_nothing() {
    let server = TestServer::start().await;
    let token = server.admin_token().await;
    let mut agent = Agent::new(&server, "admin-target");
    agent.enroll().await;
    let node_id = server.only_node().await.id.to_string();
    let bad = StatusCode::BAD_REQUEST;
    let missing = StatusCode::NOT_FOUND;
    let (get, post, put, delete) = (Method::GET, Method::POST, Method::PUT, Method::DELETE);
    let envs = "/api/v1/environments";
    let config = "/api/v1/environments/default/config";
    let long_name = "e".repeat(64);
    let huge_config = json!({"options": {"padding": "x".repeat(2 * 1024 * 1024)}});
    let cases = vec![
        raw(
            "env: malformed JSON",
            post.clone(),
            envs,
            "{",
            bad,
            "invalid_input",
        ),
        raw(
            "env: array root",
            post.clone(),
            envs,
            "[]",
            bad,
            "invalid_input",
        ),
        raw(
            "env: empty body",
            post.clone(),
            envs,
            "",
            bad,
            "invalid_input",
        ),
        case("env: no name", post.clone(), envs, Some(json!({})), bad),
        case(
            "env: name wrong type",
            post.clone(),
            envs,
            Some(json!({"name": 5})),
            bad,
        ),
        case(
            "env: upper case and space",
            post.clone(),
            envs,
            Some(json!({"name": "Bad Name"})),
            bad,
        ),
        case(
            "env: traversal",
            post.clone(),
            envs,
            Some(json!({"name": "../etc"})),
            bad,
        ),
        case(
            "env: NUL byte",
            post.clone(),
            envs,
            Some(json!({"name": "a\u{0}b"})),
            bad,
        ),
        case(
            "env: 64 characters",
            post.clone(),
            envs,
            Some(json!({"name": long_name})),
            bad,
        ),
        case(
            "env: exists",
            post.clone(),
            envs,
            Some(json!({"name": "default"})),
            StatusCode::CONFLICT,
        ),
        case(
            "env: delete unknown",
            delete.clone(),
            "/api/v1/environments/nope",
            None,
            missing,
        ),
        case("config: array", put.clone(), config, Some(json!([1])), bad),
        case(
            "config: schedule not an object",
            put.clone(),
            config,
            Some(json!({"schedule": 5})),
            bad,
        ),
        case(
            "config: query without SQL",
            put.clone(),
            config,
            Some(json!({"schedule": {"q": {"interval": 60}}})),
            bad,
        ),
        case(
            "config: over 1 MiB",
            put.clone(),
            config,
            Some(huge_config),
            bad,
        ),
        raw(
            "config: over the 4 MiB body limit",
            put.clone(),
            config,
            vec![b' '; 5 * 1024 * 1024],
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
        ),
        raw(
            "config: invalid UTF-8",
            put.clone(),
            config,
            vec![b'{', b'"', 0xff, b'"', b':', b'1', b'}'],
            bad,
            "invalid_input",
        ),
        case(
            "config: unknown environment",
            put.clone(),
            "/api/v1/environments/nope/config",
            Some(json!({})),
            missing,
        ),
        case(
            "pack: bad name",
            put.clone(),
            "/api/v1/environments/default/packs/bad%20name",
            Some(json!({"queries": {}})),
            bad,
        ),
        case(
            "pack: interval not a number",
            put.clone(),
            "/api/v1/environments/default/packs/p",
            Some(json!({"queries": {"q": {"query": "SELECT 1;", "interval": "often"}}})),
            bad,
        ),
        case(
            "pack: delete unknown",
            delete.clone(),
            "/api/v1/environments/default/packs/nope",
            None,
            missing,
        ),
        case(
            "secret: expiry wrong type",
            post.clone(),
            "/api/v1/environments/default/secrets",
            Some(json!({"expires_at": "soon"})),
            bad,
        ),
        case(
            "secret: revoke unknown",
            delete.clone(),
            "/api/v1/environments/default/secrets/nope",
            None,
            missing,
        ),
        case(
            "user: no password",
            post.clone(),
            "/api/v1/users",
            Some(json!({"username": "u", "role": "viewer"})),
            bad,
        ),
        case(
            "user: unknown role",
            post.clone(),
            "/api/v1/users",
            Some(json!({"username": "u", "password": "long-enough-password", "role": "root"})),
            bad,
        ),
        case(
            "user: short password",
            post.clone(),
            "/api/v1/users",
            Some(json!({"username": "u", "password": "x", "role": "viewer"})),
            bad,
        ),
        case(
            "user: bad name",
            post.clone(),
            "/api/v1/users",
            Some(json!({"username": "A B", "password": "long-enough-password", "role": "viewer"})),
            bad,
        ),
        case(
            "user: delete unknown",
            delete.clone(),
            "/api/v1/users/nobody",
            None,
            missing,
        ),
        case(
            "token: expiry wrong type",
            post.clone(),
            "/api/v1/tokens",
            Some(json!({"name": "t", "expires_in_seconds": "never"})),
            bad,
        ),
        case(
            "token: revoke unknown",
            delete.clone(),
            "/api/v1/tokens/nope",
            None,
            missing,
        ),
        case(
            "nodes: limit not a number",
            get.clone(),
            "/api/v1/nodes?limit=abc",
            None,
            bad,
        ),
        case(
            "nodes: unknown id",
            get.clone(),
            "/api/v1/nodes/ffffffffffffffffffffffffffffffff",
            None,
            missing,
        ),
        case(
            "nodes: delete a traversal id",
            delete.clone(),
            "/api/v1/nodes/..%2F..%2Fetc",
            None,
            missing,
        ),
        case(
            "query: empty SQL",
            post.clone(),
            "/api/v1/queries",
            Some(json!({"sql": "", "targets": {"all": true}})),
            bad,
        ),
        case(
            "query: SQL over 64 KiB",
            post.clone(),
            "/api/v1/queries",
            Some(json!({"sql": "S".repeat(70 * 1024), "targets": {"all": true}})),
            bad,
        ),
        case(
            "query: targets wrong type",
            post.clone(),
            "/api/v1/queries",
            Some(json!({"sql": "SELECT 1;", "targets": "all"})),
            bad,
        ),
        case(
            "query: no targets",
            post.clone(),
            "/api/v1/queries",
            Some(json!({"sql": "SELECT 1;", "targets": {}})),
            bad,
        ),
        case(
            "query: show unknown",
            get.clone(),
            "/api/v1/queries/nope",
            None,
            missing,
        ),
        case(
            "query: cancel unknown",
            post.clone(),
            "/api/v1/queries/nope/cancel",
            None,
            missing,
        ),
        case(
            "query: SQL and a saved query both",
            post.clone(),
            "/api/v1/queries",
            Some(json!({"sql": "SELECT 1;", "saved_query": "known", "targets": {"all": true}})),
            bad,
        ),
        case(
            "query: unknown saved query",
            post.clone(),
            "/api/v1/queries",
            Some(json!({"saved_query": "nope", "targets": {"all": true}})),
            bad,
        ),
        case(
            "query: saved query name with a slash",
            post.clone(),
            "/api/v1/queries",
            Some(json!({"saved_query": "../known", "targets": {"all": true}})),
            bad,
        ),
        case(
            "saved query: empty SQL",
            put.clone(),
            "/api/v1/saved-queries/new",
            Some(json!({"sql": "  "})),
            bad,
        ),
        case(
            "saved query: SQL over 64 KiB",
            put.clone(),
            "/api/v1/saved-queries/new",
            Some(json!({"sql": "S".repeat(70 * 1024)})),
            bad,
        ),
        case(
            "saved query: no SQL",
            put.clone(),
            "/api/v1/saved-queries/new",
            Some(json!({"description": "x"})),
            bad,
        ),
        case(
            "saved query: unknown field",
            put.clone(),
            "/api/v1/saved-queries/new",
            Some(json!({"sql": "SELECT 1;", "platform": "linux"})),
            bad,
        ),
        case(
            "saved query: description with a newline",
            put.clone(),
            "/api/v1/saved-queries/new",
            Some(json!({"sql": "SELECT 1;", "description": "a\nb"})),
            bad,
        ),
        case(
            "saved query: description over 4 KiB",
            put.clone(),
            "/api/v1/saved-queries/new",
            Some(json!({"sql": "SELECT 1;", "description": "d".repeat(5000)})),
            bad,
        ),
        case(
            "saved query: name with a space",
            put.clone(),
            "/api/v1/saved-queries/two%20words",
            Some(json!({"sql": "SELECT 1;"})),
            bad,
        ),
        case(
            "saved query: name starting with a dot",
            put.clone(),
            "/api/v1/saved-queries/.hidden",
            Some(json!({"sql": "SELECT 1;"})),
            bad,
        ),
        case(
            "saved query: name over 128 bytes",
            put.clone(),
            format!("/api/v1/saved-queries/{}", "q".repeat(129)),
            Some(json!({"sql": "SELECT 1;"})),
            bad,
        ),
        case(
            "saved query: show unknown",
            get.clone(),
            "/api/v1/saved-queries/nope",
            None,
            missing,
        ),
        case(
            "saved query: delete unknown",
            delete.clone(),
            "/api/v1/saved-queries/nope",
            None,
            missing,
        ),
        case(
            "carve: no path",
            post.clone(),
            "/api/v1/carves",
            Some(json!({"node_id": node_id})),
            bad,
        ),
        case(
            "carve: unknown node",
            post.clone(),
            "/api/v1/carves",
            Some(json!({"node_id": "ffffffffffffffffffffffffffffffff", "path": "/etc/hosts"})),
            bad,
        ),
        case(
            "carve: archive of a bad id",
            get.clone(),
            "/api/v1/carves/..%2F..%2Fetc/archive",
            None,
            missing,
        ),
        case(
            "env settings: expiry of 0 days",
            put.clone(),
            "/api/v1/environments/default/settings",
            Some(json!({"node_expiry_days": 0})),
            bad,
        ),
        case(
            "env settings: unknown setting",
            put.clone(),
            "/api/v1/environments/default/settings",
            Some(json!({"node_expiry": 5})),
            bad,
        ),
        case(
            "env settings: unknown environment",
            put.clone(),
            "/api/v1/environments/nowhere/settings",
            Some(json!({})),
            missing,
        ),
        case(
            "nodes: host over 512 bytes",
            get.clone(),
            format!("/api/v1/nodes?host={}", "h".repeat(600)),
            None,
            bad,
        ),
        case(
            "audit: since not a number",
            get.clone(),
            "/api/v1/audit?since=yesterday",
            None,
            bad,
        ),
        case(
            "audit: unknown filter",
            get.clone(),
            "/api/v1/audit?user=admin",
            None,
            bad,
        ),
        case(
            "audit: oversize filter",
            get.clone(),
            format!("/api/v1/audit?actor={}", "a".repeat(2000)),
            None,
            bad,
        ),
        case(
            "unknown route",
            get.clone(),
            "/api/v1/nothing-here",
            None,
            missing,
        ),
        case(
            "wrong method",
            Method::PATCH,
            envs,
            None,
            StatusCode::METHOD_NOT_ALLOWED,
        ),
    ];
    assert!(cases.len() >= 40, "{} cases", cases.len());

    let (status, _) = server
        .admin(
            put.clone(),
            "/api/v1/saved-queries/known",
            Some(&token),
            Some(json!({"sql": "SELECT * FROM uptime;"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let before = snapshot(&server, &token).await;
    for case in cases {
        let mut request = server
            .client()
            .request(case.method.clone(), server.url(&case.path))
            .bearer_auth(&token);
        if let Some(body) = case.body {
            request = request
                .header("content-type", "application/json")
                .body(body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        let body: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{}: not JSON ({e}): {text}", case.name));
        assert_eq!(status, case.status, "{}: {body}", case.name);
        assert_eq!(body["error"]["code"], case.code, "{}: {body}", case.name);
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(!message.is_empty(), "{}: {body}", case.name);
        assert!(!message.contains(&token), "{}: token echoed", case.name);
        assert_eq!(
            snapshot(&server, &token).await,
            before,
            "{} changed state",
            case.name
        );
    }
    server.stop().await;
}
