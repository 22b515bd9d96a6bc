//! Live queries (campaigns).

use serde::{Deserialize, Serialize};

use sgt_core::store::{DistributedQuery, QueryTargets};
use sgt_core::types::{HostIdentifier, NodeId, SavedQueryName, UnixSeconds};

/// `POST /queries`: what an operator asks for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewCampaign {
    /// The SQL; empty when `saved_query` names it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sql: String,
    /// Run the SQL of this saved query instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub saved_query: Option<SavedQueryName>,
    /// Who should run it.
    pub targets: QueryTargets,
    /// Seconds it stays deliverable (default one day, at most 30 days).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in_seconds: Option<u64>,
}

/// A campaign with counts of where its nodes stand.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueryView {
    /// The query.
    #[serde(flatten)]
    pub query: DistributedQuery,
    /// Nodes known to be targeted so far (nodes enrolling later join).
    pub targeted: usize,
    /// Targets that answered or are online now: the answers to expect. Every online target
    /// answered when `answered() >= online`.
    pub online: usize,
    /// Not yet delivered.
    pub pending: usize,
    /// Delivered, no answer yet.
    pub delivered: usize,
    /// Answered with status 0.
    pub succeeded: usize,
    /// Answered with an error.
    pub failed: usize,
}

impl QueryView {
    /// Nodes that answered, with rows or an error.
    pub fn answered(&self) -> usize {
        self.succeeded + self.failed
    }
}

/// One node's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultView {
    /// The node.
    pub node_id: NodeId,
    /// Its host identifier, if the node still exists.
    pub host_identifier: Option<HostIdentifier>,
    /// osquery's status (0 success).
    pub status: i64,
    /// The rows.
    pub rows: Vec<serde_json::Value>,
    /// The error text, if any.
    pub message: Option<String>,
    /// When it arrived.
    pub received_at: UnixSeconds,
}

/// `PUT /saved-queries/{name}`: the query to keep under that name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SavedQueryBody {
    /// The SQL.
    pub sql: String,
    /// What it answers, for people.
    #[serde(default)]
    pub description: String,
}
