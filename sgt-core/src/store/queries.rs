use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::types::{NodeId, QueryId, UnixSeconds};

/// A distributed (live) query to be delivered to a set of nodes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewQuery {
    /// The id agents see and answer with.
    pub id: QueryId,
    /// The SQL to run.
    pub sql: String,
    /// The nodes that should receive it.
    pub node_ids: Vec<NodeId>,
    /// When it was created.
    pub created_at: UnixSeconds,
    /// After this time it is no longer delivered.
    pub expires_at: Option<UnixSeconds>,
}

/// A stored distributed query.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DistributedQuery {
    /// See [`NewQuery::id`].
    pub id: QueryId,
    /// See [`NewQuery::sql`].
    pub sql: String,
    /// See [`NewQuery::created_at`].
    pub created_at: UnixSeconds,
    /// See [`NewQuery::expires_at`].
    pub expires_at: Option<UnixSeconds>,
}

/// A query handed to a node by `distributed/read`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingQuery {
    /// The query id.
    pub id: QueryId,
    /// The SQL.
    pub sql: String,
}

/// Where a query stands for one targeted node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// Not yet handed to the node.
    Pending,
    /// Handed to the node; no answer yet.
    Delivered,
    /// The node answered with status 0.
    Succeeded,
    /// The node answered with a non-zero status.
    Failed,
}

impl DeliveryState {
    /// The stable lowercase name used in storage and APIs.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Succeeded => "succeeded",
            DeliveryState::Failed => "failed",
        }
    }

    /// Parses [`DeliveryState::as_str`] output.
    pub fn parse(value: &str) -> Option<Self> {
        Some(match value {
            "pending" => DeliveryState::Pending,
            "delivered" => DeliveryState::Delivered,
            "succeeded" => DeliveryState::Succeeded,
            "failed" => DeliveryState::Failed,
            _ => return None,
        })
    }
}

/// One node's state for one query.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueryTarget {
    /// The node.
    pub node_id: NodeId,
    /// Its state.
    pub state: DeliveryState,
    /// When the state last changed.
    pub updated_at: UnixSeconds,
}

/// What a node answered for one query in `distributed/write`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueryResult {
    /// The query answered.
    pub query_id: QueryId,
    /// osquery's status: 0 success, anything else failure.
    pub status: i64,
    /// The result rows (JSON objects, usually of strings).
    pub rows: Vec<serde_json::Value>,
    /// The error text on failure (`""` or absent on success and on agents before 4.4).
    pub message: Option<String>,
    /// osquery's per-query stats object (5.8+), if sent.
    pub stats: Option<serde_json::Value>,
    /// When the server received it.
    pub received_at: UnixSeconds,
}

/// A stored result with the node it came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeQueryResult {
    /// The answering node.
    pub node_id: NodeId,
    /// What it answered.
    pub result: QueryResult,
}

/// Distributed queries, their per-node delivery state, and their results.
///
/// # Contract
/// - [`QueryStore::take_pending_queries`] hands each (query, node) to the node at most once,
///   even when called concurrently, and never after the query expired.
/// - [`QueryStore::record_result`] is idempotent: a resent answer replaces the earlier one.
///
/// # Errors
/// `AlreadyExists` for a duplicate query id; `NotFound` for an unknown query or a node the query
/// does not target; `Unavailable` / `Backend` for backend failures.
#[async_trait]
pub trait QueryStore: Send + Sync + std::fmt::Debug + 'static {
    /// Stores a query and makes it pending for each of its nodes.
    async fn create_query(&self, query: &NewQuery) -> Result<()>;

    /// The query with `id`.
    async fn query(&self, id: &QueryId) -> Result<DistributedQuery>;

    /// The queries pending for `node` that have not expired at `now`, marking them delivered.
    async fn take_pending_queries(
        &self,
        node: &NodeId,
        now: UnixSeconds,
    ) -> Result<Vec<PendingQuery>>;

    /// Stores `node`'s answer and marks its delivery succeeded or failed.
    async fn record_result(&self, node: &NodeId, result: &QueryResult) -> Result<()>;

    /// Every targeted node's state, ordered by node id.
    async fn query_targets(&self, id: &QueryId) -> Result<Vec<QueryTarget>>;

    /// Every stored answer, ordered by node id.
    async fn query_results(&self, id: &QueryId) -> Result<Vec<NodeQueryResult>>;
}
