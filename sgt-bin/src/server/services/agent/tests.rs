//! The agent service's rules on [`MemoryStore`], assembled as `sgt serve` assembles them
//! ([`App`]): no TLS, no SQLite, milliseconds each. The end-to-end tests keep the wire.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use serde_json::{json, value::RawValue};

use super::{CarveStart, ConfigReply, EnrollRequest};
use crate::admin_types::{Caller, NewCampaign};
use crate::server::services::config_doc::default_config;
use crate::server::services::rate_limit::RateLimit;
use crate::server::{App, ServiceLimits};
use sgt_core::error::ErrorKind;
use sgt_core::log_sink::{LogSink, LogType};
use sgt_core::store::{ListNodes, Node, QueryResult, QueryTargets, Role};
use sgt_core::testkit::doubles::{default_backends, FaultyLogSink, RecordingLogSink};
use sgt_core::testkit::memory_store::MemoryStore;
use sgt_core::types::{HostIdentifier, Username};
use sgt_core::Backends;

/// An app on a fresh in-memory store with the default environment, and its enroll secret.
async fn app_with(limits: ServiceLimits) -> (App, String) {
    let (backends, secret) = default_backends(Arc::new(MemoryStore::new()), default_config()).await;
    (App::new(backends, &limits), secret)
}

async fn app() -> (App, String) {
    app_with(ServiceLimits::default()).await
}

/// As [`app`], with `sink` for log sink.
async fn app_with_sink(sink: Arc<dyn LogSink>) -> (App, String) {
    let (backends, secret) = default_backends(Arc::new(MemoryStore::new()), default_config()).await;
    let backends = Backends {
        log_sink: sink,
        ..backends
    };
    (App::new(backends, &ServiceLimits::default()), secret)
}

/// Enrolls `host` and returns its node as the agent endpoints see it.
async fn enrolled(app: &App, secret: &str, host: &str) -> Arc<Node> {
    let key = app
        .agent()
        .enroll(enroll_request(secret, host))
        .await
        .unwrap();
    app.agent().authenticate(key.as_str()).await.unwrap()
}

fn enroll_request(secret: &str, host: &str) -> EnrollRequest {
    EnrollRequest {
        enroll_secret: secret.to_owned(),
        host_identifier: HostIdentifier::parse(host).unwrap(),
        platform_type: "9".into(),
        host_details: json!({"system_info": {"uuid": format!("uuid-{host}")}}),
        source: None,
    }
}

fn operator() -> Caller {
    Caller {
        username: Username::parse("op").unwrap(),
        role: Role::Operator,
        token_id: "token-of-op".into(),
    }
}

async fn node_count(app: &App) -> usize {
    app.backends()
        .store
        .list_nodes(&ListNodes::default())
        .await
        .unwrap()
        .len()
}

fn lines(texts: &[&str]) -> Vec<Box<RawValue>> {
    texts
        .iter()
        .map(|t| RawValue::from_string((*t).to_owned()).unwrap())
        .collect()
}

#[tokio::test]
async fn a_wrong_secret_enrolls_no_one_and_writes_nothing() {
    let (app, _) = app().await;
    let refused = app
        .agent()
        .enroll(enroll_request("not-the-secret", "h1"))
        .await
        .unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::Unauthorized);
    let empty = app
        .agent()
        .enroll(enroll_request("", "h1"))
        .await
        .unwrap_err();
    assert_eq!(empty.kind(), ErrorKind::Unauthorized);
    assert_eq!(node_count(&app).await, 0);
}

#[tokio::test]
async fn bad_enroll_fields_are_refused_before_anything_is_written() {
    let (app, secret) = app().await;
    let mut request = enroll_request(&secret, "h1");
    request.platform_type = "linux".into();
    let bad_platform = app.agent().enroll(request).await.unwrap_err();
    assert_eq!(bad_platform.kind(), ErrorKind::InvalidInput);
    let mut request = enroll_request(&secret, "h1");
    request.host_details = json!(["not", "an", "object"]);
    let bad_details = app.agent().enroll(request).await.unwrap_err();
    assert_eq!(bad_details.kind(), ErrorKind::InvalidInput);
    assert_eq!(node_count(&app).await, 0);
}

