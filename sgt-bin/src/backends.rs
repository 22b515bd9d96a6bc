//! Wiring: the one place that turns settings into backends.

use std::sync::Arc;

use sgt_core::agent::Backends;
use sgt_core::blobs::BlobStore;
use sgt_core::log_sink::LogSink;
use sgt_core::secrets::SecretStore;
use sgt_local::{DirBlobStore, FileLogSink, FileLogSinkOptions, FileSecrets, SqliteStore};

use crate::settings::{BlobsSetting, LogSinkSetting, SecretsSetting, Settings, StorageSetting};

/// Opens every backend the settings name. AWS backends share one SDK configuration, loaded
/// only when one of them is chosen.
///
/// # Errors
/// When a backend cannot be opened (unreadable file, failed migration, unreachable AWS), or
/// an AWS backend is chosen in a build without the `aws` feature.
pub async fn build_backends(settings: &Settings) -> anyhow::Result<Backends> {
    let aws = aws::Aws::new(settings).await?;
    let store = match &settings.storage {
        StorageSetting::Sqlite { path } => Arc::new(SqliteStore::open(path).await?),
    };
    let secrets: Arc<dyn SecretStore> = match &settings.secrets {
        SecretsSetting::File { path } => Arc::new(FileSecrets::open(path)?),
        SecretsSetting::Ssm { prefix, refresh } => aws.ssm_secrets(prefix, *refresh).await?,
    };
    let log_sink: Arc<dyn LogSink> = match &settings.log_sink {
        LogSinkSetting::File { dir, rotate_bytes } => {
            let mut options = FileLogSinkOptions::new(dir);
            options.rotate_bytes = *rotate_bytes;
            Arc::new(FileLogSink::open(options)?)
        }
        LogSinkSetting::Firehose { stream } => aws.firehose_sink(stream)?,
    };
    let blobs: Arc<dyn BlobStore> = match &settings.blobs {
        BlobsSetting::Dir { path } => Arc::new(DirBlobStore::open(path)?),
        BlobsSetting::S3 { bucket, prefix } => aws.s3_blobs(bucket, prefix)?,
    };
    Ok(Backends {
        store,
        secrets,
        log_sink,
        blobs,
    })
}

#[cfg(feature = "aws")]
mod aws {
    use std::sync::Arc;
    use std::time::Duration;

    use sgt_aws::{aws_config_for, AwsSettings, FirehoseSink, S3BlobStore, SdkConfig, SsmSecrets};
    use sgt_core::blobs::BlobStore;
    use sgt_core::log_sink::LogSink;
    use sgt_core::secrets::SecretStore;

    use crate::settings::Settings;

    /// The process's one AWS SDK configuration, when an AWS backend is chosen.
    pub(super) struct Aws(Option<SdkConfig>);

    impl Aws {
        pub(super) async fn new(settings: &Settings) -> anyhow::Result<Aws> {
            if !settings.uses_aws() {
                return Ok(Aws(None));
            }
            let config = aws_config_for(&AwsSettings {
                endpoint_url: settings.aws.endpoint_url.clone(),
                region: settings.aws.region.clone(),
            })
            .await;
            Ok(Aws(Some(config)))
        }

        fn config(&self) -> anyhow::Result<&SdkConfig> {
            self.0
                .as_ref()
                .ok_or_else(|| anyhow::anyhow!("no AWS configuration was loaded"))
        }

        pub(super) async fn ssm_secrets(
            &self,
            prefix: &str,
            refresh: Duration,
        ) -> anyhow::Result<Arc<dyn SecretStore>> {
            Ok(SsmSecrets::open_with(self.config()?, prefix, refresh).await?)
        }

        pub(super) fn firehose_sink(&self, stream: &str) -> anyhow::Result<Arc<dyn LogSink>> {
            Ok(Arc::new(FirehoseSink::from_config(self.config()?, stream)))
        }

        pub(super) fn s3_blobs(
            &self,
            bucket: &str,
            prefix: &str,
        ) -> anyhow::Result<Arc<dyn BlobStore>> {
            Ok(Arc::new(S3BlobStore::from_config(
                self.config()?,
                bucket,
                prefix,
            )))
        }
    }
}

#[cfg(not(feature = "aws"))]
mod aws {
    use std::sync::Arc;
    use std::time::Duration;

    use sgt_core::blobs::BlobStore;
    use sgt_core::log_sink::LogSink;
    use sgt_core::secrets::SecretStore;

    use crate::settings::Settings;

    /// Stands for the AWS SDK in a build without the `aws` feature: every AWS backend is a
    /// clear error.
    pub(super) struct Aws;

    fn not_built(what: &str) -> anyhow::Error {
        anyhow::anyhow!("{what} is an AWS backend, and this sgt was built without the aws feature (build with --features aws)")
    }

    impl Aws {
        pub(super) async fn new(_settings: &Settings) -> anyhow::Result<Aws> {
            Ok(Aws)
        }

        pub(super) async fn ssm_secrets(
            &self,
            _prefix: &str,
            _refresh: Duration,
        ) -> anyhow::Result<Arc<dyn SecretStore>> {
            Err(not_built("secrets = ssm"))
        }

        pub(super) fn firehose_sink(&self, _stream: &str) -> anyhow::Result<Arc<dyn LogSink>> {
            Err(not_built("log_sink = firehose"))
        }

        pub(super) fn s3_blobs(
            &self,
            _bucket: &str,
            _prefix: &str,
        ) -> anyhow::Result<Arc<dyn BlobStore>> {
            Err(not_built("blobs = s3"))
        }
    }
}
