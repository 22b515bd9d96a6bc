use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::types::{EnvironmentName, HostIdentifier, LabelName, NodeId, NodeKey, UnixSeconds};

/// An enrolled osquery agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Node {
    /// The server's stable id of this node; kept across re-enrollment of the same host.
    pub id: NodeId,
    /// The current node key; the previous one stops working when the host re-enrolls.
    pub key: NodeKey,
    /// The environment the enroll secret belonged to.
    pub environment: EnvironmentName,
    /// osquery's `--host_identifier` value.
    pub host_identifier: HostIdentifier,
    /// The hardware UUID from `host_details.system_info.uuid`, or `""` when the agent sent none.
    pub hardware_uuid: String,
    /// osquery's platform bitmask as sent (`"9"` Linux, `"21"` macOS, `"2"` Windows).
    pub platform_type: String,
    /// The platform name derived from `platform_type` (see [`crate::types::platform_name`]).
    pub platform: String,
    /// The `host_details` object sent at the last enroll (a JSON object).
    pub host_details: serde_json::Value,
    /// When this node first enrolled.
    pub enrolled_at: UnixSeconds,
    /// When the node last enrolled or made an authenticated request (coarse; may lag).
    pub last_seen: UnixSeconds,
    /// The labels it is a member of, ordered by name (see [`crate::store::LabelStore`]).
    #[serde(default)]
    pub labels: Vec<LabelName>,
    /// Enrolled into an environment that approves enrollments, and not approved yet: it gets
    /// no schedule, no live queries and no carves, and its logs are refused.
    #[serde(default)]
    pub pending: bool,
}

impl Node {
    /// The osquery version from `host_details.osquery_info.version`, if the agent sent it.
    pub fn osquery_version(&self) -> Option<&str> {
        self.host_details
            .pointer("/osquery_info/version")
            .and_then(|v| v.as_str())
    }

    /// The hostname from `host_details.system_info.hostname`, if the agent sent it.
    pub fn hostname(&self) -> Option<&str> {
        self.host_details
            .pointer("/system_info/hostname")
            .and_then(|v| v.as_str())
    }

    /// The hardware serial from `host_details.system_info.hardware_serial`, if the agent
    /// sent it.
    pub fn hardware_serial(&self) -> Option<&str> {
        self.host_details
            .pointer("/system_info/hardware_serial")
            .and_then(|v| v.as_str())
    }

    /// Whether `name` names this node exactly: its id, host identifier, hostname, hardware
    /// uuid (in any case) or hardware serial.
    pub fn is_named(&self, name: &str) -> bool {
        self.id.as_str() == name
            || self.host_identifier.as_str() == name
            || self.hostname() == Some(name)
            || (!self.hardware_uuid.is_empty() && self.hardware_uuid.eq_ignore_ascii_case(name))
            || self.hardware_serial() == Some(name)
    }
}

/// The part of stored host details (`text`, a JSON object) that a node list shows:
/// `system_info.hostname`, `system_info.hardware_serial` and `osquery_info.version` when they
/// are strings, read without
/// building the rest, so a page of nodes costs no more than its rows' text.
///
/// # Errors
/// `Backend` when `text` is not a JSON object.
pub fn host_details_summary(text: &str) -> Result<serde_json::Value> {
    #[derive(serde::Deserialize)]
    struct Details {
        system_info: Option<SystemInfo>,
        osquery_info: Option<OsqueryInfo>,
    }
    #[derive(serde::Deserialize)]
    struct SystemInfo {
        hostname: Option<serde_json::Value>,
        hardware_serial: Option<serde_json::Value>,
    }
    #[derive(serde::Deserialize)]
    struct OsqueryInfo {
        version: Option<serde_json::Value>,
    }
    let details: Details = serde_json::from_str(text)
        .map_err(|e| crate::error::Error::backend("store", format!("corrupt host details: {e}")))?;
    let mut summary = serde_json::Map::new();
    if let Some(system_info) = details.system_info {
        let mut kept = serde_json::Map::new();
        for (key, value) in [
            ("hostname", system_info.hostname),
            ("hardware_serial", system_info.hardware_serial),
        ] {
            if let Some(value) = value.filter(serde_json::Value::is_string) {
                kept.insert(key.into(), value);
            }
        }
        if !kept.is_empty() {
            summary.insert("system_info".into(), serde_json::Value::Object(kept));
        }
    }
    if let Some(version) = details
        .osquery_info
        .and_then(|o| o.version)
        .filter(serde_json::Value::is_string)
    {
        summary.insert(
            "osquery_info".into(),
            serde_json::json!({ "version": version }),
        );
    }
    Ok(serde_json::Value::Object(summary))
}

