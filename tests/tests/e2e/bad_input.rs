//! Bad input on every agent endpoint gets a JSON error body, changes nothing, and the server
//! keeps serving.

use reqwest::StatusCode;
use serde_json::{json, Value};
use sgt_bin::server::paths;
use sgt_core::log_sink::LogType;
use sgt_core::types::{CarveSessionId, QueryId};
use sgt_tests::{gzip, Agent, TestServer};

/// What must not change when a request is refused.
#[derive(Debug, PartialEq)]
struct Snapshot {
    nodes: Vec<(String, String)>,
    results: usize,
    carve_blocks: u64,
    result_lines: usize,
    status_lines: usize,
}

async fn snapshot(server: &TestServer, query: &QueryId, carve: &CarveSessionId) -> Snapshot {
    let store = &server.backends().store;
    let nodes = store
        .list_nodes(&Default::default())
        .await
        .unwrap()
        .into_iter()
        .map(|n| (n.id.to_string(), n.key.as_str().to_owned()))
        .collect();
    Snapshot {
        nodes,
        results: store.query_results(query, None, 0).await.unwrap().len(),
        carve_blocks: store.carve(carve).await.unwrap().blocks_received,
        result_lines: server.log_records(LogType::Result).len(),
        status_lines: server.log_records(LogType::Status).len(),
    }
}

