//! What the agent service keeps in memory so its hot paths make no store call: nodes by key,
//! and each environment's config rendered per platform.
//!
//! Correct across several instances: nodes stay cached until their key is revoked, which
//! every instance learns by polling [`NodeStore::revoked_keys_since`](crate::store::NodeStore)
//! (see [`AgentService::refresh_cache`]); rendered configs are re-read after
//! [`CONFIG_TTL`]. Changes made through this instance's admin API take effect at once.

use std::collections::HashMap;
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::store::Node;
use crate::types::{EnvironmentName, NodeId, UnixSeconds};

/// How long a rendered config is served before the environment is read again.
pub const CONFIG_TTL: Duration = Duration::from_secs(5);
/// At most this many nodes are cached; past it the cache starts over.
const MAX_CACHED_NODES: usize = 1_000_000;

/// A config rendered for one platform: the bytes served without an etag, its etag, and the
/// bytes served with it.
#[derive(Debug, Clone)]
pub(super) struct RenderedConfig {
    pub(super) plain: Bytes,
    pub(super) etag: String,
    pub(super) with_etag: Bytes,
    fetched: Instant,
}

impl RenderedConfig {
    pub(super) fn new(plain: Bytes, etag: String, with_etag: Bytes) -> Self {
        RenderedConfig {
            plain,
            etag,
            with_etag,
            fetched: Instant::now(),
        }
    }
}

#[derive(Debug, Default)]
struct Nodes {
    by_key: HashMap<String, Node>,
    key_of: HashMap<NodeId, String>,
}

/// The agent service's in-memory state, shared with the admin service so that its changes
/// are seen at once (see [`crate::admin::AdminService::with_serving_cache`]).
#[derive(Debug, Default)]
pub struct ServingCache {
    nodes: RwLock<Nodes>,
    configs: RwLock<HashMap<(EnvironmentName, String), RenderedConfig>>,
    /// Unix milliseconds of the last revoked-keys poll.
    pub(super) revocations_polled_ms: Mutex<i64>,
}

impl ServingCache {
    /// The cached node holding `key`.
    pub(super) fn node(&self, key: &str) -> Option<Node> {
        self.nodes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .by_key
            .get(key)
            .cloned()
    }

    pub(super) fn insert_node(&self, node: Node) {
        let mut nodes = self.nodes.write().unwrap_or_else(|e| e.into_inner());
        if nodes.by_key.len() >= MAX_CACHED_NODES {
            *nodes = Nodes::default();
        }
        if let Some(old) = nodes
            .key_of
            .insert(node.id.clone(), node.key.as_str().to_owned())
        {
            nodes.by_key.remove(&old);
        }
        nodes.by_key.insert(node.key.as_str().to_owned(), node);
    }

    /// Records that the cached node with `key` was seen at `now`.
    pub(super) fn touch(&self, key: &str, now: UnixSeconds) {
        let mut nodes = self.nodes.write().unwrap_or_else(|e| e.into_inner());
        if let Some(node) = nodes.by_key.get_mut(key) {
            node.last_seen = node.last_seen.max(now);
        }
    }

    /// Drops the node `id` (deleted or re-keyed): its next request reads the store.
    pub fn forget_node(&self, id: &NodeId) {
        let mut nodes = self.nodes.write().unwrap_or_else(|e| e.into_inner());
        if let Some(key) = nodes.key_of.remove(id) {
            nodes.by_key.remove(&key);
        }
    }

    /// Drops the nodes holding any of `keys`; returns how many were cached.
    pub(super) fn forget_keys<'a>(&self, keys: impl IntoIterator<Item = &'a str>) -> usize {
        let mut nodes = self.nodes.write().unwrap_or_else(|e| e.into_inner());
        let mut dropped = 0;
        for key in keys {
            if let Some(node) = nodes.by_key.remove(key) {
                nodes.key_of.remove(&node.id);
                dropped += 1;
            }
        }
        dropped
    }

    /// Drops the rendered configs of `environment` (its config changed or it was deleted).
    pub fn forget_environment(&self, environment: &EnvironmentName) {
        self.configs
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|(name, _), _| name != environment);
    }

    /// The config of `environment` rendered for `platform`, if rendered less than
    /// [`CONFIG_TTL`] ago.
    pub(super) fn config(
        &self,
        environment: &EnvironmentName,
        platform: &str,
    ) -> Option<RenderedConfig> {
        self.configs
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(environment.clone(), platform.to_owned()))
            .filter(|c| c.fetched.elapsed() < CONFIG_TTL)
            .cloned()
    }

    pub(super) fn insert_config(
        &self,
        environment: &EnvironmentName,
        platform: &str,
        rendered: RenderedConfig,
    ) {
        self.configs
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert((environment.clone(), platform.to_owned()), rendered);
    }

    /// Number of nodes cached.
    pub fn cached_nodes(&self) -> usize {
        self.nodes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .by_key
            .len()
    }
}
