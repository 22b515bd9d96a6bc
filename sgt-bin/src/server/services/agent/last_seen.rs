//! Coalesced last-seen updates: one batched store write per flush, not one per request.

use std::collections::HashMap;
use std::sync::Mutex;

use sgt_core::error::Result;
use sgt_core::store::{Node, NodeStore};
use sgt_core::types::{NodeId, UnixSeconds};

#[derive(Debug)]
pub(super) struct LastSeen {
    /// A node's stored `last_seen` is refreshed at most this often (seconds).
    resolution_seconds: i64,
    pending: Mutex<HashMap<NodeId, UnixSeconds>>,
}

impl LastSeen {
    /// Coalesces updates so each node's `last_seen` is written at most every `resolution`
    /// (at least a second).
    pub(super) fn new(resolution: std::time::Duration) -> Self {
        LastSeen {
            resolution_seconds: i64::try_from(resolution.as_secs())
                .unwrap_or(i64::MAX)
                .max(1),
            pending: Mutex::default(),
        }
    }

    /// Notes that `node` was seen at `now`; true when that is news (its `last_seen` is older
    /// than the resolution), false when nothing needs writing.
    pub(super) fn note(&self, node: &Node, now: UnixSeconds) -> bool {
        if now - node.last_seen < self.resolution_seconds {
            return false;
        }
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let entry = pending.entry(node.id.clone()).or_insert(now);
        *entry = (*entry).max(now);
        true
    }

    pub(super) async fn flush(&self, store: &dyn NodeStore) -> Result<usize> {
        let batch: Vec<(NodeId, UnixSeconds)> = {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            pending.drain().collect()
        };
        if batch.is_empty() {
            return Ok(0);
        }
        if let Err(e) = store.record_last_seen(&batch).await {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            for (id, t) in batch {
                let entry = pending.entry(id).or_insert(t);
                *entry = (*entry).max(t);
            }
            return Err(e);
        }
        Ok(batch.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sgt_core::types::{EnvironmentName, HostIdentifier, NodeKey};

    fn node_seen_at(last_seen: UnixSeconds) -> Node {
        Node {
            id: NodeId::generate(),
            key: NodeKey::generate(),
            environment: EnvironmentName::parse("prod").unwrap(),
            host_identifier: HostIdentifier::parse("web-1").unwrap(),
            hardware_uuid: String::new(),
            platform_type: "9".into(),
            platform: "linux".into(),
            host_details: serde_json::json!({}),
            enrolled_at: 0,
            last_seen,
            labels: Vec::new(),
            pending: false,
        }
    }

    #[test]
    fn a_node_is_written_only_once_its_time_is_older_than_the_resolution() {
        let node = node_seen_at(1_000);
        let fine = LastSeen::new(std::time::Duration::from_secs(30));
        assert!(!fine.note(&node, 1_029));
        assert!(fine.note(&node, 1_030));
        let coarse = LastSeen::new(std::time::Duration::from_secs(300));
        assert!(!coarse.note(&node, 1_299));
        assert!(coarse.note(&node, 1_300));
        assert_eq!(coarse.pending.lock().unwrap().len(), 1);
    }
}