#[tokio::test]
async fn re_enrolling_keeps_the_node_and_retires_the_old_key() {
    let (app, secret) = app().await;
    let agent = app.agent();
    let first = agent.enroll(enroll_request(&secret, "h1")).await.unwrap();
    let node = agent.authenticate(first.as_str()).await.unwrap();
    let second = agent.enroll(enroll_request(&secret, "h1")).await.unwrap();
    assert_ne!(first, second);
    let again = agent.authenticate(second.as_str()).await.unwrap();
    assert_eq!(again.id, node.id, "the same host keeps its node");
    let old = agent.authenticate(first.as_str()).await.unwrap_err();
    assert_eq!(
        old.kind(),
        ErrorKind::Unauthorized,
        "the old key stops at once"
    );
    assert_eq!(node_count(&app).await, 1);
    let garbage = agent.authenticate("not a key").await.unwrap_err();
    assert_eq!(garbage.kind(), ErrorKind::Unauthorized);
}

#[tokio::test]
async fn enrolls_are_limited_per_address_before_the_secret_is_checked() {
    let (app, secret) = app_with(ServiceLimits {
        enroll_limit: RateLimit {
            burst: 2,
            per_minute: 1,
        },
        ..ServiceLimits::default()
    })
    .await;
    let from = |request: EnrollRequest, last: u8| EnrollRequest {
        source: Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, last))),
        ..request
    };
    let agent = app.agent();
    // A wrong guess spends the allowance too.
    let guess = agent
        .enroll(from(enroll_request("guess", "h0"), 1))
        .await
        .unwrap_err();
    assert_eq!(guess.kind(), ErrorKind::Unauthorized);
    agent
        .enroll(from(enroll_request(&secret, "h1"), 1))
        .await
        .unwrap();
    let limited = agent
        .enroll(from(enroll_request(&secret, "h2"), 1))
        .await
        .unwrap_err();
    assert_eq!(limited.kind(), ErrorKind::RateLimited);
    agent
        .enroll(from(enroll_request(&secret, "h2"), 2))
        .await
        .expect("another address has its own allowance");
    assert_eq!(node_count(&app).await, 2);
}

#[tokio::test]
async fn a_cloned_host_identity_is_slowed_down() {
    let (app, secret) = app_with(ServiceLimits {
        host_enroll_limit: RateLimit {
            burst: 2,
            per_minute: 1,
        },
        ..ServiceLimits::default()
    })
    .await;
    let agent = app.agent();
    for _ in 0..2 {
        agent
            .enroll(enroll_request(&secret, "clone"))
            .await
            .unwrap();
    }
    let limited = agent
        .enroll(enroll_request(&secret, "clone"))
        .await
        .unwrap_err();
    assert_eq!(limited.kind(), ErrorKind::RateLimited);
    agent
        .enroll(enroll_request(&secret, "other"))
        .await
        .expect("other identities are not slowed");
}

#[tokio::test]
async fn config_etags_and_admin_changes_are_seen_at_once() {
    let (app, secret) = app().await;
    let agent = app.agent();
    let node = enrolled(&app, &secret, "h1").await;
    let ConfigReply::Full(plain) = agent.config(&node, None, false).await.unwrap() else {
        panic!("an agent without etags gets the whole document");
    };
    let ConfigReply::Full(again) = agent.config(&node, None, false).await.unwrap() else {
        panic!("and again");
    };
    assert_eq!(plain, again, "byte-identical while unchanged");
    let ConfigReply::Full(with_etag) = agent.config(&node, Some(""), false).await.unwrap() else {
        panic!("an agent with an empty etag gets the document");
    };
    let document: serde_json::Value = serde_json::from_slice(&with_etag).unwrap();
    let etag = document["etag"]
        .as_str()
        .expect("an etag member")
        .to_owned();
    assert_eq!(
        agent.config(&node, Some(&etag), false).await.unwrap(),
        ConfigReply::NotModified
    );

    let changed =
        json!({"schedule": {"uptime": {"query": "SELECT * FROM uptime;", "interval": 60}}});
    app.admin()
        .put_config(&operator(), "default", changed, None)
        .await
        .unwrap();
    let ConfigReply::Full(new) = agent.config(&node, Some(&etag), false).await.unwrap() else {
        panic!("a changed config is served at once through the same app");
    };
    let new: serde_json::Value = serde_json::from_slice(&new).unwrap();
    assert_eq!(new["schedule"]["uptime"]["interval"], 60);
    assert_ne!(new["etag"].as_str(), Some(etag.as_str()));
}

