//! Labels and their members.

use serde::{Deserialize, Serialize};

use sgt_core::types::{EnvironmentName, NodeId};

/// `PUT /labels/{name}`: the label's definition.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelBody {
    /// The environment whose nodes it may hold; absent: every environment's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<EnvironmentName>,
    /// The SQL of a dynamic label: a node is a member while its answer has a row. Absent for
    /// a manual label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// For a dynamic label, the platform whose nodes are asked (`linux`, `darwin`, `windows`,
    /// `freebsd`); absent: all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    /// What it groups, for people.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
}

/// `POST /labels/{name}/members`: nodes to add to and remove from a manual label.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MembersChange {
    /// Nodes to make members.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub add: Vec<NodeId>,
    /// Nodes to take out.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove: Vec<NodeId>,
}

/// What a [`MembersChange`] changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MembersChanged {
    /// Nodes that were not members and now are.
    pub added: usize,
    /// Nodes that were members and now are not.
    pub removed: usize,
}
