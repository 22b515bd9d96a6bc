//! Two `sgt serve` instances sharing one AWS deployment (DynamoDB store, SSM secrets, Firehose
//! logs, S3 carves) on the emulator, as behind a load balancer: agents alternate between them.
//! Fails under CI without the emulator (`scripts/test` starts it); skipped loudly elsewhere.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sgt_bin::provision::{provision, ProvisionOptions};
use sgt_bin::settings::{Overrides, Settings};
use sgt_core::types::random_hex;
use sgt_tests::{distinct_bytes, sha256_hex, Agent, TestServer};

use crate::aws_backends::emulator;

#[tokio::test]
async fn two_instances_share_one_fleet() {
    let Some(endpoint) = emulator() else { return };
    std::env::set_var("AWS_ACCESS_KEY_ID", "testing");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "testing");
    let run = random_hex(4);
    let settings_toml = format!(
        "storage = \"dynamodb://sgt-2i-{run}\"\nsecrets = \"ssm:///sgt-2i-{run}\"\nlog_sink = \"firehose://sgt-2i-{run}\"\nblobs = \"s3://sgt-2i-carves-{run}/carves\"\n[aws]\nendpoint_url = \"{endpoint}\"\nregion = \"us-east-1\"\n"
    );

    // `sgt provision` once, from an operator's machine.
    let (operator, settings) = operator_settings(&settings_toml);
    let options = ProvisionOptions {
        log_bucket: Some(format!("sgt-2i-logs-{run}")),
        firehose_role_arn: Some("arn:aws:iam::123456789012:role/sgt-firehose".into()),
    };
    let report = provision(&settings, &options).await.unwrap();
    assert!(
        report
            .iter()
            .any(|l| l.starts_with("created DynamoDB tables")),
        "{report:?}"
    );
    let again = provision(&settings, &options).await.unwrap();
    assert!(
        again.iter().all(|l| !l.starts_with("created")),
        "provisioning twice creates nothing: {again:?}"
    );
    let read = |name: &str| {
        std::fs::read_to_string(operator.path().join("sgt-data").join(name))
            .unwrap()
            .trim()
            .to_owned()
    };
    let (secret, password) = (read("enroll_secret"), read("admin_password"));

    // Two instances; neither creates a second environment, secret or admin.
    let a = TestServer::start_with_config(&settings_toml).await;
    let b = TestServer::start_with_config(&settings_toml).await;
    for server in [&a, &b] {
        assert!(!server.data_dir().join("enroll_secret").exists());
        assert!(!server.data_dir().join("admin_password").exists());
    }
    let token_a = a.login("admin", &password).await;
    let token_b = b.login("admin", &password).await;

    // Agents enroll through one instance and carry on through the other.
    let mut agents: Vec<Agent> = (0..4)
        .map(|i| Agent::new(if i % 2 == 0 { &a } else { &b }, &format!("host-{i}")))
        .collect();
    for agent in agents.iter_mut() {
        let (status, body) = agent.enroll_with(&secret).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    for (i, agent) in agents.iter_mut().enumerate() {
        agent.via(if i % 2 == 0 { &b } else { &a });
        let (status, config) = agent.config().await;
        assert_eq!(status, StatusCode::OK, "{config}");
        assert!(config["schedule"].is_object(), "{config}");
        let line = json!({"name": "q", "hostIdentifier": agent.host_identifier, "action": "added", "columns": {}});
        assert_eq!(
            agent.log("result", vec![line], false).await,
            (StatusCode::OK, json!({}))
        );
    }
    let (_, nodes) = b
        .admin(Method::GET, "/api/v1/nodes", Some(&token_b), None)
        .await;
    assert_eq!(nodes["items"].as_array().unwrap().len(), 4, "{nodes}");

    // A campaign made on one instance reaches each node exactly once, whichever instance
    // each read lands on, and its answers are visible from the other.
    let (status, campaign) = a
        .admin(
            Method::POST,
            "/api/v1/queries",
            Some(&token_a),
            Some(json!({"sql": "SELECT 1 AS one;", "targets": {"all": true}})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{campaign}");
    let id = campaign["id"].as_str().unwrap().to_owned();
    let late = {
        let mut late = Agent::new(&b, "host-late");
        assert_eq!(late.enroll_with(&secret).await.0, StatusCode::OK);
        late
    };
    agents.push(late);
    for (i, agent) in agents.iter_mut().enumerate() {
        let mut delivered = 0;
        for round in 0..4 {
            agent.via(if (i + round) % 2 == 0 { &a } else { &b });
            let (status, read) = agent.distributed_read().await;
            assert_eq!(status, StatusCode::OK, "{read}");
            if read["queries"].get(&id).is_some() {
                delivered += 1;
            }
        }
        assert_eq!(
            delivered, 1,
            "{} got the campaign once",
            agent.host_identifier
        );
        let answer = json!({"queries": {&id: [{"one": "1"}]}, "statuses": {&id: 0}});
        assert_eq!(agent.distributed_write(answer).await.0, StatusCode::OK);
    }
    let (_, shown) = b
        .admin(
            Method::GET,
            &format!("/api/v1/queries/{id}"),
            Some(&token_b),
            None,
        )
        .await;
    assert_eq!(
        (shown["targeted"].clone(), shown["succeeded"].clone()),
        (json!(5), json!(5)),
        "{shown}"
    );

    // A carve whose blocks arrive at both instances is assembled once, in S3, as a
    // multi-part upload (its 9 MiB are past the 8 MiB part size).
    const BLOCK: usize = 1024 * 1024;
    let archive = distinct_bytes(9 * BLOCK + 100);
    let carver = &mut agents[0];
    carver.via(&a);
    carver
        .solicit_carve("5bd8b5d1-7a3e-4d8e-8f7e-6b0a1f2c3d4e", "two-instances")
        .await;
    let (status, started) = carver
        .call(
            sgt_bin::server::paths::CARVE_START,
            json!({
                "block_count": 10,
                "block_size": BLOCK,
                "carve_size": archive.len(),
                "carve_id": "5bd8b5d1-7a3e-4d8e-8f7e-6b0a1f2c3d4e",
                "request_id": "two-instances",
            }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{started}");
    let session = started["session_id"].as_str().unwrap().to_owned();
    for (i, block) in archive.chunks(BLOCK).enumerate() {
        carver.via(if i % 2 == 0 { &b } else { &a });
        let (status, body) = carver.carve_block(&session, i, block).await;
        assert_eq!((status, body), (StatusCode::OK, json!({})), "block {i}");
    }
    // Assembled in the background by the instance that took the last block.
    a.wait_for_carve(&session).await;
    let carve_id = sgt_tests::carve_id(&session);
    let (status, carve) = a
        .admin(
            Method::GET,
            &format!("/api/v1/carves/{carve_id}"),
            Some(&token_a),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{carve}");
    assert_eq!(carve["status"], "complete", "{carve}");
    assert_eq!(carve["sha256"], sha256_hex(&archive));
    let downloaded = b
        .client()
        .get(b.url(&format!("/api/v1/carves/{carve_id}/archive")))
        .bearer_auth(&token_b)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(downloaded, archive);
    // S3 names a multi-part object's ETag by its part count.
    let s3 = sgt_aws::s3_client(
        &sgt_aws::aws_config_for(
            &sgt_aws::AwsSettings {
                endpoint_url: Some(endpoint.clone()),
                region: Some("us-east-1".into()),
            },
            sgt_bin::backends::aws_https_client(),
        )
        .await,
    );
    let bucket = format!("sgt-2i-carves-{run}");
    let objects = s3.list_objects_v2().bucket(&bucket).send().await.unwrap();
    let archive_key = objects
        .contents()
        .iter()
        .filter_map(|o| o.key())
        .find(|k| k.ends_with("/archive"))
        .expect("the archive is in the bucket")
        .to_owned();
    let head = s3
        .head_object()
        .bucket(&bucket)
        .key(&archive_key)
        .send()
        .await
        .unwrap();
    assert!(
        head.e_tag()
            .is_some_and(|t| t.trim_matches('"').ends_with("-2")),
        "assembled in two parts: {:?}",
        head.e_tag()
    );

    // A node deleted through one instance is refused by the other at its next request.
    let node_id = node_id_of(&a, &token_a, "host-1").await;
    let (status, _) = a
        .admin(
            Method::DELETE,
            &format!("/api/v1/nodes/{node_id}"),
            Some(&token_a),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    // b may have it cached: it learns of the delete at its next refresh.
    let deleted = &mut agents[1];
    deleted.via(&b);
    let deadline = std::time::Instant::now()
        + sgt_bin::serve::CACHE_REFRESH_INTERVAL * 5
        + std::time::Duration::from_secs(2);
    loop {
        let (_, answer) = deleted.config().await;
        if answer["node_invalid"] == json!(true) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still served after the refresh interval: {answer}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    // Twelve pack edits at once through both instances: all answered 200, all kept.
    let puts = (0..12).map(|i| {
        let (server, token) = if i % 2 == 0 {
            (&a, &token_a)
        } else {
            (&b, &token_b)
        };
        async move {
            let pack = json!({"queries": {"q": {"query": "SELECT 1;", "interval": 60}}});
            let (status, answer) = server
                .admin(
                    Method::PUT,
                    &format!("/api/v1/environments/default/packs/race{i}"),
                    Some(token),
                    Some(pack.clone()),
                )
                .await;
            assert_eq!((status, answer), (StatusCode::OK, pack));
        }
    });
    futures_util::future::join_all(puts).await;
    let (_, packs) = a
        .admin(
            Method::GET,
            "/api/v1/environments/default/packs",
            Some(&token_a),
            None,
        )
        .await;
    let raced = packs
        .as_object()
        .unwrap()
        .keys()
        .filter(|k| k.starts_with("race"))
        .count();
    assert_eq!(raced, 12, "{packs}");

    // A label's members changed through one instance get its pack from the other, once that
    // one's cache hears of the change (within a refresh and a config re-read).
    let (status, _) = a
        .admin(
            Method::PUT,
            "/api/v1/labels/pinned",
            Some(&token_a),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let pack =
        json!({"labels": ["pinned"], "queries": {"q": {"query": "SELECT 2;", "interval": 60}}});
    let (status, _) = a
        .admin(
            Method::PUT,
            "/api/v1/environments/default/packs/pinned-pack",
            Some(&token_a),
            Some(pack),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let has_pack = |config: &Value| config["packs"].get("pinned-pack").is_some();
    agents[0].via(&b);
    assert!(!has_pack(&agents[0].config().await.1));
    let pinned_id = node_id_of(&a, &token_a, "host-0").await;
    let (status, changed) = a
        .admin(
            Method::POST,
            "/api/v1/labels/pinned/members",
            Some(&token_a),
            Some(json!({"add": [pinned_id]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while !has_pack(&agents[0].config().await.1) {
        assert!(
            std::time::Instant::now() < deadline,
            "the member never got the pack"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    agents[2].via(&b);
    assert!(!has_pack(&agents[2].config().await.1), "not a member");

    a.stop().await;
    b.stop().await;
}

/// The settings `toml` as an operator's machine resolves them, with its data directory (where
/// provisioning writes the secret and password files) in the returned folder.
fn operator_settings(toml: &str) -> (tempfile::TempDir, Settings) {
    let operator = tempfile::TempDir::new().unwrap();
    let config_file = operator.path().join("sgt.toml");
    std::fs::write(&config_file, toml).unwrap();
    let settings = Settings::resolve(&Overrides {
        config_file: Some(config_file),
        data_dir: Some(operator.path().join("sgt-data")),
        ..Default::default()
    })
    .unwrap();
    (operator, settings)
}

async fn node_id_of(server: &TestServer, token: &str, host: &str) -> String {
    let (_, nodes) = server
        .admin(
            Method::GET,
            &format!("/api/v1/nodes?search={host}"),
            Some(token),
            None,
        )
        .await;
    let items: &Vec<Value> = nodes["items"].as_array().unwrap();
    let node = items
        .iter()
        .find(|n| n["host_identifier"] == host)
        .unwrap_or_else(|| panic!("{host} in {nodes}"));
    node["id"].as_str().unwrap().to_owned()
}

/// Terraform makes the tables and starts the instances, and `sgt deploy` provisions right
/// after: an instance that starts first must not create the admin user or the enroll secret,
/// whose only copies would be written inside its container.
#[tokio::test]
async fn an_instance_on_an_unprovisioned_shared_store_creates_nothing() {
    let Some(endpoint) = emulator() else { return };
    std::env::set_var("AWS_ACCESS_KEY_ID", "testing");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "testing");
    let run = random_hex(4);
    let config = sgt_aws::aws_config_for(
        &sgt_aws::AwsSettings {
            endpoint_url: Some(endpoint.clone()),
            region: Some("us-east-1".into()),
        },
        sgt_bin::backends::aws_https_client(),
    )
    .await;
    sgt_aws::provision::ensure_tables(&config, &format!("sgt-np-{run}"))
        .await
        .unwrap();
    let settings_toml = format!(
        "storage = \"dynamodb://sgt-np-{run}\"\nsecrets = \"ssm:///sgt-np-{run}\"\n[aws]\nendpoint_url = \"{endpoint}\"\nregion = \"us-east-1\"\n"
    );
    let early = TestServer::start_with_config(&settings_toml).await;
    assert!(!early.data_dir().join("enroll_secret").exists());
    assert!(!early.data_dir().join("admin_password").exists());
    let store = &early.backends().store;
    assert!(store.list_users().await.unwrap().is_empty());
    assert!(early
        .backends()
        .secrets
        .list_enroll_secrets()
        .await
        .unwrap()
        .is_empty());

    // Provisioning afterwards creates them, with the files on the operator's machine, and
    // the running instance serves them.
    let (operator, settings) = operator_settings(&settings_toml);
    provision(&settings, &ProvisionOptions::default())
        .await
        .unwrap();
    let password =
        std::fs::read_to_string(operator.path().join("sgt-data/admin_password")).unwrap();
    early.login("admin", password.trim()).await;
    early.stop().await;
}
