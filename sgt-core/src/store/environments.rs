use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::types::{EnvironmentName, UnixSeconds};

/// An environment: a group of nodes sharing one osquery config and its own enroll secrets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Environment {
    /// The environment's name.
    pub name: EnvironmentName,
    /// The osquery config document served to this environment's nodes (a JSON object).
    pub config: serde_json::Value,
    /// When the environment was created.
    pub created_at: UnixSeconds,
    /// When the config was last replaced.
    pub config_updated_at: UnixSeconds,
}

/// Environments and their config documents.
///
/// # Contract
/// - Names are unique. The config is stored and returned as the same JSON value.
/// - `put_config` replaces the whole document atomically; readers see the old or the new one.
///
/// # Errors
/// `NotFound` for an unknown environment; `AlreadyExists` when creating an existing name;
/// `Unavailable` / `Backend` for backend failures.
#[async_trait]
pub trait EnvironmentStore: Send + Sync + std::fmt::Debug + 'static {
    /// Creates an environment with its initial config.
    async fn create_environment(&self, environment: &Environment) -> Result<()>;

    /// The environment called `name`.
    async fn environment(&self, name: &EnvironmentName) -> Result<Environment>;

    /// All environments, ordered by name.
    async fn list_environments(&self) -> Result<Vec<Environment>>;

    /// Replaces the config of `name`, recording `now` as its update time.
    async fn put_config(
        &self,
        name: &EnvironmentName,
        config: &serde_json::Value,
        now: UnixSeconds,
    ) -> Result<()>;

    /// Deletes the environment. Its nodes are not deleted.
    async fn delete_environment(&self, name: &EnvironmentName) -> Result<()>;
}
