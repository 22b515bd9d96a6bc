//! Enrolled nodes.

use super::AdminService;
use crate::admin_types::{Caller, NodeView, Page};
use sgt_core::error::{Error, Result};
use sgt_core::store::{ListNodes, Node, Role};
use sgt_core::types::{now_unix, NodeId};

impl NodeView {
    fn new(node: Node, online: bool, with_details: bool) -> NodeView {
        NodeView {
            hostname: node.hostname().map(str::to_owned),
            osquery_version: node.osquery_version().map(str::to_owned),
            id: node.id,
            environment: node.environment,
            host_identifier: node.host_identifier,
            platform: node.platform,
            enrolled_at: node.enrolled_at,
            last_seen: node.last_seen,
            online,
            labels: node.labels,
            pending: node.pending,
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
        if filter.named.as_ref().is_some_and(|s| s.len() > 512) {
            return Err(Error::invalid_input("host is longer than 512 bytes"));
        }
        let limit = filter.limit;
        let nodes = self.backends.store.list_nodes(&filter).await?;
        let online = self.online_flags(&nodes, now_unix()).await?;
        let items = nodes
            .into_iter()
            .zip(online)
            .map(|(n, online)| NodeView::new(n, online, false))
            .collect();
        Ok(Page::new(items, limit, |n: &NodeView| n.id.to_string()))
    }

    /// One node with its host details.
    ///
    /// # Errors
    /// `NotFound`.
    pub async fn node(&self, caller: &Caller, id: &str) -> Result<NodeView> {
        caller.require(Role::Viewer)?;
        let id = NodeId::parse(id).map_err(|_| Error::not_found("node"))?;
        let node = self.backends.store.node_by_id(&id).await?;
        let online = self
            .online_flags(std::slice::from_ref(&node), now_unix())
            .await?;
        Ok(NodeView::new(node, online[0], true))
    }

    /// Approves a node awaiting enrollment approval (operators and admins): from its next
    /// request on it gets its environment's full config, live queries and carves, and its logs
    /// are taken. Approving an approved node changes nothing.
    ///
    /// # Errors
    /// `Forbidden`; `NotFound`.
    pub async fn approve_node(&self, caller: &Caller, id: &str) -> Result<NodeView> {
        caller.require(Role::Operator)?;
        let id = NodeId::parse(id).map_err(|_| Error::not_found("node"))?;
        if self.backends.store.approve_node(&id).await? {
            self.forget_node(&id);
            self.audit(caller, "node.approve", id.as_str(), serde_json::Value::Null)
                .await;
        }
        self.node(caller, id.as_str()).await
    }

    /// Rejects a node awaiting enrollment approval (operators and admins): it is deleted.
    /// Its agent, if it still holds a valid enroll secret, enrolls again and waits anew;
    /// revoke the secret to keep it out.
    ///
    /// # Errors
    /// `Forbidden`; `NotFound`; `Conflict` for an approved node (delete it instead).
    pub async fn reject_node(&self, caller: &Caller, id: &str) -> Result<()> {
        caller.require(Role::Operator)?;
        let id = NodeId::parse(id).map_err(|_| Error::not_found("node"))?;
        let node = self.backends.store.node_by_id(&id).await?;
        if !node.pending {
            return Err(Error::conflict(
                "this node is approved: delete it instead of rejecting it",
            ));
        }
        self.backends.store.delete_node(&id).await?;
        self.forget_node(&id);
        self.audit(
            caller,
            "node.reject",
            id.as_str(),
            serde_json::json!({"host_identifier": node.host_identifier}),
        )
        .await;
        Ok(())
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

/// Every node, or every node of one environment, read a page of 1,000 at a time: what
/// campaign targeting and node expiry go through, in bounded memory.
pub(super) struct NodePages<'a> {
    store: &'a dyn sgt_core::store::Store,
    filter: ListNodes,
    done: bool,
}

impl<'a> NodePages<'a> {
    /// Pages of the nodes `filter` selects (its cursor and page size aside).
    pub(super) fn new(store: &'a dyn sgt_core::store::Store, filter: ListNodes) -> Self {
        NodePages {
            store,
            filter: ListNodes {
                after: None,
                limit: 1000,
                ..filter
            },
            done: false,
        }
    }

    /// The next page; `None` after the last.
    pub(super) async fn next(&mut self) -> Result<Option<Vec<Node>>> {
        if self.done {
            return Ok(None);
        }
        let page = self.store.list_nodes(&self.filter).await?;
        match page.last() {
            Some(last) => self.filter.after = Some(last.id.clone()),
            None => {
                self.done = true;
                return Ok(None);
            }
        }
        Ok(Some(page))
    }
}
