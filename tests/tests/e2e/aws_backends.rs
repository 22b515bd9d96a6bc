//! `sgt serve` on the AWS backends that exist (SSM secrets, Firehose logs, S3 carves) with
//! SQLite storage, against the AWS API emulator that `scripts/test` starts. Fails under CI
//! without the emulator; skipped loudly elsewhere.

use reqwest::StatusCode;
use serde_json::json;
use sgt_aws::{aws_config_for, s3_client, AwsSettings};
use sgt_core::types::random_hex;
use sgt_tests::{distinct_bytes, Agent, TestServer};

/// The emulator's URL; panics under CI without it, `None` (test skipped loudly) elsewhere.
pub(crate) fn emulator() -> Option<String> {
    match std::env::var("SGT_TEST_AWS_ENDPOINT") {
        Ok(url) => Some(url),
        Err(_) if std::env::var_os("CI").is_some() => {
            panic!("SGT_TEST_AWS_ENDPOINT is not set: this test needs the emulator; run ./scripts/test")
        }
        Err(_) => {
            eprintln!(
                "SKIPPED: AWS backend test: no emulator. Run ./scripts/test, which starts moto."
            );
            None
        }
    }
}

#[tokio::test]
async fn an_agent_works_against_ssm_firehose_and_s3() {
    let Some(endpoint) = emulator() else { return };
    std::env::set_var("AWS_ACCESS_KEY_ID", "testing");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "testing");
    let config = aws_config_for(
        &AwsSettings {
            endpoint_url: Some(endpoint.clone()),
            region: Some("us-east-1".into()),
        },
        sgt_bin::backends::aws_https_client(),
    )
    .await;
    let run = random_hex(4);
    let (logs_bucket, carves_bucket, stream) = (
        format!("sgt-e2e-logs-{run}"),
        format!("sgt-e2e-carves-{run}"),
        format!("sgt-e2e-{run}"),
    );
    sgt_aws::provision::ensure_bucket(&config, &logs_bucket)
        .await
        .unwrap();
    sgt_aws::provision::ensure_bucket(&config, &carves_bucket)
        .await
        .unwrap();
    sgt_aws::provision::ensure_delivery_stream(
        &config,
        &stream,
        &logs_bucket,
        "arn:aws:iam::123456789012:role/sgt",
    )
    .await
    .unwrap();

    let server = TestServer::start_with_config(&format!(
        "secrets = \"ssm:///sgt-e2e-{run}\"\nlog_sink = \"firehose://{stream}\"\nblobs = \"s3://{carves_bucket}/carves\"\n[aws]\nendpoint_url = \"{endpoint}\"\nregion = \"us-east-1\"\n"
    ))
    .await;

    // The first start put the enroll secret in SSM; the agent's secret file works.
    let ssm = aws_sdk_ssm::Client::new(&config);
    let stored = ssm
        .get_parameters_by_path()
        .path(format!("/sgt-e2e-{run}/enroll-secrets"))
        .with_decryption(true)
        .send()
        .await
        .unwrap();
    assert_eq!(stored.parameters().len(), 1);
    let mut agent = Agent::new(&server, "aws-host");
    agent.enroll().await;
    assert_eq!(agent.config().await.0, StatusCode::OK);

    // Log lines land in the delivery bucket, acknowledged only after Firehose took them.
    let lines: Vec<_> = (0..3).map(|i| json!({"name": "q", "counter": i, "action": "added", "columns": {"i": i.to_string()}})).collect();
    assert_eq!(
        agent.log("result", lines.clone(), true).await,
        (StatusCode::OK, json!({}))
    );
    let s3 = s3_client(&config);
    assert_eq!(delivered_lines(&s3, &logs_bucket).await, lines);

    // A line with raw line breaks between its tokens stays one record of its sender: its
    // middle never reads as a record of another node.
    assert_eq!(
        agent.log_raw("result", sgt_tests::FORGING_LOG_LINE).await,
        (StatusCode::OK, json!({}))
    );
    let records = delivered_records(&s3, &logs_bucket).await;
    assert_eq!(records.len(), lines.len() + 1);
    assert!(records.iter().all(|r| r["environment"] == "default"
        && r["node_id"] != "VICTIM"
        && r["node_id"] == records[0]["node_id"]));
    let lines: Vec<_> = records.iter().map(|r| r["line"].clone()).collect();

    // A line too large for a Firehose record (osquery sends lines of up to 1 MiB) is kept
    // whole in the blob store; the stream gets a line naming it, and the agent is answered {}.
    let big = json!({"name": "file_contents", "action": "added", "columns": {"data": "x".repeat(1_040_000)}});
    let small = json!({"name": "q", "counter": 9, "action": "added", "columns": {}});
    assert_eq!(
        agent
            .log("result", vec![big.clone(), small.clone()], true)
            .await,
        (StatusCode::OK, json!({}))
    );
    let delivered = delivered_lines(&s3, &logs_bucket).await;
    assert_eq!(delivered.len(), lines.len() + 2);
    assert!(delivered.contains(&small));
    let pointer = delivered
        .iter()
        .find_map(|line| line.get("sgt_oversize_line"))
        .expect("a line naming the blob");
    let blob = pointer["blob"].as_str().unwrap();
    assert!(blob.starts_with("log-lines/default/"), "{blob}");
    let kept = s3
        .get_object()
        .bucket(&carves_bucket)
        .key(format!("carves/{blob}"))
        .send()
        .await
        .unwrap()
        .body
        .collect()
        .await
        .unwrap()
        .into_bytes();
    assert_eq!(pointer["bytes"], kept.len());
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&kept).unwrap(),
        big
    );

    // A carve is assembled in S3 and downloaded through the admin API.
    let archive = distinct_bytes(2 * 8192 + 7);
    let session = agent.carve(&archive, 8192).await;
    let archive_key = format!("carves/carves/{session}/archive");
    let head = s3
        .head_object()
        .bucket(&carves_bucket)
        .key(&archive_key)
        .send()
        .await
        .unwrap();
    assert_eq!(head.content_length(), Some(archive.len() as i64));
    let admin = server.admin_token().await;
    let downloaded = server
        .client()
        .get(server.url(&format!(
            "/api/v1/carves/{}/archive",
            sgt_tests::carve_id(&session)
        )))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(downloaded, archive);

    // A secret made through the API is in SSM too, and enrolls at once.
    let (status, created) = server
        .admin(
            reqwest::Method::POST,
            "/api/v1/environments/default/secrets",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let mut second = Agent::new(&server, "aws-host-2");
    let (status, _) = second
        .enroll_with(created["secret"].as_str().unwrap())
        .await;
    assert_eq!(status, StatusCode::OK);
    server.stop().await;
}

/// Every log line Firehose delivered into `bucket` (the `line` of each record).
async fn delivered_lines(s3: &aws_sdk_s3::Client, bucket: &str) -> Vec<serde_json::Value> {
    delivered_records(s3, bucket)
        .await
        .into_iter()
        .map(|record| record["line"].clone())
        .collect()
}

/// Every record Firehose delivered into `bucket`; each text line must be one JSON record.
async fn delivered_records(s3: &aws_sdk_s3::Client, bucket: &str) -> Vec<serde_json::Value> {
    let objects = s3.list_objects_v2().bucket(bucket).send().await.unwrap();
    let mut delivered = Vec::new();
    for object in objects.contents() {
        let body = s3
            .get_object()
            .bucket(bucket)
            .key(object.key().unwrap())
            .send()
            .await
            .unwrap();
        let text =
            String::from_utf8(body.body.collect().await.unwrap().into_bytes().to_vec()).unwrap();
        delivered.extend(
            text.lines()
                .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()),
        );
    }
    delivered
}
