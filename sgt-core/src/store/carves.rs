use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::types::{CarveSessionId, NodeId, UnixSeconds};

/// A carve upload announced by `carve/start`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewCarve {
    /// The session id handed to the agent.
    pub session_id: CarveSessionId,
    /// The uploading node.
    pub node_id: NodeId,
    /// osquery's `carve_id` (the carve GUID).
    pub carve_guid: String,
    /// osquery's `request_id`.
    pub request_id: String,
    /// Number of blocks to expect.
    pub block_count: u64,
    /// Size of every block but possibly the last.
    pub block_size: u64,
    /// Total size of the archive.
    pub carve_size: u64,
    /// When the carve started.
    pub created_at: UnixSeconds,
}

/// How far a carve has come.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CarveStatus {
    /// Blocks are arriving.
    Receiving,
    /// Every block arrived and the archive is assembled.
    Complete,
    /// Assembly failed.
    Failed,
}

impl CarveStatus {
    /// The stable lowercase name used in storage and APIs.
    pub fn as_str(self) -> &'static str {
        match self {
            CarveStatus::Receiving => "receiving",
            CarveStatus::Complete => "complete",
            CarveStatus::Failed => "failed",
        }
    }

    /// Parses [`CarveStatus::as_str`] output.
    pub fn parse(value: &str) -> Option<Self> {
        Some(match value {
            "receiving" => CarveStatus::Receiving,
            "complete" => CarveStatus::Complete,
            "failed" => CarveStatus::Failed,
            _ => return None,
        })
    }
}

/// A stored carve session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CarveSession {
    /// What `carve/start` announced.
    #[serde(flatten)]
    pub carve: NewCarve,
    /// Where it stands.
    pub status: CarveStatus,
    /// Distinct blocks received so far.
    pub blocks_received: u64,
    /// SHA-256 (hex) of the assembled archive, once complete.
    pub sha256: Option<String>,
    /// When it completed or failed.
    pub finished_at: Option<UnixSeconds>,
}

/// What [`CarveStore::record_carve_block`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockRecorded {
    /// False when this block had been recorded before (a resent request).
    pub newly_recorded: bool,
    /// Distinct blocks received, this one included.
    pub blocks_received: u64,
}

/// Carve sessions and which of their blocks arrived (the block bytes live in the blob store).
///
/// # Contract
/// - Recording a block is idempotent; exactly one call sees `newly_recorded` with
///   `blocks_received == block_count`, even under concurrent calls.
///
/// # Errors
/// `AlreadyExists` for a duplicate session id; `NotFound` for an unknown session;
/// `Unavailable` / `Backend` for backend failures.
#[async_trait]
pub trait CarveStore: Send + Sync + std::fmt::Debug + 'static {
    /// Stores a new session with status [`CarveStatus::Receiving`].
    async fn create_carve(&self, carve: &NewCarve) -> Result<()>;

    /// The session `id`.
    async fn carve(&self, id: &CarveSessionId) -> Result<CarveSession>;

    /// Records that block `block_id` of `id` is stored.
    async fn record_carve_block(&self, id: &CarveSessionId, block_id: u64)
        -> Result<BlockRecorded>;

    /// Marks the session complete with the archive's hash, or failed (`sha256` None).
    async fn finish_carve(
        &self,
        id: &CarveSessionId,
        status: CarveStatus,
        sha256: Option<&str>,
        now: UnixSeconds,
    ) -> Result<()>;

    /// Sessions, newest first, optionally only one node's.
    async fn list_carves(&self, node: Option<&NodeId>) -> Result<Vec<CarveSession>>;
}
