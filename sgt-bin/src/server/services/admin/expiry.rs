//! Node expiry: nodes of an environment with `node_expiry_days` that have not been seen for
//! that long are removed, one audit entry per environment and sweep. An expired agent that
//! comes back gets `node_invalid` and enrolls again.

use super::nodes::NodePages;
use super::AdminService;
use sgt_core::error::{ErrorKind, Result};
use sgt_core::store::ListNodes;
use sgt_core::types::{NodeId, UnixSeconds};

/// The audit log's actor for what the server does by itself; no user name can look like it.
pub const SERVER_ACTOR: &str = "(sgt)";

/// Node ids named in one expiry audit entry at most (the count is always there).
const IDS_AUDITED: usize = 100;

/// What one sweep removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExpirySweep {
    /// Nodes removed.
    pub expired: usize,
}

impl AdminService {
    /// Removes, in every environment with `node_expiry_days`, the nodes last seen more than
    /// that long before `now`. Recorded in the audit log as the server's own action.
    ///
    /// # Errors
    /// Backend errors listing environments or nodes; a node that another instance removed
    /// first is skipped.
    pub async fn expire_nodes(&self, now: UnixSeconds) -> Result<ExpirySweep> {
        let mut sweep = ExpirySweep::default();
        for environment in self.backends.store.list_environments().await? {
            let Some(days) = environment.settings.node_expiry_days else {
                continue;
            };
            let cutoff = now - i64::from(days) * 86_400;
            let mut expired: Vec<NodeId> = Vec::new();
            let mut pages = NodePages::new(
                &*self.backends.store,
                ListNodes {
                    environment: Some(environment.name.clone()),
                    ..ListNodes::default()
                },
            );
            while let Some(page) = pages.next().await? {
                for node in page.iter().filter(|n| n.last_seen < cutoff) {
                    match self.backends.store.delete_node(&node.id).await {
                        Ok(()) => {
                            self.forget_node(&node.id);
                            expired.push(node.id.clone());
                        }
                        Err(e) if e.kind() == ErrorKind::NotFound => {}
                        Err(e) => return Err(e),
                    }
                }
            }
            if expired.is_empty() {
                continue;
            }
            sweep.expired += expired.len();
            self.audit_as(
                SERVER_ACTOR,
                "node.expire",
                environment.name.as_str(),
                serde_json::json!({
                    "node_expiry_days": days,
                    "expired": expired.len(),
                    "node_ids": expired.iter().take(IDS_AUDITED).collect::<Vec<_>>(),
                }),
            )
            .await;
        }
        Ok(sweep)
    }
}
