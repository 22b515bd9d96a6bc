//! Enrolled nodes.

use serde::{Deserialize, Serialize};

use sgt_core::types::{EnvironmentName, HostIdentifier, LabelName, NodeId, UnixSeconds};

/// `GET /nodes?…`: filters and paging; absent filters match every node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeListParams {
    /// Only this environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// Only this platform.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    /// Only hosts whose identifier or hostname contains this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search: Option<String>,
    /// Only nodes seen at or after this time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seen_since: Option<UnixSeconds>,
    /// Only nodes this names exactly: a node id, host identifier, hostname, hardware uuid or
    /// hardware serial.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Only members of this label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Only nodes awaiting enrollment approval (`true`) or only approved ones (`false`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<bool>,
    /// The previous page's `next_cursor`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// Page size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
}

/// A node as shown to operators (never its key).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeView {
    /// Id.
    pub id: NodeId,
    /// Environment.
    pub environment: EnvironmentName,
    /// osquery's host identifier.
    pub host_identifier: HostIdentifier,
    /// Hostname from its host details.
    pub hostname: Option<String>,
    /// Platform name.
    pub platform: String,
    /// osquery version.
    pub osquery_version: Option<String>,
    /// First enrolled.
    pub enrolled_at: UnixSeconds,
    /// Last seen (coarse).
    pub last_seen: UnixSeconds,
    /// Seen within its environment's online window: twice the config's
    /// `distributed_interval` plus a minute, plus how coarse `last_seen` is.
    pub online: bool,
    /// The labels it is a member of.
    #[serde(default)]
    pub labels: Vec<LabelName>,
    /// Awaiting enrollment approval: it gets no schedule, queries or carves, and its logs
    /// wait on the host.
    #[serde(default)]
    pub pending: bool,
    /// Everything the agent reported at enroll (in `GET /nodes/{id}` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_details: Option<serde_json::Value>,
}
