//! Wiring: the one place that turns settings into backends.

use std::sync::Arc;

use sgt_core::blobs::BlobStore;
use sgt_core::log_routes::{LogRoute, RoutedLogSink};
use sgt_core::log_sink::{LogSink, LogType};
use sgt_core::secrets::SecretStore;
use sgt_core::store::Store;
use sgt_core::Backends;
use sgt_local::{DirBlobStore, FileLogSink, FileLogSinkOptions, FileSecrets, SqliteStore};

use crate::settings::{BlobsSetting, LogSinkSetting, SecretsSetting, Settings, StorageSetting};

/// What `sgt provision` needs beyond the server settings.
#[derive(Debug, Clone, Default)]
pub struct ProvisionOptions {
    /// The bucket a new Firehose delivery stream writes into (created if missing).
    pub log_bucket: Option<String>,
    /// The IAM role a new Firehose delivery stream uses to write into `log_bucket`.
    pub firehose_role_arn: Option<String>,
}

/// Opens every backend the settings name. AWS backends share one SDK configuration, loaded
/// only when one of them is chosen.
///
/// # Errors
/// When a backend cannot be opened (unreadable file, failed migration, unreachable AWS), or
/// an AWS backend is chosen in a build without the `aws` feature.
pub async fn build_backends(settings: &Settings) -> anyhow::Result<Backends> {
    let aws = aws::Aws::new(settings).await?;
    let secrets: Arc<dyn SecretStore> = match &settings.secrets {
        SecretsSetting::File { path } => Arc::new(FileSecrets::open(path)?),
        SecretsSetting::Ssm { prefix, refresh } => aws.ssm_secrets(prefix, *refresh).await?,
    };
    let mut routes = Vec::with_capacity(settings.log_routes.len());
    for route in &settings.log_routes {
        let sink: Arc<dyn LogSink> = match &route.sink {
            LogSinkSetting::File { dir, rotate_bytes } => {
                let mut options = FileLogSinkOptions::new(dir);
                options.rotate_bytes = *rotate_bytes;
                Arc::new(FileLogSink::open(options)?)
            }
            LogSinkSetting::Firehose {
                stream,
                line_per_record,
            } => aws.firehose_sink(stream, *line_per_record)?,
            LogSinkSetting::Stdout => Arc::new(sgt_local::StreamLogSink::stdout()),
        };
        routes.push(LogRoute {
            sink,
            kinds: route.kinds.clone(),
        });
    }
    // One route taking every kind is its sink itself: nothing between the agent and it.
    let takes_everything = |r: &LogRoute| {
        [LogType::Result, LogType::Status]
            .iter()
            .all(|k| r.kinds.contains(k))
    };
    let log_sink: Arc<dyn LogSink> = match routes.as_slice() {
        [only] if takes_everything(only) => Arc::clone(&only.sink),
        _ => Arc::new(RoutedLogSink::new(routes)?),
    };
    let blobs: Arc<dyn BlobStore> = match &settings.blobs {
        BlobsSetting::Dir { path } => Arc::new(DirBlobStore::open(path)?),
        BlobsSetting::S3 { bucket, prefix } => aws.s3_blobs(bucket, prefix)?,
    };
    let store: Arc<dyn Store> = match &settings.storage {
        StorageSetting::Sqlite { path } => Arc::new(SqliteStore::open(path).await?),
        StorageSetting::Dynamodb { prefix } => aws.dynamodb_store(prefix, Arc::clone(&blobs))?,
    };
    Ok(Backends {
        store,
        secrets,
        log_sink,
        blobs,
    })
}

/// Creates the AWS resources the settings name (tables, buckets, delivery stream), leaving
/// existing ones alone; one report line each.
///
/// # Errors
/// AWS failures; a delivery stream to create without `--log-bucket` and
/// `--firehose-role-arn`; an AWS backend in a build without the `aws` feature.
pub async fn provision_aws(
    settings: &Settings,
    options: &ProvisionOptions,
) -> anyhow::Result<Vec<String>> {
    if !settings.uses_aws() {
        return Ok(Vec::new());
    }
    aws::Aws::new(settings)
        .await?
        .provision(settings, options)
        .await
}

/// The HTTPS client every AWS SDK client of this process sends through: hyper and rustls
/// with ring, the TLS stack the server uses (the SDK's default would add aws-lc).
#[cfg(feature = "aws")]
pub fn aws_https_client() -> sgt_aws::SharedHttpClient {
    use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
    aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https()
}

#[cfg(feature = "aws")]
mod aws {
    use std::sync::Arc;
    use std::time::Duration;

    use sgt_aws::{
        aws_config_for, AwsSettings, DynamoStore, FirehoseSink, RecordLayout, S3BlobStore,
        SdkConfig, SsmSecrets,
    };
    use sgt_core::blobs::BlobStore;
    use sgt_core::log_sink::LogSink;
    use sgt_core::secrets::SecretStore;
    use sgt_core::store::Store;

