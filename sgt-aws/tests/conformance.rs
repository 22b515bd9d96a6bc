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

/// True when the emulator is there; panics under CI when it is not.
fn aws_available() -> bool {
    if std::env::var_os("SGT_TEST_AWS_ENDPOINT").is_some() {
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
    aws_config_for(&AwsSettings {
        endpoint_url: std::env::var("SGT_TEST_AWS_ENDPOINT").ok(),
        region: Some("us-east-1".into()),
    })
    .await
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
            sink: FirehoseSink::from_config(&config, &stream),
            s3: s3_client(&config),
            bucket,
        })
    }
    sgt_core::log_sink_conformance_tests!(make(), skip_unless = aws_available());

    #[tokio::test]
    async fn a_batch_over_500_records_is_split_and_all_arrive() {
        if !aws_available() {
            return;
        }
        let under_test = make().await;
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
