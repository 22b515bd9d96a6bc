//! Enrolled nodes.

use super::AdminService;
use crate::admin_types::{Caller, NodeView, Page};
use sgt_core::error::{Error, Result};
use sgt_core::store::{ListNodes, Node, Role};
use sgt_core::types::NodeId;

impl NodeView {
    fn new(node: Node, with_details: bool) -> NodeView {
        NodeView {
            hostname: node.hostname().map(str::to_owned),
            osquery_version: node.osquery_version().map(str::to_owned),
            id: node.id,
            environment: node.environment,
            host_identifier: node.host_identifier,
            platform: node.platform,
            enrolled_at: node.enrolled_at,
            last_seen: node.last_seen,
            host_details: with_details.then_some(node.host_details),
        }
    }
}

impl AdminService {
    /// Nodes matching the filters, one page at a time (cursor: the last node id).
    ///
    /// # Errors
    /// `InvalidInput` for a malformed cursor or environment; backend errors.
    pub async fn list_nodes(&self, caller: &Caller, filter: ListNodes) -> Result<Page<NodeView>> {
        caller.require(Role::Viewer)?;
        if filter.search.as_ref().is_some_and(|s| s.len() > 256) {
            return Err(Error::invalid_input("search is longer than 256 bytes"));
        }
        let limit = filter.limit;
        let nodes = self.backends.store.list_nodes(&filter).await?;
        let items = nodes.into_iter().map(|n| NodeView::new(n, false)).collect();
        Ok(Page::new(items, limit, |n: &NodeView| n.id.to_string()))
    }

    /// One node with its host details.
    ///
    /// # Errors
    /// `NotFound`.
    pub async fn node(&self, caller: &Caller, id: &str) -> Result<NodeView> {
        caller.require(Role::Viewer)?;
        let id = NodeId::parse(id).map_err(|_| Error::not_found("node"))?;
        Ok(NodeView::new(
            self.backends.store.node_by_id(&id).await?,
            true,
        ))
    }

    /// Deletes a node (operators and admins): its key stops working at once, so the agent's
    /// next request gets `node_invalid` and it enrolls again.
    ///
    /// # Errors
    /// `Forbidden`; `NotFound`.
    pub async fn delete_node(&self, caller: &Caller, id: &str) -> Result<()> {
        caller.require(Role::Operator)?;
        let id = NodeId::parse(id).map_err(|_| Error::not_found("node"))?;
        let node = self.backends.store.node_by_id(&id).await?;
        self.backends.store.delete_node(&id).await?;
        self.forget_node(&id);
        self.audit(
            caller,
            "node.delete",
            id.as_str(),
            serde_json::json!({"host_identifier": node.host_identifier}),
        )
        .await;
        Ok(())
    }
}
