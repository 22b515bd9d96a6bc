//! What the agent service keeps in memory so its hot paths make no store call: nodes by key,
//! and each environment's config rendered per platform.
//!
//! Correct across several instances: nodes stay cached until their key is revoked, which
//! every instance learns by polling [`NodeStore::revoked_keys_since`](sgt_core::store::NodeStore)
//! (see [`AgentService::refresh_cache`]); rendered configs are re-read after
//! [`CONFIG_TTL`]. Changes made through this instance's admin API take effect at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;

use sgt_core::store::{DistributedQuery, Node};
use sgt_core::types::{EnvironmentName, NodeId, QueryId, UnixSeconds};

/// How long a rendered config is served before the environment is read again.
pub const CONFIG_TTL: Duration = Duration::from_secs(5);
/// At most this many nodes are cached; past it the cache starts over.
const MAX_CACHED_NODES: usize = 1_000_000;
/// A node's check for a query counts as final only once the query is this old: by then its
/// deliveries are surely written and visible (a store's indexes may lag a little).
const QUERY_SETTLE_SECONDS: UnixSeconds = 10;

/// The live queries as last read from the store, and which of them each node was already
/// asked about.
#[derive(Debug, Default)]
struct LiveWork {
    /// `None` until first read, and after this instance created or cancelled one.
    queries: Option<Vec<DistributedQuery>>,
    /// Per node: query → when the store was last asked about it for that node.
    checked: HashMap<NodeId, HashMap<QueryId, UnixSeconds>>,
}

/// A config rendered for one platform: the bytes served without an etag, its etag, and the
/// bytes served with it.
#[derive(Debug, Clone)]
pub(super) struct RenderedConfig {
    pub(super) plain: ServedConfig,
    pub(super) etag: String,
    pub(super) with_etag: ServedConfig,
    fetched: Instant,
}

impl RenderedConfig {
    pub(super) fn new(plain: Bytes, etag: String, with_etag: Bytes) -> Self {
        RenderedConfig {
            plain: ServedConfig::new(plain),
            etag,
            with_etag: ServedConfig::new(with_etag),
            fetched: Instant::now(),
        }
    }
}

/// A config body as JSON, and gzipped once the first agent that accepts gzip asks for it
/// (most fleets never do: osquery's `--tls_accept_gzip` is off by default). Clones share
/// the gzipped copy.
#[derive(Debug, Clone)]
pub(super) struct ServedConfig {
    pub(super) json: Bytes,
    gzip: Arc<std::sync::OnceLock<Option<Bytes>>>,
}

impl ServedConfig {
    fn new(json: Bytes) -> Self {
        ServedConfig {
            json,
            gzip: Arc::default(),
        }
    }

    /// The body gzipped, or `None` when it is too short to be worth it.
    pub(super) fn gzip(&self) -> Option<Bytes> {
        self.gzip.get_or_init(|| gzipped(&self.json)).clone()
    }
}

#[derive(Debug, Default)]
struct Nodes {
    /// Shared, so a request takes a reference count, not a copy of the host details.
    by_key: HashMap<String, Arc<Node>>,
    key_of: HashMap<NodeId, String>,
}

/// The agent service's in-memory state, shared with the admin service so that its changes
/// are seen at once (see [`crate::server::services::admin::AdminService::with_serving_cache`]).
#[derive(Debug, Default)]
pub struct ServingCache {
    nodes: RwLock<Nodes>,
    configs: RwLock<HashMap<(EnvironmentName, String), RenderedConfig>>,
    live: RwLock<LiveWork>,
    /// Unix milliseconds of the last revoked-keys poll.
    pub(super) revocations_polled_ms: Mutex<i64>,
}

impl ServingCache {
    /// The cached node holding `key`.
    pub(super) fn node(&self, key: &str) -> Option<Arc<Node>> {
        self.nodes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .by_key
            .get(key)
            .cloned()
    }

    pub(super) fn insert_node(&self, node: Arc<Node>) {
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
            if node.last_seen < now {
                // Once per node per last-seen resolution; requests holding the old copy are
                // unaffected.
                Arc::make_mut(node).last_seen = now;
            }
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

    /// Replaces the live queries with what the store just listed; forgets checks of queries
    /// that are no longer live.
    pub(super) fn set_live_queries(&self, queries: Vec<DistributedQuery>) {
        let mut live = self.live.write().unwrap_or_else(|e| e.into_inner());
        let ids: std::collections::HashSet<&QueryId> = queries.iter().map(|q| &q.id).collect();
        live.checked.retain(|_, checks| {
            checks.retain(|id, _| ids.contains(id));
            !checks.is_empty()
        });
        live.queries = Some(queries);
    }

    /// Marks the live queries unknown: until the next refresh every read asks the store.
    pub fn invalidate_live_queries(&self) {
        self.live.write().unwrap_or_else(|e| e.into_inner()).queries = None;
    }

    /// The live queries that `keep` selects; `None` when the live queries are unknown (ask
    /// the store).
    pub(super) fn live_queries_where(
        &self,
        keep: impl Fn(&DistributedQuery) -> bool,
    ) -> Option<Vec<DistributedQuery>> {
        let live = self.live.read().unwrap_or_else(|e| e.into_inner());
        let queries = live.queries.as_ref()?;
        Some(queries.iter().filter(|q| keep(q)).cloned().collect())
    }

    /// The live queries that target the node and that the store still has to be asked about
    /// for it; `None` when the live queries are unknown (ask the store).
    pub(super) fn work_for(
        &self,
        id: &NodeId,
        environment: &EnvironmentName,
        platform: &str,
    ) -> Option<Vec<QueryId>> {
        let live = self.live.read().unwrap_or_else(|e| e.into_inner());
        let queries = live.queries.as_ref()?;
        let checks = live.checked.get(id);
        Some(
            queries
                .iter()
                .filter(|q| q.targets.matches(id, environment, platform))
                .filter(|q| {
                    // Not asked yet, or asked before the query settled: ask (again).
                    let checked_at = checks.and_then(|c| c.get(&q.id));
                    checked_at.is_none_or(|t| *t < q.created_at + QUERY_SETTLE_SECONDS)
                })
                .map(|q| q.id.clone())
                .collect(),
        )
    }

    /// Records that the store was asked about `queries` for node `id` at `now`.
    pub(super) fn mark_checked(&self, id: &NodeId, queries: &[QueryId], now: UnixSeconds) {
        if queries.is_empty() {
            return;
        }
        let mut live = self.live.write().unwrap_or_else(|e| e.into_inner());
        let checks = live.checked.entry(id.clone()).or_default();
        for query in queries {
            checks.insert(query.clone(), now);
        }
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

/// Configs shorter than this are served plain even to agents that accept gzip: the saving is
/// a few hundred bytes.
const GZIP_FROM_BYTES: usize = 1024;

/// `json` gzipped, when it is long enough to be worth it (each rendered config is gzipped at
/// most once, for the first agent that accepts gzip).
fn gzipped(json: &[u8]) -> Option<Bytes> {
    use std::io::Write;
    if json.len() < GZIP_FROM_BYTES {
        return None;
    }
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(json).ok()?;
    encoder.finish().ok().map(Bytes::from)
}
