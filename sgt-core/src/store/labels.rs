use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::types::{EnvironmentName, LabelName, NodeId, UnixSeconds};

/// A named group of nodes, to aim campaigns and packs at.
///
/// Manual labels have members added and removed by hand; dynamic labels have a `query`, and
/// a node in scope is a member while its agent's answer to that query has at least one row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Label {
    /// Its name, unique across environments.
    pub name: LabelName,
    /// The environment whose nodes it may hold; `None`: every environment's.
    pub environment: Option<EnvironmentName>,
    /// The SQL deciding membership, for a dynamic label; `None` for a manual label.
    pub query: Option<String>,
    /// The platform name (`linux`, `darwin`, ...) of the nodes a dynamic label's query is
    /// asked of; `None`: every platform.
    pub platform: Option<String>,
    /// What it groups, for people (may be empty).
    pub description: String,
    /// When it was first put.
    pub created_at: UnixSeconds,
    /// When it was last put.
    pub updated_at: UnixSeconds,
    /// Who put it last.
    pub updated_by: String,
}

impl Label {
    /// Whether membership is decided by the nodes' answers to a query.
    pub fn is_dynamic(&self) -> bool {
        self.query.is_some()
    }

    /// Whether a node of `environment` and `platform` may be a member: it is in the label's
    /// environment (if it has one) and, for a dynamic label with a platform, of that platform.
    pub fn covers(&self, environment: &EnvironmentName, platform: &str) -> bool {
        self.environment.as_ref().is_none_or(|e| e == environment)
            && (!self.is_dynamic() || self.platform.as_deref().is_none_or(|p| p == platform))
    }
}

/// The most labels a store holds.
pub const MAX_LABELS: usize = 1000;

/// Labels and which nodes are their members.
///
/// # Contract
/// - Names are unique. `put_label` creates the label or replaces its definition whole,
///   atomically, except `created_at`, which stays the first put's; members stay.
/// - A node's labels are listed in [`crate::store::Node::labels`] wherever the node is read.
/// - Changing a node's membership lists the node's key in
///   [`crate::store::NodeStore::changed_keys_since`], so instances that cache nodes re-read it.
/// - Deleting a label removes every membership in it; deleting a node removes its
///   memberships.
///
/// # Errors
/// `NotFound` for an unknown label or node; `Unavailable` / `Backend` for backend failures.
#[async_trait]
pub trait LabelStore: Send + Sync + std::fmt::Debug + 'static {
    /// Creates or replaces `label`; returns it as stored.
    async fn put_label(&self, label: &Label) -> Result<Label>;

    /// The label called `name`.
    async fn label(&self, name: &LabelName) -> Result<Label>;

    /// Every label, ordered by name.
    async fn list_labels(&self) -> Result<Vec<Label>>;

    /// Deletes the label called `name` and all its memberships.
    async fn delete_label(&self, name: &LabelName) -> Result<()>;

    /// Makes node `node` a member of `label` (`member`) or not; returns whether that changed
    /// anything. Members are listed by [`crate::store::ListNodes::label`].
    async fn set_label_member(
        &self,
        label: &LabelName,
        node: &NodeId,
        member: bool,
    ) -> Result<bool>;
}