#[tokio::test]
async fn a_bad_log_line_stores_none_of_its_batch() {
    let sink = Arc::new(RecordingLogSink::new());
    let (app, secret) = app_with_sink(Arc::clone(&sink) as _).await;
    let agent = app.agent();
    let node = enrolled(&app, &secret, "h1").await;
    let refused = agent
        .ingest_logs(&node, LogType::Result, lines(&[r#"{"name":"a"}"#, "[1,2]"]))
        .await
        .unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::InvalidInput);
    let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
    let too_deep = agent
        .ingest_logs(
            &node,
            LogType::Status,
            lines(&[&format!(r#"{{"a":{deep}}}"#)]),
        )
        .await
        .unwrap_err();
    assert_eq!(too_deep.kind(), ErrorKind::InvalidInput);
    assert_eq!(
        sink.appends(),
        0,
        "nothing of a refused batch reaches the sink"
    );

    let stored = agent
        .ingest_logs(
            &node,
            LogType::Result,
            lines(&[r#"{"name":"a"}"#, r#"{"name":"b"}"#]),
        )
        .await
        .unwrap();
    assert_eq!(stored, 2);
    assert_eq!(sink.records().len(), 2);
}

#[tokio::test]
async fn a_failing_sink_fails_the_batch_so_the_agent_keeps_it() {
    let sink = Arc::new(FaultyLogSink::failing_first(RecordingLogSink::new(), 1));
    let (app, secret) = app_with_sink(Arc::clone(&sink) as _).await;
    let agent = app.agent();
    let node = enrolled(&app, &secret, "h1").await;
    let failed = agent
        .ingest_logs(&node, LogType::Result, lines(&[r#"{"n":1}"#]))
        .await
        .unwrap_err();
    assert!(failed.is_retryable(), "{failed}");
    agent
        .ingest_logs(&node, LogType::Result, lines(&[r#"{"n":1}"#]))
        .await
        .expect("the resend is stored");
    assert_eq!(sink.inner().records().len(), 1);
}

#[tokio::test]
async fn a_live_query_is_handed_out_once_and_only_its_targets_answer() {
    let (app, secret) = app().await;
    let agent = app.agent();
    let one = enrolled(&app, &secret, "h1").await;
    let two = enrolled(&app, &secret, "h2").await;
    let campaign = app
        .admin()
        .create_campaign(
            &operator(),
            NewCampaign {
                sql: "SELECT 1;".into(),
                saved_query: None,
                targets: QueryTargets {
                    node_ids: vec![one.id.clone()],
                    ..QueryTargets::default()
                },
                expires_in_seconds: None,
            },
        )
        .await
        .unwrap();
    let pending = agent.distributed_read(&one).await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].sql, "SELECT 1;");
    assert!(
        agent.distributed_read(&one).await.unwrap().is_empty(),
        "once"
    );
    assert!(
        agent.distributed_read(&two).await.unwrap().is_empty(),
        "not a target"
    );

    let answer = |query_id| QueryResult {
        query_id,
        status: 0,
        rows: vec![json!({"1": "1"})],
        message: None,
        stats: None,
        received_at: 0,
    };
    let stranger = agent
        .distributed_write(&two, vec![answer(pending[0].id.clone())])
        .await
        .unwrap();
    assert_eq!(
        stranger,
        (0, 1),
        "an answer from a node not asked is dropped"
    );
    let target = agent
        .distributed_write(&one, vec![answer(pending[0].id.clone())])
        .await
        .unwrap();
    assert_eq!(target, (1, 0));
    assert_eq!(campaign.query.id, pending[0].id);
}

#[tokio::test]
async fn a_carve_nobody_asked_for_is_refused_and_sizes_are_checked_first() {
    let (app, secret) = app().await;
    let agent = app.agent();
    let node = enrolled(&app, &secret, "h1").await;
    let start = |block_count, block_size, carve_size| CarveStart {
        block_count,
        block_size,
        carve_size,
        carve_guid: "guid".into(),
        request_id: "request".into(),
    };
    let unasked = agent
        .carve_start(&node, start(2, 300_000, 500_000))
        .await
        .unwrap_err();
    assert_eq!(unasked.kind(), ErrorKind::Forbidden);
    let inconsistent = agent
        .carve_start(&node, start(3, 300_000, 500_000))
        .await
        .unwrap_err();
    assert_eq!(inconsistent.kind(), ErrorKind::InvalidInput);
    let empty = agent
        .carve_start(&node, start(0, 300_000, 0))
        .await
        .unwrap_err();
    assert_eq!(empty.kind(), ErrorKind::InvalidInput);
    assert!(app
        .backends()
        .store
        .list_carves(None)
        .await
        .unwrap()
        .is_empty());
}
