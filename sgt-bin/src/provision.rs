//! `sgt provision`: creates what the settings' backends need, idempotently: DynamoDB tables
//! with their indexes and TTL, buckets, the Firehose delivery stream; then the `default`
//! environment, its enroll secret (an SSM parameter when secrets live there) and user `admin`.
//! Run it once per deployment before starting instances, and again after an upgrade; what
//! exists is left alone.

use std::sync::Arc;

use sgt_core::admin::AdminService;

use crate::backends::{build_backends, provision_aws};
use crate::bootstrap::{bootstrap, bootstrap_admin};
use crate::settings::Settings;

/// What `sgt provision` needs beyond the server settings.
#[derive(Debug, Clone, Default)]
pub struct ProvisionOptions {
    /// The bucket a new Firehose delivery stream writes into (created if missing).
    pub log_bucket: Option<String>,
    /// The IAM role a new Firehose delivery stream uses to write into `log_bucket`.
    pub firehose_role_arn: Option<String>,
}

/// Provisions everything; returns one line per thing created or found.
///
/// # Errors
/// AWS or backend failures, a Firehose stream to create without its bucket and role, or an
/// AWS backend in a build without the `aws` feature.
pub async fn provision(
    settings: &Settings,
    options: &ProvisionOptions,
) -> anyhow::Result<Vec<String>> {
    let mut report = provision_aws(settings, options).await?;
    if !settings.data_dir.exists() {
        crate::serve::create_private_dir(&settings.data_dir)?;
    }
    let backends = build_backends(settings).await?;
    let secret_file = std::path::absolute(settings.enroll_secret_file())?;
    let created = bootstrap(&backends, &secret_file).await?;
    report.push(if created.environment {
        "created environment \"default\" with the default osquery config".to_owned()
    } else {
        "environment \"default\" exists".to_owned()
    });
    if created.enroll_secret {
        report.push(format!(
            "created enroll secret for environment \"default\": {}",
            secret_file.display()
        ));
    }
    let admin = Arc::new(AdminService::new(backends));
    let password_file = std::path::absolute(settings.admin_password_file())?;
    if bootstrap_admin(&admin, &password_file).await? {
        report.push(format!(
            "created user \"admin\"; its password is in {}",
            password_file.display()
        ));
    }
    Ok(report)
}
