use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::types::{EnvironmentName, LabelName, NodeId, QueryId, UnixSeconds};

/// Which nodes a live query is for.
///
/// A node is targeted when it is listed in `node_ids`, or when the query is broad (`all`, or
/// any `environments`, `platforms` or `labels` given) and the node passes every filter: its
/// environment is in `environments`, its platform in `platforms`, and it is a member of one of
/// `labels` (each list passing when empty). So `environments: [prod], platforms: [linux]`
/// means Linux hosts in prod.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueryTargets {
    /// Every node (still narrowed by `environments` and `platforms` when given).
    #[serde(default)]
    pub all: bool,
    /// Environments whose nodes are targeted.
    #[serde(default)]
    pub environments: Vec<EnvironmentName>,
    /// Platform names (`linux`, `darwin`, `windows`, `freebsd`) whose nodes are targeted.
    #[serde(default)]
    pub platforms: Vec<String>,
    /// Labels whose members are targeted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<LabelName>,
    /// Nodes targeted by id, whatever the filters.
    #[serde(default)]
    pub node_ids: Vec<NodeId>,
}

impl QueryTargets {
    /// True when the filters (not only listed ids) select nodes, so nodes enrolled later can
    /// match too.
    pub fn is_broad(&self) -> bool {
        self.all
            || !self.environments.is_empty()
            || !self.platforms.is_empty()
            || !self.labels.is_empty()
    }

    /// True when nothing is targeted at all.
    pub fn is_empty(&self) -> bool {
        !self.is_broad() && self.node_ids.is_empty()
    }

    /// Whether `node` is targeted.
    pub fn matches(&self, node: NodeRef<'_>) -> bool {
        if self.node_ids.contains(node.id) {
            return true;
        }
        self.is_broad()
            && (self.environments.is_empty() || self.environments.contains(node.environment))
            && (self.platforms.is_empty() || self.platforms.iter().any(|p| p == node.platform))
            && (self.labels.is_empty() || self.labels.iter().any(|l| node.labels.contains(l)))
    }
}

/// A distributed (live) query, a campaign: SQL and the nodes it is for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewQuery {
    /// The id agents see and answer with.
    pub id: QueryId,
    /// The SQL to run.
    pub sql: String,
    /// Which nodes it is for; broad targets also reach nodes enrolled later.
    pub targets: QueryTargets,
    /// The nodes targeted at creation: made pending at once, so a query's state lists every
    /// node known to be targeted.
    pub node_ids: Vec<NodeId>,
    /// Who created it.
    pub created_by: String,
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
    /// See [`NewQuery::targets`].
    pub targets: QueryTargets,
    /// See [`NewQuery::created_by`].
    pub created_by: String,
    /// See [`NewQuery::created_at`].
    pub created_at: UnixSeconds,
    /// See [`NewQuery::expires_at`].
    pub expires_at: Option<UnixSeconds>,
    /// When it was cancelled: it is then delivered to no one more.
    pub cancelled_at: Option<UnixSeconds>,
}

/// The node asking for its queries, with what broad targets match on.
#[derive(Debug, Clone, Copy)]
pub struct NodeRef<'a> {
    /// Its id.
    pub id: &'a NodeId,
    /// Its environment.
    pub environment: &'a EnvironmentName,
    /// Its platform name.
    pub platform: &'a str,
    /// The labels it is a member of.
    pub labels: &'a [LabelName],
}

impl<'a> NodeRef<'a> {
    /// The reference to `node`.
    pub fn of(node: &'a crate::store::Node) -> Self {
        NodeRef {
            id: &node.id,
            environment: &node.environment,
            platform: &node.platform,
            labels: &node.labels,
        }
    }
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
    /// The node's error message when the state is [`DeliveryState::Failed`].
    pub message: Option<String>,
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
///   even when called concurrently, never after the query expired or was cancelled. It also
///   hands out live broad queries whose targets match the node but that had no pending entry
///   for it (nodes enrolled after the query was created).
/// - [`QueryStore::record_result`] is idempotent: a resent answer replaces the earlier one.
///
/// # Errors
/// `AlreadyExists` for a duplicate query id; `NotFound` for an unknown query or a node the query
/// does not target; `Unavailable` / `Backend` for backend failures.
#[async_trait]
pub trait QueryStore: Send + Sync + std::fmt::Debug + 'static {
    /// Stores a query and makes it pending for each of its `node_ids`.
    async fn create_query(&self, query: &NewQuery) -> Result<()>;

    /// The query with `id`.
    async fn query(&self, id: &QueryId) -> Result<DistributedQuery>;

    /// Queries newest first, one page at a time: those created before the query `before`
    /// (the cursor of the previous page), at most `limit` (0: 100).
    async fn list_queries(
        &self,
        before: Option<&QueryId>,
        limit: usize,
    ) -> Result<Vec<DistributedQuery>>;

    /// Stops delivering the query; answers already stored stay.
    async fn cancel_query(&self, id: &QueryId, now: UnixSeconds) -> Result<()>;

    /// The queries for `node` that are live at `now`, marking them delivered.
    async fn take_pending_queries(
        &self,
        node: NodeRef<'_>,
        now: UnixSeconds,
    ) -> Result<Vec<PendingQuery>>;

    /// Every query that may still be delivered at `now` (not cancelled, not expired), ordered
    /// by id: what agent services keep in memory to answer reads with nothing for the node
    /// without asking the store.
    async fn live_queries(&self, now: UnixSeconds) -> Result<Vec<DistributedQuery>>;

    /// Stores `node`'s answer and marks its delivery succeeded or failed.
    async fn record_result(&self, node: &NodeId, result: &QueryResult) -> Result<()>;

    /// Every targeted node's state, ordered by node id.
    async fn query_targets(&self, id: &QueryId) -> Result<Vec<QueryTarget>>;

    /// Stored answers ordered by node id, one page at a time: those of nodes after `after`,
    /// at most `limit` (0: 100).
    async fn query_results(
        &self,
        id: &QueryId,
        after: Option<&NodeId>,
        limit: usize,
    ) -> Result<Vec<NodeQueryResult>>;
}
