//! Enroll secrets: which secret puts an agent in which environment.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::types::{EnvironmentName, SecretValue, UnixSeconds};

/// One enroll secret. Several may be valid for one environment at once, so a new secret can
/// be rolled out before the old one is revoked.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EnrollSecret {
    /// A non-secret handle for listing and revoking (`[A-Za-z0-9_-]`).
    pub id: String,
    /// The environment an agent presenting this secret joins.
    pub environment: EnvironmentName,
    /// The secret itself.
    pub value: SecretValue,
    /// When it was created.
    pub created_at: UnixSeconds,
    /// After this time it no longer enrolls anyone.
    pub expires_at: Option<UnixSeconds>,
}

impl EnrollSecret {
    /// True when the secret enrolls agents at `now`.
    pub fn is_valid_at(&self, now: UnixSeconds) -> bool {
        self.expires_at.is_none_or(|t| now < t)
    }
}

/// Where enroll secrets live.
///
/// # Contract
/// - `add` is durable when it returns; `revoke` takes effect for every later `list`.
/// - `list` returns every secret not revoked (expired ones included: callers check expiry).
///
/// # Errors
/// `AlreadyExists` for a duplicate id; `NotFound` when revoking an unknown id;
/// `Unavailable` / `Backend` for backend failures.
#[async_trait]
pub trait SecretStore: Send + Sync + std::fmt::Debug + 'static {
    /// Every secret that has not been revoked.
    async fn list_enroll_secrets(&self) -> Result<Vec<EnrollSecret>>;

    /// Adds a secret.
    async fn add_enroll_secret(&self, secret: &EnrollSecret) -> Result<()>;

    /// Revokes the secret with `id`: it stops enrolling agents at once.
    async fn revoke_enroll_secret(&self, id: &str) -> Result<()>;
}