    use super::ProvisionOptions;
    use crate::settings::{BlobsSetting, LogSinkSetting, Settings, StorageSetting};

    /// The process's one AWS SDK configuration, when an AWS backend is chosen.
    pub(super) struct Aws(Option<SdkConfig>);

    impl Aws {
        pub(super) async fn new(settings: &Settings) -> anyhow::Result<Aws> {
            if !settings.uses_aws() {
                return Ok(Aws(None));
            }
            let config = aws_config_for(
                &AwsSettings {
                    endpoint_url: settings.aws.endpoint_url.clone(),
                    region: settings.aws.region.clone(),
                },
                super::aws_https_client(),
            )
            .await;
            Ok(Aws(Some(config)))
        }

        /// The SDK configuration; an error when no AWS backend was chosen.
        pub(super) fn config(&self) -> anyhow::Result<&SdkConfig> {
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

        pub(super) async fn provision(
            &self,
            settings: &Settings,
            options: &ProvisionOptions,
        ) -> anyhow::Result<Vec<String>> {
            use sgt_aws::provision::{
                delivery_stream_exists, ensure_bucket, ensure_delivery_stream, ensure_tables,
            };
            let config = self.config()?;
            // Refuse before creating anything when a stream cannot be made.
            let streams: Vec<&str> = settings
                .log_routes
                .iter()
                .filter_map(|r| match &r.sink {
                    LogSinkSetting::Firehose { stream, .. } => Some(stream.as_str()),
                    LogSinkSetting::File { .. } | LogSinkSetting::Stdout => None,
                })
                .collect();
            let mut missing_streams = Vec::new();
            for stream in &streams {
                if !delivery_stream_exists(config, stream).await? {
                    if options.log_bucket.is_none() || options.firehose_role_arn.is_none() {
                        anyhow::bail!(
                            "log_sink: Firehose delivery stream {stream} does not exist; give --log-bucket and --firehose-role-arn to create it"
                        );
                    }
                    missing_streams.push(*stream);
                }
            }
            let mut report = Vec::new();
            if let StorageSetting::Dynamodb { prefix } = &settings.storage {
                let created = ensure_tables(config, prefix).await?;
                report.push(if created.is_empty() {
                    format!("DynamoDB tables {prefix}-* exist")
                } else {
                    format!("created DynamoDB tables {}", created.join(", "))
                });
            }
            if let BlobsSetting::S3 { bucket, .. } = &settings.blobs {
                report.push(match ensure_bucket(config, bucket).await? {
                    true => format!("created S3 bucket {bucket}"),
                    false => format!("S3 bucket {bucket} exists"),
                });
            }
            for stream in streams {
                if !missing_streams.contains(&stream) {
                    report.push(format!("Firehose delivery stream {stream} exists"));
                } else if let (Some(bucket), Some(role)) =
                    (&options.log_bucket, &options.firehose_role_arn)
                {
                    if ensure_bucket(config, bucket).await? {
                        report.push(format!("created S3 bucket {bucket}"));
                    }
                    ensure_delivery_stream(config, stream, bucket, role).await?;
                    report.push(format!(
                        "created Firehose delivery stream {stream} into bucket {bucket}"
                    ));
                }
            }
            Ok(report)
        }

        pub(super) fn dynamodb_store(
            &self,
            prefix: &str,
            overflow: Arc<dyn BlobStore>,
        ) -> anyhow::Result<Arc<dyn Store>> {
            Ok(Arc::new(DynamoStore::from_config(
                self.config()?,
                prefix,
                overflow,
            )))
        }

        pub(super) fn firehose_sink(
            &self,
            stream: &str,
            line_per_record: bool,
        ) -> anyhow::Result<Arc<dyn LogSink>> {
            let layout = if line_per_record {
                RecordLayout::LinePerRecord
            } else {
                RecordLayout::Packed
            };
            Ok(Arc::new(
                FirehoseSink::from_config(self.config()?, stream).with_layout(layout),
            ))
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
    use sgt_core::store::Store;

    use super::ProvisionOptions;
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

        pub(super) async fn provision(
            &self,
            _settings: &Settings,
            _options: &ProvisionOptions,
        ) -> anyhow::Result<Vec<String>> {
            Err(anyhow::anyhow!("this sgt was built without the aws feature, so it cannot provision AWS resources (build with --features aws)"))
        }

        pub(super) async fn ssm_secrets(
            &self,
            _prefix: &str,
            _refresh: Duration,
        ) -> anyhow::Result<Arc<dyn SecretStore>> {
            Err(not_built("secrets = ssm"))
        }

        pub(super) fn firehose_sink(
            &self,
            _stream: &str,
            _line_per_record: bool,
        ) -> anyhow::Result<Arc<dyn LogSink>> {
            Err(not_built("log_sink = firehose"))
        }

        pub(super) fn dynamodb_store(
            &self,
            _prefix: &str,
            _overflow: Arc<dyn BlobStore>,
        ) -> anyhow::Result<Arc<dyn Store>> {
            Err(not_built("storage = dynamodb"))
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
