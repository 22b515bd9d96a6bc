//! sgt-aws: sgt's backends on AWS managed services.
//!
//! - [`DynamoStore`]: the store (nodes, environments, live queries, carves, users, audit) on
//!   DynamoDB tables, no Scan on any request path; see `sgt-aws/README.md` for the design.
//! - [`S3BlobStore`]: carve blocks and archives in S3 (archives assembled by multipart upload).
//! - [`SsmSecrets`]: enroll secrets as SecureString parameters, read at start and refreshed on
//!   a timer, never per request.
//! - [`FirehoseSink`]: log lines through Kinesis Data Firehose, packed into records (or one
//!   line per record for OpenSearch), in AWS-sized batches, retried record by record,
//!   acknowledged only when every record was accepted.
//!
//! [`aws_config_for`] builds the one `SdkConfig` they share; all AWS error classification is
//! in one private module.

mod blobs;
mod config;
pub mod dynamodb;
mod errors;
mod firehose;
pub mod provision;
mod secrets;

pub use aws_config::SdkConfig;
pub use aws_smithy_runtime_api::client::http::SharedHttpClient;
pub use blobs::S3BlobStore;
pub use config::{aws_config_for, s3_client, AwsSettings};
pub use dynamodb::DynamoStore;
pub use firehose::{FirehoseSink, RecordLayout};
pub use secrets::{enroll_secrets_path, SsmSecrets};
