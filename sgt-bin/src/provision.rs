//! `sgt provision`: creates what the settings' backends need, idempotently: DynamoDB tables
//! with their indexes and TTL, buckets, the Firehose delivery stream; then the `default`
//! environment, its enroll secret (an SSM parameter when secrets live there) and user `admin`.
//! Run it once per deployment before starting instances, and again after an upgrade; what
//! exists is left alone.

pub use crate::backends::ProvisionOptions;

use crate::backends::{build_backends, provision_aws};
use crate::bootstrap::{bootstrap, bootstrap_admin, create_private_dir};
use crate::server::App;
use crate::settings::Settings;

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
        create_private_dir(&settings.data_dir)?;
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
    let app = App::new(backends, &settings.service_limits);
    let password_file = std::path::absolute(settings.admin_password_file())?;
    if bootstrap_admin(app.admin(), &password_file).await? {
        report.push(format!(
            "created user \"admin\"; its password is in {}",
            password_file.display()
        ));
    }
    Ok(report)
}
