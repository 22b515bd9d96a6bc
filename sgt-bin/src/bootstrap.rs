//! First start: the `default` environment with its config, and an enroll secret for it.

use std::path::Path;

use anyhow::Context;
use sgt_core::secrets::EnrollSecret;
use sgt_core::store::Environment;
use sgt_core::types::{now_unix, EnvironmentName, SecretValue};
use sgt_core::{Backends, ErrorKind};

use crate::server::services::config_doc::default_config;

/// What bootstrap created, for the startup message.
#[derive(Debug, Default)]
pub struct Created {
    /// The `default` environment was created.
    pub environment: bool,
    /// An enroll secret was created and written to the enroll secret file.
    pub enroll_secret: bool,
    /// User `admin` was created and its password written to the admin password file.
    pub admin_user: bool,
}

/// Creates user `admin` with a random password written to `password_file` (mode 0600),
/// when the store has no user yet and the file does not exist.
///
/// # Errors
/// Backend failures, or the file cannot be written.
pub async fn bootstrap_admin(
    admin: &crate::server::services::admin::AdminService,
    password_file: &Path,
) -> anyhow::Result<bool> {
    if password_file.exists() || admin.has_users().await? {
        return Ok(false);
    }
    let password = sgt_core::types::random_hex(12);
    write_secret_file(password_file, &password)?;
    let username = sgt_core::types::Username::parse("admin")?;
    Ok(admin.ensure_first_admin(&username, &password).await?)
}

/// Creates what a fresh data directory lacks; leaves everything that exists alone.
///
/// The enroll secret is created only when the `default` environment has no secret and the
/// file does not exist: a secret an operator revoked is not brought back by a restart.
///
/// # Errors
/// Backend failures, or the secret file cannot be written.
pub async fn bootstrap(backends: &Backends, enroll_secret_file: &Path) -> anyhow::Result<Created> {
    let mut created = Created::default();
    let name = EnvironmentName::default_name();
    let now = now_unix();
    match backends.store.environment(&name).await {
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => {
            backends
                .store
                .create_environment(&Environment {
                    name: name.clone(),
                    config: default_config(),
                    created_at: now,
                    config_updated_at: now,
                    config_version: 1,
                    settings: Default::default(),
                })
                .await?;
            created.environment = true;
        }
        Err(e) => return Err(e.into()),
    }
    let has_secret = backends
        .secrets
        .list_enroll_secrets()
        .await?
        .iter()
        .any(|s| s.environment == name);
    if !has_secret && !enroll_secret_file.exists() {
        let secret = EnrollSecret {
            id: format!("initial-{}", sgt_core::types::random_hex(4)),
            environment: name,
            value: SecretValue::generate(),
            created_at: now,
            expires_at: None,
        };
        write_secret_file(enroll_secret_file, secret.value.expose())?;
        backends.secrets.add_enroll_secret(&secret).await?;
        created.enroll_secret = true;
    }
    Ok(created)
}

fn write_secret_file(path: &Path, secret: &str) -> anyhow::Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(secret.as_bytes())?;
    file.sync_all()?;
    Ok(())
}

/// Creates `dir` (and parents) readable only by its owner: it holds node keys and secrets.
pub(crate) fn create_private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}
