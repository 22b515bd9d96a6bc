//! The sgt-core conformance suite against every sgt-aws backend, on a real AWS API emulator
//! (moto, started by `scripts/test`, which sets `SGT_TEST_AWS_ENDPOINT`). Every test makes
//! its own randomly named bucket, stream or parameter path, so runs never collide.
//!
//! Without the emulator these tests fail under CI (`CI` set) and are skipped loudly elsewhere.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_config::SdkConfig;
use sgt_aws::{aws_config_for, s3_client, AwsSettings, FirehoseSink, S3BlobStore, SsmSecrets};
use sgt_core::log_sink::LogSink;
use sgt_core::testkit::log_sink::SinkUnderTest;
use sgt_core::types::random_hex;

/// Where the AWS API under test is: LocalStack started through testcontainers when
/// `SGT_TEST_DOCKER=1`, else the emulator `scripts/test` started (`SGT_TEST_AWS_ENDPOINT`).
fn endpoint() -> Option<String> {
    if std::env::var("SGT_TEST_DOCKER").as_deref() == Ok("1") {
        return Some(localstack::endpoint());
    }
    std::env::var("SGT_TEST_AWS_ENDPOINT").ok()
}

/// True when an AWS API is there; panics under CI when it is not.
fn aws_available() -> bool {
    if endpoint().is_some() {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!(
            "SGT_TEST_AWS_ENDPOINT is not set: the AWS tests need the emulator; run ./scripts/test"
        );
    }
    eprintln!("SKIPPED: AWS conformance test: no emulator. Run ./scripts/test, which starts moto.");
    false
}

async fn sdk() -> SdkConfig {
    // Fake credentials for the emulator, whatever the environment holds.
    std::env::set_var("AWS_ACCESS_KEY_ID", "testing");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "testing");
    let http_client = aws_smithy_http_client::Builder::new()
        .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
            aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    aws_config_for(
        &AwsSettings {
            endpoint_url: endpoint(),
            region: Some("us-east-1".into()),
        },
        http_client,
    )
    .await
}

/// LocalStack in Docker, the image `localstack/docker-compose.yml` pins, started once per
/// test process. The container is named and marked reusable: it keeps running after the
/// tests and the next run uses it again (`docker rm -f sgt-test-localstack` removes it).
#[cfg(feature = "docker-tests")]
mod localstack {
    use std::sync::OnceLock;

    use testcontainers::core::ReuseDirective;
    use testcontainers::runners::SyncRunner;
    use testcontainers::ImageExt;
    use testcontainers_modules::localstack::LocalStack;

    /// The tag `localstack/docker-compose.yml` pins.
    const TAG: &str = "4.5.0";
    static ENDPOINT: OnceLock<String> = OnceLock::new();

    pub(super) fn endpoint() -> String {
        ENDPOINT
            .get_or_init(|| {
                // The blocking runner has its own runtime: start it off the test's runtime.
                std::thread::spawn(|| {
                    let container = LocalStack::default()
                        .with_tag(TAG)
                        .with_env_var("SERVICES", "dynamodb,ssm,firehose,s3")
                        .with_container_name("sgt-test-localstack")
                        .with_reuse(ReuseDirective::Always)
                        .start()
                        .expect("LocalStack starts (is the Docker daemon running?)");
                    let port = container.get_host_port_ipv4(4566).expect("mapped port");
                    format!("http://127.0.0.1:{port}")
                })
                .join()
                .expect("LocalStack start thread")
            })
            .clone()
    }
}

#[cfg(not(feature = "docker-tests"))]
mod localstack {
    pub(super) fn endpoint() -> String {
        panic!("SGT_TEST_DOCKER=1 needs the docker-tests feature: cargo test -p sgt-aws --features docker-tests")
    }
}

async fn new_bucket(config: &SdkConfig) -> String {
    let bucket = format!("sgt-test-{}", random_hex(6));
    assert!(sgt_aws::provision::ensure_bucket(config, &bucket)
        .await
        .unwrap());
    assert!(
        !sgt_aws::provision::ensure_bucket(config, &bucket)
            .await
            .unwrap(),
        "idempotent"
    );
    bucket
}

mod s3_blobs {
    use super::*;
    async fn make() -> Arc<S3BlobStore> {
        let config = sdk().await;
        let bucket = new_bucket(&config).await;
        Arc::new(S3BlobStore::new(s3_client(&config), bucket, "blobs"))
    }
    sgt_core::blob_store_conformance_tests!(make(), skip_unless = aws_available());

