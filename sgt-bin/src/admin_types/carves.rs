//! File carves.

use serde::{Deserialize, Serialize};

use sgt_core::store::CarveStatus;
use sgt_core::types::{NodeId, UnixSeconds};

/// `POST /carves`: a request to carve files off a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CarveRequest {
    /// The node.
    pub node_id: NodeId,
    /// An absolute path; `%` makes it a SQL `LIKE` pattern (e.g. `/var/log/%.log`).
    pub path: String,
}

/// `GET /carves?…`: an optional node and paging.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CarveListParams {
    /// Only this node's carves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_id: Option<String>,
    /// The previous page's `next_cursor`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// Page size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
}

/// A carve as the admin API shows it: everything but its session id, which is the upload
/// capability and is never shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CarveView {
    /// The carve's id in the admin API (derived from its session id, which it does not
    /// reveal).
    pub id: String,
    /// The uploading node.
    pub node_id: NodeId,
    /// osquery's carve GUID.
    pub carve_guid: String,
    /// osquery's request id.
    pub request_id: String,
    /// Number of blocks to expect.
    pub block_count: u64,
    /// Size of every block but possibly the last.
    pub block_size: u64,
    /// Total size of the archive.
    pub carve_size: u64,
    /// When the upload started.
    pub created_at: UnixSeconds,
    /// Where it stands.
    pub status: CarveStatus,
    /// Distinct blocks received so far.
    pub blocks_received: u64,
    /// Percent of blocks received.
    pub progress_percent: u64,
    /// SHA-256 (hex) of the assembled archive, once complete.
    pub sha256: Option<String>,
    /// When it completed or failed.
    pub finished_at: Option<UnixSeconds>,
}
