//! Coalesced last-seen updates: one batched store write per flush, not one per request.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::error::Result;
use crate::store::{Node, NodeStore};
use crate::types::{NodeId, UnixSeconds};

/// A node's stored `last_seen` is refreshed at most this often (seconds).
const RESOLUTION_SECONDS: i64 = 30;

#[derive(Debug, Default)]
pub(super) struct LastSeen {
    pending: Mutex<HashMap<NodeId, UnixSeconds>>,
}

impl LastSeen {
    /// Notes that `node` was seen at `now`; true when that is news (its `last_seen` is older
    /// than the resolution), false when nothing needs writing.
    pub(super) fn note(&self, node: &Node, now: UnixSeconds) -> bool {
        if now - node.last_seen < RESOLUTION_SECONDS {
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
