//! What the agent service keeps in memory so its hot paths make no store call: nodes by key,
//! and each environment's config, rendered per platform and per set of labels its packs are
//! for.
//!
//! Correct across several instances: nodes stay cached until their key is revoked, which
//! every instance learns by polling [`NodeStore::changed_keys_since`](sgt_core::store::NodeStore)
//! (see [`AgentService::refresh_cache`]), which also lists nodes whose labels changed; configs
//! are re-read after [`CONFIG_TTL`]. Changes made through this instance's admin API take effect at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;

use sgt_core::store::{DistributedQuery, Label, Node, NodeRef};
use sgt_core::types::{EnvironmentName, LabelName, NodeId, QueryId, UnixSeconds};

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

/// An environment's config document as last read from the store.
#[derive(Debug)]
pub(super) struct CachedEnvironment {
    /// The document.
    pub(super) config: serde_json::Value,
    /// The labels its packs are for: the part of a node's labels its config depends on.
    pub(super) labels_in_packs: Vec<LabelName>,
    /// Changes whenever a read finds a different document; renders of an older one are stale.
    pub(super) generation: u64,
    fetched: Instant,
}

impl CachedEnvironment {
    /// Those of `labels` (a node's, ordered) that decide which packs it gets.
    pub(super) fn deciding_labels(&self, labels: &[LabelName]) -> Vec<LabelName> {
        labels
            .iter()
            .filter(|l| self.labels_in_packs.binary_search(l).is_ok())
            .cloned()
            .collect()
    }
}

/// A config rendered for one platform and set of deciding labels: the bytes served without an
/// etag, its etag, and the bytes served with it.
#[derive(Debug, Clone)]
pub(super) struct RenderedConfig {
    pub(super) plain: ServedConfig,
    pub(super) etag: String,
    pub(super) with_etag: ServedConfig,
    generation: u64,
}

impl RenderedConfig {
    pub(super) fn new(plain: Bytes, etag: String, with_etag: Bytes, generation: u64) -> Self {
        RenderedConfig {
            plain: ServedConfig::new(plain),
            etag,
            with_etag: ServedConfig::new(with_etag),
            generation,
        }
    }
}

/// What a rendered config depends on, and is cached by.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct RenderKey {
    /// The node's environment.
    pub(super) environment: EnvironmentName,
    /// Its platform.
    pub(super) platform: String,
    /// Those of its labels that some pack of the config is for.
    pub(super) labels: Vec<LabelName>,
    /// Whether it awaits approval.
    pub(super) pending: bool,
}
/// At most this many rendered configs are cached; past it the cache starts over.
const MAX_RENDERED_CONFIGS: usize = 10_000;

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
    environments: RwLock<HashMap<EnvironmentName, Arc<CachedEnvironment>>>,
    generations: std::sync::atomic::AtomicU64,
    configs: RwLock<HashMap<RenderKey, RenderedConfig>>,
    live: RwLock<LiveWork>,
    /// The dynamic labels as last read, and when.
    dynamic_labels: RwLock<(Arc<Vec<Label>>, Option<Instant>)>,
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

    /// Drops the config of `environment` and its renders (it changed or was deleted).
    pub fn forget_environment(&self, environment: &EnvironmentName) {
        self.environments
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(environment);
        self.configs
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|key, _| &key.environment != environment);
    }

    /// The config of `environment`, if read less than [`CONFIG_TTL`] ago.
    pub(super) fn environment(&self, name: &EnvironmentName) -> Option<Arc<CachedEnvironment>> {
        self.environments
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .filter(|c| c.fetched.elapsed() < CONFIG_TTL)
            .cloned()
    }

    /// Keeps `config`, just read, as `name`'s; renders of it stay valid if it is the
    /// document cached before.
    pub(super) fn insert_environment(
        &self,
        name: &EnvironmentName,
        config: serde_json::Value,
    ) -> Arc<CachedEnvironment> {
        let mut environments = self.environments.write().unwrap_or_else(|e| e.into_inner());
        let generation = match environments.get(name) {
            Some(cached) if cached.config == config => cached.generation,
            _ => {
                self.generations
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                    + 1
            }
        };
        let cached = Arc::new(CachedEnvironment {
            labels_in_packs: crate::server::services::config_doc::labels_in_packs(&config),
            config,
            generation,
            fetched: Instant::now(),
        });
        environments.insert(name.clone(), Arc::clone(&cached));
        cached
    }

    /// The render for `key` of generation `generation` of its environment's config, if there
    /// is one.
    pub(super) fn config(&self, key: &RenderKey, generation: u64) -> Option<RenderedConfig> {
        self.configs
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            .filter(|c| c.generation == generation)
            .cloned()
    }

    pub(super) fn insert_config(&self, key: RenderKey, rendered: RenderedConfig) {
        let mut configs = self.configs.write().unwrap_or_else(|e| e.into_inner());
        if configs.len() >= MAX_RENDERED_CONFIGS {
            configs.clear();
        }
        configs.insert(key, rendered);
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
    pub(super) fn work_for(&self, node: NodeRef<'_>) -> Option<Vec<QueryId>> {
        let live = self.live.read().unwrap_or_else(|e| e.into_inner());
        let queries = live.queries.as_ref()?;
        let checks = live.checked.get(node.id);
        Some(
            queries
                .iter()
                .filter(|q| q.targets.matches(node))
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

    /// The dynamic labels as last read (none before the first read).
    pub(super) fn dynamic_labels(&self) -> Arc<Vec<Label>> {
        Arc::clone(
            &self
                .dynamic_labels
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .0,
        )
    }

    /// Whether the labels were never read, or read more than `age` ago, or changed here since.
    pub(super) fn labels_older_than(&self, age: Duration) -> bool {
        self.dynamic_labels
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .1
            .is_none_or(|read| read.elapsed() >= age)
    }

    /// Keeps the dynamic ones of `labels`, just read: every distributed read goes through
    /// them, so manual labels are not kept to be skipped each time.
    pub(super) fn set_labels(&self, mut labels: Vec<Label>) {
        labels.retain(Label::is_dynamic);
        *self
            .dynamic_labels
            .write()
            .unwrap_or_else(|e| e.into_inner()) = (Arc::new(labels), Some(Instant::now()));
    }

    /// Has the labels read again at the next refresh (one was put or deleted here).
    pub fn invalidate_labels(&self) {
        self.dynamic_labels
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .1 = None;
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
