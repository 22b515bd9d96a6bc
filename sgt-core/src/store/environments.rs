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
    /// The config's revision: 1 when the environment is created, one more at each
    /// replacement. A writer that read revision N replaces the config only if it is still N.
    pub config_version: u64,
    /// How the server treats the environment's nodes.
    #[serde(default)]
    pub settings: EnvironmentSettings,
}

/// How the server treats an environment's nodes, beyond the osquery config it serves them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvironmentSettings {
    /// Nodes not seen for this many days are removed (their agents enroll again when they
    /// come back); `None`: never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_expiry_days: Option<u32>,
    /// Nodes that enroll for the first time await an operator's approval (see
    /// [`crate::store::Node::pending`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub enroll_approval: bool,
}

/// Environments and their config documents.
///
/// # Contract
/// - Names are unique. The config is stored and returned as the same JSON value.
/// - `put_config` replaces the whole document atomically; readers see the old or the new one.
/// - Settings are stored and returned as given; an environment created without them has the
///   defaults.
/// - `put_config` with an expected version replaces the document only if its version is
///   still that one (compare-and-swap), so no concurrent replacement is lost unseen.
///
/// # Errors
/// `NotFound` for an unknown environment; `AlreadyExists` when creating an existing name;
/// `Conflict` when the config's version is not the expected one;
/// `Unavailable` / `Backend` for backend failures.
#[async_trait]
pub trait EnvironmentStore: Send + Sync + std::fmt::Debug + 'static {
    /// Creates an environment with its initial config.
    async fn create_environment(&self, environment: &Environment) -> Result<()>;

    /// The environment called `name`.
    async fn environment(&self, name: &EnvironmentName) -> Result<Environment>;

    /// All environments, ordered by name.
    async fn list_environments(&self) -> Result<Vec<Environment>>;

    /// Replaces the config of `name`, recording `now` as its update time, if its version is
    /// `expected_version` (whatever it is when `None`). Returns the new version.
    async fn put_config(
        &self,
        name: &EnvironmentName,
        config: &serde_json::Value,
        now: UnixSeconds,
        expected_version: Option<u64>,
    ) -> Result<u64>;

    /// Replaces the settings of `name`.
    async fn put_environment_settings(
        &self,
        name: &EnvironmentName,
        settings: &EnvironmentSettings,
    ) -> Result<()>;

    /// Deletes the environment. Its nodes are not deleted.
    async fn delete_environment(&self, name: &EnvironmentName) -> Result<()>;
}