/// How a refused request must be answered.
enum Expect {
    /// This status with `{"error": "<text containing the needle>"}`.
    Error(StatusCode, &'static str),
    /// 401 with exactly `{"node_invalid": true}`.
    NodeInvalid,
}

struct Case {
    name: &'static str,
    path: &'static str,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
    expect: Expect,
}

fn case(name: &'static str, path: &'static str, body: impl Into<Vec<u8>>, expect: Expect) -> Case {
    Case {
        name,
        path,
        headers: Vec::new(),
        body: body.into(),
        expect,
    }
}

fn json_body(v: Value) -> Vec<u8> {
    serde_json::to_vec(&v).unwrap()
}

#[tokio::test]
async fn hostile_requests_get_json_errors_and_change_nothing() {
    let server = TestServer::start().await;
    let mut agent = Agent::new(&server, "victim");
    agent.enroll().await;
    let key = agent.node_key.clone();
    let node = server.only_node().await;
    let query = server
        .create_query_for(&node.id, "q-hostile", "SELECT 1;")
        .await;
    agent.solicit_carve("c", "r").await;
    let (_, started) = agent
        .call(
            paths::CARVE_START,
            json!({"block_count": 2, "block_size": 1024, "carve_size": 1034, "carve_id": "c", "request_id": "r"}),
        )
        .await;
    let session = started["session_id"].as_str().unwrap().to_owned();
    let carve = CarveSessionId::parse(session.clone()).unwrap();
    let b64 = |bytes: &[u8]| {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(bytes)
    };
    let log_body =
        json_body(json!({"node_key": key, "log_type": "result", "data": [{"name": "q"}]}));
    let bad = StatusCode::BAD_REQUEST;
    let secret = server.enroll_secret();

    let mut cases = vec![
        // enroll
        case(
            "enroll: malformed JSON",
            paths::ENROLL,
            r#"{"enroll_secret": "#,
            Expect::Error(bad, "truncated"),
        ),
        case(
            "enroll: syntax error",
            paths::ENROLL,
            r#"{"enroll_secret" "x"}"#,
            Expect::Error(bad, "malformed"),
        ),
        case(
            "enroll: array root",
            paths::ENROLL,
            r#"["x"]"#,
            Expect::Error(bad, "JSON object"),
        ),
        case(
            "enroll: string root",
            paths::ENROLL,
            r#""x""#,
            Expect::Error(bad, "JSON object"),
        ),
        case(
            "enroll: empty body",
            paths::ENROLL,
            "",
            Expect::Error(bad, "JSON object"),
        ),
        case(
            "enroll: missing host_identifier",
            paths::ENROLL,
            json_body(json!({"enroll_secret": secret})),
            Expect::Error(bad, "missing field `host_identifier`"),
        ),
        case(
            "enroll: host_identifier wrong type",
            paths::ENROLL,
            json_body(json!({"enroll_secret": secret, "host_identifier": 5})),
            Expect::Error(bad, "wrong type"),
        ),
        case(
            "enroll: host_identifier with newline",
            paths::ENROLL,
            json_body(json!({"enroll_secret": secret, "host_identifier": "a\nb"})),
            Expect::Error(bad, "host identifier"),
        ),
        case(
            "enroll: host_identifier empty",
            paths::ENROLL,
            json_body(json!({"enroll_secret": secret, "host_identifier": ""})),
            Expect::Error(bad, "host identifier"),
        ),
        case(
            "enroll: platform_type not a number",
            paths::ENROLL,
            json_body(
                json!({"enroll_secret": secret, "host_identifier": "h2", "platform_type": "linux"}),
            ),
            Expect::Error(bad, "platform_type"),
        ),
        case(
            "enroll: host_details an array",
            paths::ENROLL,
            json_body(
                json!({"enroll_secret": secret, "host_identifier": "h2", "host_details": []}),
            ),
            Expect::Error(bad, "host_details"),
        ),
        case(
            "enroll: wrong secret",
            paths::ENROLL,
            json_body(json!({"enroll_secret": "not-the-secret", "host_identifier": "h2"})),
            Expect::NodeInvalid,
        ),
        case(
            "enroll: empty secret",
            paths::ENROLL,
            json_body(json!({"enroll_secret": "", "host_identifier": "h2"})),
            Expect::NodeInvalid,
        ),
        case(
            "enroll: secret wrong type",
            paths::ENROLL,
            json_body(json!({"enroll_secret": 12345, "host_identifier": "h2"})),
            Expect::Error(bad, "wrong type"),
        ),
        // config
        case(
            "config: unknown node key",
            paths::CONFIG,
            json_body(json!({"node_key": "0123456789abcdef"})),
            Expect::NodeInvalid,
        ),
        case(
            "config: no node key",
            paths::CONFIG,
            json_body(json!({})),
            Expect::NodeInvalid,
        ),
        case(
            "config: node key with spaces",
            paths::CONFIG,
            json_body(json!({"node_key": "a b"})),
            Expect::NodeInvalid,
        ),
        case(
            "config: node key wrong type",
            paths::CONFIG,
            json_body(json!({"node_key": 42})),
            Expect::Error(bad, "wrong type"),
        ),
        case(
            "config: body over the limit",
            paths::CONFIG,
            json_body(json!({"node_key": key, "pad": "x".repeat(100_000)})),
            Expect::Error(StatusCode::PAYLOAD_TOO_LARGE, "too large"),
        ),
        // log
        case(
            "log: unknown node key",
            paths::LOG,
            json_body(
                json!({"node_key": "feedface", "log_type": "result", "data": [{"name": "q"}]}),
            ),
            Expect::NodeInvalid,
        ),
        case(
            "log: bad log_type",
            paths::LOG,
            json_body(json!({"node_key": key, "log_type": "snapshot", "data": [{"name": "q"}]})),
            Expect::Error(bad, "log_type"),
        ),
        case(
            "log: data not an array",
            paths::LOG,
            json_body(json!({"node_key": key, "log_type": "result", "data": {"name": "q"}})),
            Expect::Error(bad, "wrong type"),
        ),
        case(
            "log: data missing",
            paths::LOG,
            json_body(json!({"node_key": key, "log_type": "result"})),
            Expect::Error(bad, "missing field `data`"),
        ),
        case(
            "log: more lines than a batch holds (each tiny line costs a heap entry)",
            paths::LOG,
            format!(
                r#"{{"node_key":"{key}","log_type":"result","data":[{}{{}}]}}"#,
                "{},".repeat(65_536)
            ),
            Expect::Error(bad, "more than 65536 elements"),
        ),
        case(
            "distributed write: rows that are not an array",
            paths::DISTRIBUTED_WRITE,
            json_body(json!({"node_key": key, "queries": {"q-1": {"a": "b"}}})),
            Expect::Error(bad, "must be an array"),
        ),
        case(
            "distributed write: more answers than a write holds",
            paths::DISTRIBUTED_WRITE,
            format!(
                r#"{{"node_key":"{key}","statuses":{{{}"x":0}}}}"#,
                (0..10_000)
                    .map(|i| format!(r#""q{i}":0,"#))
                    .collect::<String>()
            ),
            Expect::Error(bad, "more than 10000 members"),
        ),
        case(
            "enroll: host_details over 16 KiB",
            paths::ENROLL,
            json_body(json!({"enroll_secret": secret, "host_identifier": "h2",
                "host_details": {"system_info": {"hostname": "x".repeat(17 * 1024)}}})),
            Expect::Error(bad, "host_details is larger than 16384 bytes"),
        ),
        case(
            "log: a line is not an object",
            paths::LOG,
            json_body(json!({"node_key": key, "log_type": "result", "data": [{"name": "q"}, 5]})),
            Expect::Error(bad, "line 1"),
        ),
        case(
            "log: a line is a string",
            paths::LOG,
            json_body(json!({"node_key": key, "log_type": "status", "data": ["text"]})),
            Expect::Error(bad, "line 0"),
        ),
        Case {
            headers: vec![("content-encoding", "gzip".into())],
            ..case(
                "log: truncated gzip",
                paths::LOG,
                {
                    let g = gzip(&log_body);
                    g[..g.len() / 2].to_vec()
                },
                Expect::Error(bad, "gzip"),
            )
        },
        Case {
            headers: vec![("content-encoding", "gzip".into())],
            ..case(
                "log: gzip header, plain body",
                paths::LOG,
                log_body.clone(),
                Expect::Error(bad, "gzip"),
            )
        },
        Case {
            headers: vec![("content-encoding", "br".into())],
            ..case(
                "log: unsupported encoding",
                paths::LOG,
                log_body.clone(),
                Expect::Error(bad, "content-encoding"),
            )
        },
        Case {
            headers: vec![("content-encoding", "gzip".into())],
            ..case(
                "log: gzip of an array",
                paths::LOG,
                gzip(b"[1,2]"),
                Expect::Error(bad, "JSON object"),
            )
        },
        // distributed
        case(
            "read: unknown node key",
            paths::DISTRIBUTED_READ,
            json_body(json!({"node_key": "nope"})),
            Expect::NodeInvalid,
        ),
        case(
            "read: array root",
            paths::DISTRIBUTED_READ,
            "[]",
            Expect::Error(bad, "JSON object"),
        ),
        case(
            "write: unknown node key",
            paths::DISTRIBUTED_WRITE,
            json_body(json!({"node_key": "nope", "queries": {"q-hostile": []}})),
            Expect::NodeInvalid,
        ),
        case(
            "write: queries not an object",
            paths::DISTRIBUTED_WRITE,
            json_body(json!({"node_key": key, "queries": ["x"]})),
            Expect::Error(bad, "wrong type"),
        ),
        case(
            "write: rows not objects",
            paths::DISTRIBUTED_WRITE,
            json_body(
                json!({"node_key": key, "queries": {"q-hostile": [1, 2]}, "statuses": {"q-hostile": 0}}),
            ),
            Expect::Error(bad, "array of objects"),
        ),
        case(
            "write: rows not an array",
            paths::DISTRIBUTED_WRITE,
            json_body(json!({"node_key": key, "queries": {"q-hostile": "rows"}})),
            Expect::Error(bad, "must be an array"),
        ),
        case(
            "write: status not a number",
            paths::DISTRIBUTED_WRITE,
            json_body(
                json!({"node_key": key, "queries": {"q-hostile": []}, "statuses": {"q-hostile": "bad"}}),
            ),
            Expect::Error(bad, "statuses"),
        ),
        case(
            "write: message not a string",
            paths::DISTRIBUTED_WRITE,
            json_body(
                json!({"node_key": key, "queries": {"q-hostile": []}, "statuses": {"q-hostile": 1}, "messages": {"q-hostile": 7}}),
            ),
            Expect::Error(bad, "messages"),
        ),
        // carve
        case(
            "carve start: unknown node key",
            paths::CARVE_START,
            json_body(
                json!({"node_key": "nope", "block_count": 1, "block_size": 10, "carve_size": 5}),
            ),
            Expect::NodeInvalid,
        ),
        case(
            "carve start: inconsistent block_count",
            paths::CARVE_START,
            json_body(
                json!({"node_key": key, "block_count": 5, "block_size": 1024, "carve_size": 1034}),
            ),
            Expect::Error(bad, "block_count"),
        ),
        case(
            "carve start: a carve nobody asked for",
            paths::CARVE_START,
            json_body(
                json!({"node_key": key, "block_count": 1, "block_size": 1024, "carve_size": 15, "carve_id": "x", "request_id": "y"}),
            ),
            Expect::Error(StatusCode::FORBIDDEN, "no carve was requested"),
        ),
        case(
            "carve start: a block per byte",
            paths::CARVE_START,
            json_body(
                json!({"node_key": key, "block_count": 15, "block_size": 1, "carve_size": 15, "carve_id": "c", "request_id": "r"}),
            ),
            Expect::Error(bad, "block_size"),
        ),
        case(
            "carve start: zero block size",
            paths::CARVE_START,
            json_body(
                json!({"node_key": key, "block_count": 1, "block_size": 0, "carve_size": 15}),
            ),
            Expect::Error(bad, "block_size"),
        ),
        case(
            "carve start: huge block size",
            paths::CARVE_START,
            json_body(
                json!({"node_key": key, "block_count": 1, "block_size": 1u64 << 40, "carve_size": 15}),
            ),
            Expect::Error(bad, "block_size"),
        ),
        case(
            "carve start: negative size",
            paths::CARVE_START,
            json_body(
                json!({"node_key": key, "block_count": 1, "block_size": 10, "carve_size": -15}),
            ),
            Expect::Error(bad, "wrong type"),
        ),
        case(
            "carve start: missing sizes",
            paths::CARVE_START,
            json_body(json!({"node_key": key})),
            Expect::Error(bad, "missing field"),
        ),
        case(
            "carve continue: unknown session",
            paths::CARVE_CONTINUE,
            json_body(json!({"block_id": 0, "session_id": "0000", "data": b64(b"0123456789")})),
            Expect::Error(StatusCode::NOT_FOUND, "carve session"),
        ),
        case(
            "carve continue: session id as a path",
            paths::CARVE_CONTINUE,
            json_body(
                json!({"block_id": 0, "session_id": "../../etc/passwd", "data": b64(b"0123456789")}),
            ),
            Expect::Error(StatusCode::NOT_FOUND, "carve session"),
        ),
        case(
            "carve continue: bad base64",
            paths::CARVE_CONTINUE,
            json_body(json!({"block_id": 0, "session_id": session, "data": "!!not base64!!"})),
            Expect::Error(bad, "base64"),
        ),
        case(
            "carve continue: block id out of range",
            paths::CARVE_CONTINUE,
            json_body(json!({"block_id": 2, "session_id": session, "data": b64(b"01234")})),
            Expect::Error(bad, "block_id"),
        ),
        case(
            "carve continue: block too short",
            paths::CARVE_CONTINUE,
            json_body(json!({"block_id": 0, "session_id": session, "data": b64(b"01234")})),
            Expect::Error(bad, "expected 1024"),
        ),
        case(
            "carve continue: last block too long",
            paths::CARVE_CONTINUE,
            json_body(json!({"block_id": 1, "session_id": session, "data": b64(b"01234567890")})),
            Expect::Error(bad, "expected 10"),
        ),
        // routing
        case(
            "unknown endpoint",
            "/api/v1/osquery/nope",
            json_body(json!({})),
            Expect::Error(StatusCode::NOT_FOUND, "no such endpoint"),
        ),
        case(
            "unknown prefix",
            "/enroll",
            json_body(json!({})),
            Expect::Error(StatusCode::NOT_FOUND, "no such endpoint"),
        ),
    ];
    // Invalid UTF-8 in a field that must be valid is refused, not mangled into the store.
    let mut invalid_utf8 = br#"{"enroll_secret":"x","host_identifier":"h"#.to_vec();
    invalid_utf8.extend_from_slice(&[0xff, 0xfe]);
    invalid_utf8.extend_from_slice(br#""}"#);
    cases.push(case(
        "enroll: invalid UTF-8 with a wrong secret",
        paths::ENROLL,
        invalid_utf8,
        Expect::NodeInvalid,
    ));
    // A line nesting deeper than osquery ever does is refused.
    let deep = format!(
        r#"{{"node_key":"{key}","log_type":"result","data":[{{"a":{}{}}}]}}"#,
        "[".repeat(5_000),
        "]".repeat(5_000)
    );
    cases.push(case(
        "log: 5,000 levels of nesting in a line",
        paths::LOG,
        deep,
        Expect::Error(bad, "nests deeper"),
    ));
    cases.push(case(
        "enroll: NUL byte in host_identifier",
        paths::ENROLL,
        json_body(json!({"enroll_secret": secret, "host_identifier": "a\u{0}b"})),
        Expect::Error(bad, "not allowed"),
    ));
    // A gzip bomb: 8 MiB of zeros in about 8 KiB, past enroll's 1 MiB limit once inflated.
    let mut bomb = case(
        "enroll: gzip bomb",
        paths::ENROLL,
        gzip(&vec![0u8; 8 * 1024 * 1024]),
        Expect::Error(bad, "decompressed body is larger than"),
    );
    bomb.headers.push(("content-encoding", "gzip".to_owned()));
    cases.push(bomb);
    assert!(cases.len() >= 40, "{} cases", cases.len());

    let before = snapshot(&server, &query, &carve).await;
    for case in cases {
        let headers: Vec<(&str, &str)> =
            case.headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (status, body) = server.post_bytes(case.path, &headers, case.body).await;
        match case.expect {
            Expect::Error(expected, needle) => {
                assert_eq!(status, expected, "{}: {body}", case.name);
                let message = body["error"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{}: no error string: {body}", case.name));
                assert!(
                    message.contains(needle),
                    "{}: {message:?} lacks {needle:?}",
                    case.name
                );
                assert!(body.get("node_invalid").is_none(), "{}", case.name);
                assert!(!message.contains(&key), "{}: node key echoed", case.name);
                assert!(!message.contains(&secret), "{}: secret echoed", case.name);
            }
            Expect::NodeInvalid => {
                assert_eq!(status, StatusCode::UNAUTHORIZED, "{}: {body}", case.name);
                assert_eq!(body, json!({"node_invalid": true}), "{}", case.name);
            }
        }
        assert_eq!(
            snapshot(&server, &query, &carve).await,
            before,
            "{} changed state",
            case.name
        );
    }

    // A GET on a POST endpoint is refused the same way.
    let response = server
        .client()
        .get(server.url(paths::CONFIG))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    let body: Value = response.json().await.unwrap();
    assert!(body["error"].is_string());

    // And the server still serves the agent.
    assert_eq!(agent.config().await.0, StatusCode::OK);
    assert_eq!(
        agent.distributed_read().await.1["queries"]["q-hostile"],
        "SELECT 1;"
    );
    server.stop().await;
}

#[tokio::test]
async fn invalid_utf8_in_result_rows_is_stored_replaced() {
    let server = TestServer::start().await;
    let mut agent = Agent::new(&server, "h");
    agent.enroll().await;
    let node = server.only_node().await;
    let query = server
        .create_query_for(&node.id, "q-utf8", "SELECT path FROM file;")
        .await;
    // osquery does not escape distributed rows: raw invalid bytes reach the server.
    let mut body = format!(
        r#"{{"node_key":"{}","queries":{{"q-utf8":[{{"path":"/tmp/caf"#,
        agent.node_key
    )
    .into_bytes();
    body.push(0xe9);
    body.extend_from_slice(br#""}]},"statuses":{"q-utf8":0}}"#);
    let (status, answer) = server.post_bytes(paths::DISTRIBUTED_WRITE, &[], body).await;
    assert_eq!((status, answer), (StatusCode::OK, json!({})));
    let results = server
        .backends()
        .store
        .query_results(&query, None, 0)
        .await
        .unwrap();
    assert_eq!(
        results[0].result.rows,
        vec![json!({"path": "/tmp/caf\u{fffd}"})]
    );
    server.stop().await;
}

#[tokio::test]
async fn a_log_line_with_raw_line_breaks_cannot_forge_another_nodes_record() {
    let server = TestServer::start().await;
    let mut agent = Agent::new(&server, "forger");
    agent.enroll().await;
    let node = server.only_node().await;
    let (status, answer) = agent.log_raw("result", sgt_tests::FORGING_LOG_LINE).await;
    assert_eq!((status, answer), (StatusCode::OK, json!({})));
    // One record in the file, carrying the sender; the would-be record is inside its line.
    let file = std::fs::read_to_string(server.data_dir().join("logs/result.jsonl")).unwrap();
    assert_eq!(file.lines().count(), 1, "{file}");
    let records = server.log_records(sgt_core::log_sink::LogType::Result);
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["node_id"], node.id.as_str());
    assert_eq!(records[0]["environment"], "default");
    assert_eq!(records[0]["line"]["a"]["node_id"], "VICTIM");
    server.stop().await;
}
