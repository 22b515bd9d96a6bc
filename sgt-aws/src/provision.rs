//! Creating the AWS resources the backends use, idempotently: what exists is left alone.

use aws_config::SdkConfig;
use aws_sdk_firehose::types::{
    BufferingHints, CompressionFormat, DeliveryStreamType, ExtendedS3DestinationConfiguration,
};
use aws_sdk_s3::types::{BucketLocationConstraint, CreateBucketConfiguration};
use sgt_core::{Error, ErrorKind, Result};

use crate::errors::classify;

/// Creates `bucket` unless it exists; returns true if it did.
///
/// # Errors
/// AWS failures, classified.
pub async fn ensure_bucket(config: &SdkConfig, bucket: &str) -> Result<bool> {
    let s3 = crate::s3_client(config);
    match s3.head_bucket().bucket(bucket).send().await {
        Ok(_) => return Ok(false),
        Err(e) => {
            let error = classify("s3", "bucket", e);
            if error.kind() != ErrorKind::NotFound {
                return Err(error);
            }
        }
    }
    let mut create = s3.create_bucket().bucket(bucket);
    let region = config.region().map(|r| r.as_ref().to_owned());
    if let Some(region) = region.filter(|r| r != "us-east-1") {
        create = create.create_bucket_configuration(
            CreateBucketConfiguration::builder()
                .location_constraint(BucketLocationConstraint::from(region.as_str()))
                .build(),
        );
    }
    match create.send().await {
        Ok(_) => Ok(true),
        Err(e) => match classify("s3", "bucket", e) {
            e if e.kind() == ErrorKind::AlreadyExists => Ok(false),
            e => Err(e),
        },
    }
}

/// Creates a direct-put delivery stream `stream` writing to `bucket` through `role_arn`,
/// unless it exists; returns true if it did.
///
/// # Errors
/// AWS failures, classified.
pub async fn ensure_delivery_stream(
    config: &SdkConfig,
    stream: &str,
    bucket: &str,
    role_arn: &str,
) -> Result<bool> {
    let firehose = aws_sdk_firehose::Client::new(config);
    match firehose
        .describe_delivery_stream()
        .delivery_stream_name(stream)
        .send()
        .await
    {
        Ok(_) => return Ok(false),
        Err(e) => {
            let error = classify("firehose", "delivery stream", e);
            if error.kind() != ErrorKind::NotFound {
                return Err(error);
            }
        }
    }
    let destination = ExtendedS3DestinationConfiguration::builder()
        .role_arn(role_arn)
        .bucket_arn(format!("arn:aws:s3:::{bucket}"))
        // Lines are already small JSON records; say so explicitly (describing a stream
        // without a format fails to parse in the SDK).
        .compression_format(CompressionFormat::Uncompressed)
        .buffering_hints(
            BufferingHints::builder()
                .size_in_mbs(5)
                .interval_in_seconds(60)
                .build(),
        )
        .build()
        .map_err(|e| Error::backend("firehose", e))?;
    match firehose
        .create_delivery_stream()
        .delivery_stream_name(stream)
        .delivery_stream_type(DeliveryStreamType::DirectPut)
        .extended_s3_destination_configuration(destination)
        .send()
        .await
    {
        Ok(_) => Ok(true),
        Err(e) => match classify("firehose", "delivery stream", e) {
            e if e.kind() == ErrorKind::AlreadyExists => Ok(false),
            e => Err(e),
        },
    }
}
