//! Creating the AWS resources the backends use, idempotently: what exists is left alone.

use std::time::Duration;

use aws_config::SdkConfig;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType,
    ScalarAttributeType, TableStatus, TimeToLiveSpecification, TimeToLiveStatus,
};
use aws_sdk_firehose::types::{
    BufferingHints, CompressionFormat, DeliveryStreamType, ExtendedS3DestinationConfiguration,
};
use aws_sdk_s3::types::{
    BucketLocationConstraint, BucketVersioningStatus, CreateBucketConfiguration,
    PublicAccessBlockConfiguration, VersioningConfiguration,
};
use sgt_core::{Error, ErrorKind, Result};

use crate::dynamodb::tables::{self, KeyAttribute, Projection, TableSpec, TABLES};
use crate::errors::classify;

fn build_error(e: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::backend("dynamodb", e)
}

fn key_schema(hash: KeyAttribute, range: Option<KeyAttribute>) -> Result<Vec<KeySchemaElement>> {
    let mut schema = vec![KeySchemaElement::builder()
        .attribute_name(hash.name)
        .key_type(KeyType::Hash)
        .build()
        .map_err(build_error)?];
    if let Some(range) = range {
        schema.push(
            KeySchemaElement::builder()
                .attribute_name(range.name)
                .key_type(KeyType::Range)
                .build()
                .map_err(build_error)?,
        );
    }
    Ok(schema)
}

/// Every key attribute of the table and its indexes, once each.
fn attribute_definitions(spec: &TableSpec) -> Result<Vec<AttributeDefinition>> {
    let mut keys = vec![spec.hash];
    keys.extend(spec.range);
    for index in spec.indexes {
        keys.push(index.hash);
        keys.extend(index.range);
    }
    let mut definitions: Vec<AttributeDefinition> = Vec::new();
    for key in keys {
        if definitions.iter().any(|d| d.attribute_name() == key.name) {
            continue;
        }
        definitions.push(
            AttributeDefinition::builder()
                .attribute_name(key.name)
                .attribute_type(match key.key_type {
                    tables::KeyType::String => ScalarAttributeType::S,
                    tables::KeyType::Number => ScalarAttributeType::N,
                })
                .build()
                .map_err(build_error)?,
        );
    }
    Ok(definitions)
}

/// Creates every table of the DynamoDB store for `prefix` (on-demand capacity, with their
/// indexes and TTL), leaving existing ones alone; returns the names of those it created.
///
/// # Errors
/// AWS failures, classified.
pub async fn ensure_tables(config: &SdkConfig, prefix: &str) -> Result<Vec<String>> {
    let dynamodb = aws_sdk_dynamodb::Client::new(config);
    let mut created = Vec::new();
    for spec in TABLES {
        let name = spec.table_name(prefix);
        if ensure_table(&dynamodb, spec, &name).await? {
            created.push(name.clone());
        }
        wait_until_active(&dynamodb, &name).await?;
        if let Some(attribute) = spec.ttl_attribute {
            ensure_ttl(&dynamodb, &name, attribute).await?;
        }
    }
    Ok(created)
}

async fn ensure_table(
    dynamodb: &aws_sdk_dynamodb::Client,
    spec: &TableSpec,
    name: &str,
) -> Result<bool> {
    match dynamodb.describe_table().table_name(name).send().await {
        Ok(_) => return Ok(false),
        Err(e) => {
            let error = classify("dynamodb", "table", e);
            if error.kind() != ErrorKind::NotFound {
                return Err(error);
            }
        }
    }
    let mut indexes = Vec::new();
    for index in spec.indexes {
        let projection = aws_sdk_dynamodb::types::Projection::builder()
            .projection_type(match index.projection {
                Projection::KeysOnly => aws_sdk_dynamodb::types::ProjectionType::KeysOnly,
                Projection::All => aws_sdk_dynamodb::types::ProjectionType::All,
            })
            .build();
        indexes.push(
            GlobalSecondaryIndex::builder()
                .index_name(index.name)
                .set_key_schema(Some(key_schema(index.hash, index.range)?))
                .projection(projection)
                .build()
                .map_err(build_error)?,
        );
    }
    let result = dynamodb
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .set_key_schema(Some(key_schema(spec.hash, spec.range)?))
        .set_attribute_definitions(Some(attribute_definitions(spec)?))
        .set_global_secondary_indexes((!indexes.is_empty()).then_some(indexes))
        .send()
        .await;
    match result {
        Ok(_) => Ok(true),
        Err(e) => match classify("dynamodb", "table", e) {
            e if e.kind() == ErrorKind::AlreadyExists => Ok(false),
            e => Err(e),
        },
    }
}

async fn wait_until_active(dynamodb: &aws_sdk_dynamodb::Client, name: &str) -> Result<()> {
    for _ in 0..300 {
        let table = dynamodb
            .describe_table()
            .table_name(name)
            .send()
            .await
            .map_err(|e| classify("dynamodb", "table", e))?;
        if table.table().and_then(|t| t.table_status()) == Some(&TableStatus::Active) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    Err(Error::unavailable(format!(
        "dynamodb: table {name} did not become active in 5 minutes"
    )))
}

async fn ensure_ttl(
    dynamodb: &aws_sdk_dynamodb::Client,
    name: &str,
    attribute: &str,
) -> Result<()> {
    let current = dynamodb
        .describe_time_to_live()
        .table_name(name)
        .send()
        .await
        .map_err(|e| classify("dynamodb", "table", e))?;
    let description = current.time_to_live_description();
    let status = description.and_then(|d| d.time_to_live_status());
    if matches!(
        status,
        Some(TimeToLiveStatus::Enabled) | Some(TimeToLiveStatus::Enabling)
    ) {
        return Ok(());
    }
    dynamodb
        .update_time_to_live()
        .table_name(name)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .enabled(true)
                .attribute_name(attribute)
                .build()
                .map_err(build_error)?,
        )
        .send()
        .await
        .map_err(|e| classify("dynamodb", "table", e))?;
    Ok(())
}

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

/// True when the delivery stream `stream` exists.
///
/// # Errors
/// AWS failures other than "not found", classified.
pub async fn delivery_stream_exists(config: &SdkConfig, stream: &str) -> Result<bool> {
    let firehose = aws_sdk_firehose::Client::new(config);
    match firehose
        .describe_delivery_stream()
        .delivery_stream_name(stream)
        .send()
        .await
    {
        Ok(_) => Ok(true),
        Err(e) => match classify("firehose", "delivery stream", e) {
            e if e.kind() == ErrorKind::NotFound => Ok(false),
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

/// Creates the bucket that holds Terraform state unless it exists, and makes sure it is
/// versioned (an older state can be restored) and closed to the public; returns true if it
/// created it.
///
/// # Errors
/// AWS failures, classified.
pub async fn ensure_state_bucket(config: &SdkConfig, bucket: &str) -> Result<bool> {
    let created = ensure_bucket(config, bucket).await?;
    let s3 = crate::s3_client(config);
    s3.put_bucket_versioning()
        .bucket(bucket)
        .versioning_configuration(
            VersioningConfiguration::builder()
                .status(BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .map_err(|e| classify("s3", "bucket", e))?;
    s3.put_public_access_block()
        .bucket(bucket)
        .public_access_block_configuration(
            PublicAccessBlockConfiguration::builder()
                .block_public_acls(true)
                .block_public_policy(true)
                .ignore_public_acls(true)
                .restrict_public_buckets(true)
                .build(),
        )
        .send()
        .await
        .map_err(|e| classify("s3", "bucket", e))?;
    Ok(created)
}