    #[tokio::test]
    async fn large_concat_uses_multipart_parts() {
        use bytes::Bytes;
        use sgt_core::blobs::{BlobKey, BlobStore};
        if !aws_available() {
            return;
        }
        let store = make().await;
        // 3 parts of 7 MiB: over the single-put threshold, parts cross the 8 MiB boundary.
        let mut keys = Vec::new();
        let mut expected = Vec::new();
        for i in 0..3u8 {
            let data: Vec<u8> = (0..7 * 1024 * 1024)
                .map(|j| (j as u8).wrapping_mul(i + 1))
                .collect();
            let key = BlobKey::parse(format!("big/{i}")).unwrap();
            store.put(&key, Bytes::from(data.clone())).await.unwrap();
            expected.extend(data);
            keys.push(key);
        }
        let target = BlobKey::parse("big/all").unwrap();
        assert_eq!(
            store.concat(&target, &keys).await.unwrap(),
            expected.len() as u64
        );
        assert_eq!(
            store.get(&target).await.unwrap().as_ref(),
            expected.as_slice()
        );
    }
}

mod ssm_secrets {
    use super::*;
    async fn make() -> Arc<SsmSecrets> {
        let config = sdk().await;
        SsmSecrets::open(
            aws_sdk_ssm::Client::new(&config),
            &format!("sgt-test-{}", random_hex(6)),
            Duration::from_secs(3600),
        )
        .await
        .unwrap()
    }
    sgt_core::secret_store_conformance_tests!(make(), skip_unless = aws_available());

