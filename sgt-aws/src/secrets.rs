//! Enroll secrets as SecureString parameters in SSM Parameter Store.
//!
//! Each secret is one parameter `<prefix>/enroll-secrets/<id>` holding JSON (environment,
//! value, creation and expiry), so old and new secrets overlap during a rotation. They are
//! read when opened and then refreshed on a timer: requests read memory, never SSM.

use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_ssm::types::ParameterType;
use serde::{Deserialize, Serialize};
use sgt_core::secrets::{EnrollSecret, SecretStore};
use sgt_core::types::{EnvironmentName, SecretValue, UnixSeconds};
use sgt_core::{Error, Result};

use crate::errors::classify;

const BACKEND: &str = "ssm";

/// The SSM path under which the secrets of deployment `prefix` (as in `ssm:///<prefix>`) live,
/// one parameter each: `/<prefix>/enroll-secrets`.
pub fn enroll_secrets_path(prefix: &str) -> String {
    format!("/{}/enroll-secrets", prefix.trim_matches('/'))
}

#[derive(Serialize, Deserialize)]
struct StoredSecret {
    environment: EnvironmentName,
    value: String,
    created_at: UnixSeconds,
    expires_at: Option<UnixSeconds>,
}

/// Enroll secrets in SSM, cached in memory and refreshed on a timer.
#[derive(Debug)]
pub struct SsmSecrets {
    client: aws_sdk_ssm::Client,
    path: String,
    cache: RwLock<Vec<EnrollSecret>>,
}

impl SsmSecrets {
    /// Opens the secrets under `prefix` (e.g. `/sgt/prod`), reads them all, and refreshes them
    /// every `refresh` until the returned store is dropped.
    ///
    /// # Errors
    /// The first read's failure.
    pub async fn open(
        client: aws_sdk_ssm::Client,
        prefix: &str,
        refresh: Duration,
    ) -> Result<Arc<SsmSecrets>> {
        let secrets = Arc::new(SsmSecrets {
            client,
            path: enroll_secrets_path(prefix),
            cache: RwLock::new(Vec::new()),
        });
        secrets.reload().await?;
        let weak: Weak<SsmSecrets> = Arc::downgrade(&secrets);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(refresh);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(secrets) = weak.upgrade() else {
                    return;
                };
                if let Err(e) = secrets.reload().await {
                    tracing::warn!(error = %e, "enroll secrets not refreshed from ssm; keeping the last ones read");
                }
            }
        });
        Ok(secrets)
    }

    /// [`SsmSecrets::open`] with a client built from the process's one SDK configuration.
    ///
    /// # Errors
    /// The first read's failure.
    pub async fn open_with(
        config: &aws_config::SdkConfig,
        prefix: &str,
        refresh: Duration,
    ) -> Result<Arc<SsmSecrets>> {
        Self::open(aws_sdk_ssm::Client::new(config), prefix, refresh).await
    }

    /// Reads every secret from SSM into the cache.
    ///
    /// # Errors
    /// SSM failures; the cache is left as it was.
    pub async fn reload(&self) -> Result<()> {
        let mut secrets = Vec::new();
        let mut pages = self
            .client
            .get_parameters_by_path()
            .path(&self.path)
            .recursive(true)
            .with_decryption(true)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| classify(BACKEND, "enroll secrets", e))?;
            for parameter in page.parameters() {
                let (Some(name), Some(value)) = (parameter.name(), parameter.value()) else {
                    continue;
                };
                let id = name.rsplit('/').next().unwrap_or_default().to_owned();
                match serde_json::from_str::<StoredSecret>(value) {
                    Ok(stored) => match SecretValue::new(stored.value) {
                        Ok(value) => secrets.push(EnrollSecret {
                            id,
                            environment: stored.environment,
                            value,
                            created_at: stored.created_at,
                            expires_at: stored.expires_at,
                        }),
                        Err(_) => tracing::warn!(parameter = name, "empty enroll secret ignored"),
                    },
                    Err(_) => tracing::warn!(
                        parameter = name,
                        "malformed enroll secret parameter ignored"
                    ),
                }
            }
        }
        secrets.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        *self.cache_mut() = secrets;
        Ok(())
    }

    fn cache_mut(&self) -> std::sync::RwLockWriteGuard<'_, Vec<EnrollSecret>> {
        self.cache.write().unwrap_or_else(|e| e.into_inner())
    }

    fn parameter(&self, id: &str) -> Result<String> {
        if id.is_empty()
            || id.len() > 128
            || !id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(Error::invalid_input(
                "enroll secret id must be [A-Za-z0-9_-]",
            ));
        }
        Ok(format!("{}/{id}", self.path))
    }
}

#[async_trait]
impl SecretStore for SsmSecrets {
    async fn list_enroll_secrets(&self) -> Result<Vec<EnrollSecret>> {
        Ok(self.cache.read().unwrap_or_else(|e| e.into_inner()).clone())
    }

    async fn add_enroll_secret(&self, secret: &EnrollSecret) -> Result<()> {
        let stored = StoredSecret {
            environment: secret.environment.clone(),
            value: secret.value.expose().to_owned(),
            created_at: secret.created_at,
            expires_at: secret.expires_at,
        };
        let value = serde_json::to_string(&stored).map_err(|e| Error::backend(BACKEND, e))?;
        self.client
            .put_parameter()
            .name(self.parameter(&secret.id)?)
            .value(value)
            .r#type(ParameterType::SecureString)
            .overwrite(false)
            .send()
            .await
            .map_err(|e| classify(BACKEND, "enroll secret", e))?;
        self.cache_mut().push(secret.clone());
        Ok(())
    }

    async fn revoke_enroll_secret(&self, id: &str) -> Result<()> {
        self.client
            .delete_parameter()
            .name(self.parameter(id)?)
            .send()
            .await
            .map_err(|e| classify(BACKEND, "enroll secret", e))?;
        self.cache_mut().retain(|s| s.id != id);
        Ok(())
    }
}