/// What an enroll request asks the store to record.
#[derive(Debug, Clone)]
pub struct NewNode {
    /// The id to use if this is a host the store has not seen.
    pub id: NodeId,
    /// The freshly generated key.
    pub key: NodeKey,
    /// See [`Node::environment`].
    pub environment: EnvironmentName,
    /// See [`Node::host_identifier`].
    pub host_identifier: HostIdentifier,
    /// See [`Node::hardware_uuid`].
    pub hardware_uuid: String,
    /// See [`Node::platform_type`].
    pub platform_type: String,
    /// See [`Node::platform`].
    pub platform: String,
    /// See [`Node::host_details`].
    pub host_details: serde_json::Value,
    /// The enroll time.
    pub now: UnixSeconds,
    /// Whether a node created by this enroll awaits approval (see [`Node::pending`]); a host
    /// enrolling again keeps its node's state.
    pub pending: bool,
}

/// A page request for [`NodeStore::list_nodes`]; every filter given must hold.
#[derive(Debug, Clone, Default)]
pub struct ListNodes {
    /// Only nodes of this environment.
    pub environment: Option<EnvironmentName>,
    /// Only nodes of this platform name (`linux`, `darwin`, ...).
    pub platform: Option<String>,
    /// Only nodes whose host identifier or hostname contains this text (case-insensitive).
    pub search: Option<String>,
    /// Only nodes seen at or after this time.
    pub seen_since: Option<UnixSeconds>,
    /// Only nodes this names exactly (see [`Node::is_named`]).
    pub named: Option<String>,
    /// Only members of this label.
    pub label: Option<LabelName>,
    /// Only nodes awaiting approval (`true`) or only approved ones (`false`).
    pub pending: Option<bool>,
    /// Only nodes whose id sorts after this one (the cursor of the previous page).
    pub after: Option<NodeId>,
    /// At most this many nodes (0 means the backend's default page size of 100).
    pub limit: usize,
}

impl ListNodes {
    /// Whether `node` passes every filter of this request (its page `limit` aside): the one
    /// reading of the filters for backends that filter in code.
    pub fn matches(&self, node: &Node) -> bool {
        self.environment
            .as_ref()
            .is_none_or(|e| &node.environment == e)
            && self.after.as_ref().is_none_or(|after| &node.id > after)
            && self.platform.as_ref().is_none_or(|p| &node.platform == p)
            && self.seen_since.is_none_or(|t| node.last_seen >= t)
            && self.named.as_ref().is_none_or(|name| node.is_named(name))
            && self.label.as_ref().is_none_or(|l| node.labels.contains(l))
            && self.pending.is_none_or(|p| node.pending == p)
            && self.search.as_ref().is_none_or(|text| {
                let text = text.to_lowercase();
                node.host_identifier.as_str().to_lowercase().contains(&text)
                    || node
                        .hostname()
                        .is_some_and(|h| h.to_lowercase().contains(&text))
            })
    }
}

/// The most ids one [`NodeStore::nodes_by_ids`] call takes.
pub const MAX_NODES_BY_IDS: usize = 1000;

/// A node key that stopped working (its node was deleted or re-keyed), or whose node changed
/// in what the agent endpoints use (its labels, its approval): a copy cached under it is
/// stale.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangedKey {
    /// The key.
    pub key: NodeKey,
    /// When it stopped working or its node changed, in unix milliseconds.
    pub changed_at_ms: i64,
}