    #[tokio::test]
    async fn another_instance_sees_changes_after_a_refresh() {
        use sgt_core::secrets::SecretStore;
        if !aws_available() {
            return;
        }
        let config = sdk().await;
        let prefix = format!("sgt-test-{}", random_hex(6));
        let client = aws_sdk_ssm::Client::new(&config);
        let a = SsmSecrets::open(client.clone(), &prefix, Duration::from_secs(3600))
            .await
            .unwrap();
        let b = SsmSecrets::open(client, &prefix, Duration::from_millis(200))
            .await
            .unwrap();
        let secret = sgt_core::testkit::secrets::new_secret("prod");
        a.add_enroll_secret(&secret).await.unwrap();
        assert!(
            b.list_enroll_secrets().await.unwrap().is_empty(),
            "b reads memory, not ssm"
        );
        // The timer picks it up; poll rather than guess how long a loaded machine takes.
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        let seen = loop {
            let seen = b.list_enroll_secrets().await.unwrap();
            if !seen.is_empty() || std::time::Instant::now() > deadline {
                break seen;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert_eq!(seen.len(), 1);
        assert!(seen[0].value.matches(secret.value.expose()));
        a.revoke_enroll_secret(&secret.id).await.unwrap();
        b.reload().await.unwrap();
        assert!(b.list_enroll_secrets().await.unwrap().is_empty());
    }
}

/// A Firehose stream delivering into its own bucket, read back from there.
struct FirehoseUnderTest {
    sink: FirehoseSink,
    s3: aws_sdk_s3::Client,
    bucket: String,
}

#[async_trait]
impl SinkUnderTest for FirehoseUnderTest {
    fn sink(&self) -> &dyn LogSink {
        &self.sink
    }

    async fn stored_records(&self) -> Vec<serde_json::Value> {
        let listed = self
            .s3
            .list_objects_v2()
            .bucket(&self.bucket)
            .send()
            .await
            .unwrap();
        let mut objects: Vec<(String, i64)> = listed
            .contents()
            .iter()
            .map(|o| {
                (
                    o.key().unwrap_or_default().to_owned(),
                    o.last_modified().map(|t| t.as_nanos() as i64).unwrap_or(0),
                )
            })
            .collect();
        objects.sort_by_key(|(key, modified)| (*modified, key.clone()));
        let mut records = Vec::new();
        for (key, _) in objects {
            let object = self
                .s3
                .get_object()
                .bucket(&self.bucket)
                .key(&key)
                .send()
                .await
                .unwrap();
            let bytes = object.body.collect().await.unwrap().into_bytes();
            let text = String::from_utf8(bytes.to_vec()).unwrap();
            records.extend(text.lines().map(|l| serde_json::from_str(l).unwrap()));
        }
        records
    }
}

mod firehose_sink {
    use super::*;

    async fn make() -> Arc<FirehoseUnderTest> {
        make_with(sgt_aws::RecordLayout::Packed).await
    }

    async fn make_with(layout: sgt_aws::RecordLayout) -> Arc<FirehoseUnderTest> {
        let config = sdk().await;
        let bucket = new_bucket(&config).await;
        let stream = format!("sgt-test-{}", random_hex(6));
        let role = "arn:aws:iam::123456789012:role/sgt-firehose";
        let provision = sgt_aws::provision::ensure_delivery_stream;
        assert!(provision(&config, &stream, &bucket, role).await.unwrap());
        assert!(
            !provision(&config, &stream, &bucket, role).await.unwrap(),
            "idempotent"
        );
        Arc::new(FirehoseUnderTest {
            sink: FirehoseSink::from_config(&config, &stream).with_layout(layout),
            s3: s3_client(&config),
            bucket,
        })
    }
    sgt_core::log_sink_conformance_tests!(make(), skip_unless = aws_available());

    /// One line per record, as a stream into OpenSearch needs: the same contract.
    mod line_per_record {
        use super::*;
        sgt_core::log_sink_conformance_tests!(
            make_with(sgt_aws::RecordLayout::LinePerRecord),
            skip_unless = aws_available()
        );
    }

    #[tokio::test]
    async fn a_batch_over_500_records_is_split_and_all_arrive() {
        if !aws_available() {
            return;
        }
        // One line per record: 1,234 records take three calls of at most 500.
        let under_test = make_with(sgt_aws::RecordLayout::LinePerRecord).await;
        let batch = sgt_core::testkit::log_sink::batch("big", 1234);
        under_test.sink().append(&batch).await.unwrap();
        let stored = under_test.stored_records().await;
        assert_eq!(stored.len(), 1234);
        let mut seen: Vec<u64> = stored
            .iter()
            .map(|r| r["line"]["i"].as_u64().unwrap())
            .collect();
        seen.sort();
        assert_eq!(seen, (0..1234).collect::<Vec<u64>>());
    }
}

mod dynamodb_store {
    use super::*;
    use serde_json::json;
    use sgt_aws::DynamoStore;
    use sgt_core::store::*;
    use sgt_core::testkit::store::{new_node, node_ref};
    use sgt_core::types::*;

    /// A store on freshly provisioned tables of a random prefix, overflowing into a new bucket.
    async fn make() -> Arc<DynamoStore> {
        let config = sdk().await;
        let prefix = format!("sgt-test-{}", random_hex(6));
        let created = sgt_aws::provision::ensure_tables(&config, &prefix)
            .await
            .unwrap();
        assert_eq!(created.len(), sgt_aws::dynamodb::TABLES.len());
        let bucket = new_bucket(&config).await;
        let overflow = Arc::new(S3BlobStore::new(s3_client(&config), bucket, "store"));
        Arc::new(DynamoStore::from_config(&config, &prefix, overflow))
    }
    sgt_core::store_conformance_tests!(make(), skip_unless = aws_available());

    #[tokio::test]
    async fn provisioning_twice_creates_nothing_more() {
        if !aws_available() {
            return;
        }
        let config = sdk().await;
        let prefix = format!("sgt-test-{}", random_hex(6));
        let first = sgt_aws::provision::ensure_tables(&config, &prefix)
            .await
            .unwrap();
        assert_eq!(first.len(), sgt_aws::dynamodb::TABLES.len());
        let second = sgt_aws::provision::ensure_tables(&config, &prefix)
            .await
            .unwrap();
        assert!(second.is_empty(), "{second:?}");
    }

    #[tokio::test]
    async fn values_over_the_item_limit_go_to_the_blob_store() {
        if !aws_available() {
            return;
        }
        let store = make().await;
        let big = "x".repeat(450 * 1024);
        let mut node = new_node("default", "big-host", "U", 1000);
        node.host_details = json!({"system_info": {"hostname": "big-host"}, "extra": big});
        let enrolled = store.enroll_node(node.clone()).await.unwrap();
        assert_eq!(
            store.node_by_key(&enrolled.key).await.unwrap().host_details,
            node.host_details
        );
        // Re-keying replaces the big value.
        let mut again = node.clone();
        again.key = NodeKey::generate();
        again.host_details = json!({"small": true});
        let rekeyed = store.enroll_node(again).await.unwrap();
        assert_eq!(rekeyed.host_details, json!({"small": true}));

        let environment = Environment {
            name: EnvironmentName::parse("big").unwrap(),
            config: json!({"schedule": {}, "pad": big}),
            created_at: 1,
            config_updated_at: 1,
            config_version: 1,
            settings: Default::default(),
        };
        store.create_environment(&environment).await.unwrap();
        assert_eq!(
            store.environment(&environment.name).await.unwrap(),
            environment
        );
        let small = json!({"options": {}});
        store
            .put_config(&environment.name, &small, 2, Some(1))
            .await
            .unwrap();
        assert_eq!(
            store.environment(&environment.name).await.unwrap().config,
            small
        );

        let query = NewQuery {
            id: QueryId::generate(),
            sql: "SELECT * FROM processes".into(),
            targets: QueryTargets {
                node_ids: vec![rekeyed.id.clone()],
                ..Default::default()
            },
            node_ids: vec![rekeyed.id.clone()],
            created_by: "alice".into(),
            created_at: 10,
            expires_at: None,
        };
        store.create_query(&query).await.unwrap();
        let taken = store
            .take_pending_queries(node_ref(&rekeyed), 11)
            .await
            .unwrap();
        assert_eq!(taken.len(), 1);
        let rows: Vec<serde_json::Value> = (0..3000)
            .map(|i| json!({"pid": i.to_string(), "cmdline": "y".repeat(200)}))
            .collect();
        let result = QueryResult {
            query_id: query.id.clone(),
            status: 0,
            rows: rows.clone(),
            message: None,
            stats: None,
            received_at: 12,
        };
        store.record_result(&rekeyed.id, &result).await.unwrap();
        let stored = store.query_results(&query.id, None, 0).await.unwrap();
        assert_eq!(stored.len(), 1);
        assert_eq!(stored[0].result, result);
    }

    /// Items in one index partition of a table of `prefix`.
    async fn index_count(
        config: &SdkConfig,
        table: &str,
        index: &str,
        key: &str,
        value: &str,
    ) -> i32 {
        aws_sdk_dynamodb::Client::new(config)
            .query()
            .table_name(table)
            .index_name(index)
            .key_condition_expression("#k = :v")
            .expression_attribute_names("#k", key)
            .expression_attribute_values(
                ":v",
                aws_sdk_dynamodb::types::AttributeValue::S(value.into()),
            )
            .send()
            .await
            .unwrap()
            .count()
    }

    #[tokio::test]
    async fn dead_campaigns_leave_the_read_path_indexes() {
        if !aws_available() {
            return;
        }
        let config = sdk().await;
        let prefix = format!("sgt-test-{}", random_hex(6));
        sgt_aws::provision::ensure_tables(&config, &prefix)
            .await
            .unwrap();
        let bucket = new_bucket(&config).await;
        let overflow = Arc::new(S3BlobStore::new(s3_client(&config), bucket, "store"));
        let store = DynamoStore::from_config(&config, &prefix, overflow);
        let node = store
            .enroll_node(new_node("default", "n", "N", 1000))
            .await
            .unwrap();
        let campaign = |id: QueryId, expires_at| NewQuery {
            id,
            sql: "SELECT 1".into(),
            targets: QueryTargets {
                all: true,
                ..Default::default()
            },
            node_ids: vec![node.id.clone()],
            created_by: "alice".into(),
            created_at: 1000,
            expires_at,
        };
        store
            .create_query(&campaign(QueryId::generate(), Some(1005)))
            .await
            .unwrap();
        let cancelled = QueryId::generate();
        store
            .create_query(&campaign(cancelled.clone(), None))
            .await
            .unwrap();
        store.cancel_query(&cancelled, 1001).await.unwrap();
        let (queries, deliveries) = (format!("{prefix}-queries"), format!("{prefix}-deliveries"));
        assert_eq!(
            index_count(&config, &queries, "live", "live", "live").await,
            1
        );
        assert_eq!(
            index_count(
                &config,
                &deliveries,
                "pending-by-node",
                "pending_node",
                node.id.as_str()
            )
            .await,
            2
        );
        assert!(store
            .take_pending_queries(node_ref(&node), 1010)
            .await
            .unwrap()
            .is_empty());
        // One read found both dead; later reads no longer meet them.
        assert_eq!(
            index_count(&config, &queries, "live", "live", "live").await,
            0
        );
        assert_eq!(
            index_count(
                &config,
                &deliveries,
                "pending-by-node",
                "pending_node",
                node.id.as_str()
            )
            .await,
            0
        );
        let targets = store.query_targets(&cancelled).await.unwrap();
        assert_eq!(targets[0].state, DeliveryState::Pending, "never delivered");
    }
}
