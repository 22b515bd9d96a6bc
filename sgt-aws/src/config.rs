//! The one AWS SDK configuration every client is built from.

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_smithy_runtime_api::client::http::SharedHttpClient;

/// Where AWS is and which region to use; unset values come from the standard AWS environment
/// (`AWS_ENDPOINT_URL`, `AWS_REGION`, credentials chain).
#[derive(Debug, Clone, Default)]
pub struct AwsSettings {
    /// An explicit endpoint, e.g. an emulator's `http://127.0.0.1:5000`.
    pub endpoint_url: Option<String>,
    /// The region.
    pub region: Option<String>,
}

/// Loads the SDK configuration once, for every client of this process, sending through
/// `http_client`: this crate has no HTTP stack of its own (the program chooses one; see
/// `sgt_bin::backends::aws_https_client`).
pub async fn aws_config_for(settings: &AwsSettings, http_client: SharedHttpClient) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).http_client(http_client);
    if let Some(url) = &settings.endpoint_url {
        loader = loader.endpoint_url(url);
    }
    if let Some(region) = &settings.region {
        loader = loader.region(Region::new(region.clone()));
    }
    loader.load().await
}

/// An S3 client; path-style addressing when a custom endpoint is set (emulators and most
/// S3-compatible stores do not resolve `bucket.host` names).
pub fn s3_client(config: &SdkConfig) -> aws_sdk_s3::Client {
    let builder =
        aws_sdk_s3::config::Builder::from(config).force_path_style(config.endpoint_url().is_some());
    aws_sdk_s3::Client::from_conf(builder.build())
}