/// Enrolled nodes.
///
/// # Contract
/// - A node key identifies at most one node; a deleted or re-keyed node's old key finds nothing.
/// - Every key a delete or re-key stops working, and the key of every node whose labels
///   change or that is approved, is listed by [`NodeStore::changed_keys_since`] for at least a day, so instances
///   that cache nodes by key can drop them.
/// - A node's identity is (environment, host identifier, hardware uuid): enrolling the same
///   identity again re-keys the existing node instead of creating a second one. Concurrent
///   enrolls of one identity leave exactly one node, holding one of the keys.
///
/// # Errors
/// `NotFound` for an unknown key or id; `Unavailable` for transient backend failures;
/// `Backend` otherwise.
#[async_trait]
pub trait NodeStore: Send + Sync + std::fmt::Debug + 'static {
    /// Creates the node, or re-keys the node with the same identity (keeping its id and
    /// `enrolled_at`, replacing key, platform and host details). Returns the stored node.
    async fn enroll_node(&self, node: NewNode) -> Result<Node>;

    /// The node holding `key`.
    async fn node_by_key(&self, key: &NodeKey) -> Result<Node>;

    /// The node with `id`.
    async fn node_by_id(&self, id: &NodeId) -> Result<Node>;

    /// Nodes ordered by id, one page at a time. Their `host_details` hold only what a list
    /// shows, [`host_details_summary`]; [`NodeStore::node_by_id`] has all of them.
    async fn list_nodes(&self, request: &ListNodes) -> Result<Vec<Node>>;

    /// The nodes with these ids that exist, ordered by id, with host details as
    /// [`NodeStore::list_nodes`] gives them. At most [`MAX_NODES_BY_IDS`] ids a call.
    async fn nodes_by_ids(&self, ids: &[NodeId]) -> Result<Vec<Node>>;

    /// Replaces the node's `host_details` whole (what its agent reports now); its key,
    /// identity and last-seen time stay.
    async fn update_host_details(&self, id: &NodeId, details: &serde_json::Value) -> Result<()>;

    /// Approves a node awaiting approval (see [`Node::pending`]); returns whether it was
    /// pending.
    async fn approve_node(&self, id: &NodeId) -> Result<bool>;

    /// Deletes the node with its pending query deliveries; its key stops working at once.
    async fn delete_node(&self, id: &NodeId) -> Result<()>;

    /// Keys revoked (by [`NodeStore::delete_node`] or a re-key), or whose node's labels
    /// changed or that was approved, at or after `since_ms` (unix milliseconds), oldest first.
    async fn changed_keys_since(&self, since_ms: i64) -> Result<Vec<ChangedKey>>;

    /// Sets `last_seen` for many nodes at once (never moving it backwards). Unknown ids are
    /// ignored: a node may be deleted between a request and the flush.
    async fn record_last_seen(&self, seen: &[(NodeId, UnixSeconds)]) -> Result<()>;
}

#[cfg(test)]
mod tests {
    use super::host_details_summary;
    use serde_json::json;

    #[test]
    fn the_summary_keeps_hostname_and_version_only() {
        let text = json!({
            "system_info": {"hostname": "web-1", "uuid": "U", "cpu_brand": "x"},
            "osquery_info": {"version": "5.23.1", "pid": 7},
            "os_version": {"name": "Debian"},
            "platform_info": {"vendor": "v"}
        })
        .to_string();
        assert_eq!(
            host_details_summary(&text).unwrap(),
            json!({"system_info": {"hostname": "web-1"}, "osquery_info": {"version": "5.23.1"}})
        );
        let odd = json!({"system_info": {"hostname": [0, 0, 0]}, "osquery_info": {}}).to_string();
        assert_eq!(host_details_summary(&odd).unwrap(), json!({}));
        assert_eq!(host_details_summary("{}").unwrap(), json!({}));
        assert!(host_details_summary("[1]").is_err());
    }
}
