//! The agent service: what each osquery endpoint does, independent of HTTP.

mod carve;
mod config;
mod details;
mod distributed;
mod enroll;
mod labels;
pub use details::DETAIL_QUERY_PREFIX;
pub use labels::LABEL_QUERY_PREFIX;
mod last_seen;
mod logs;

#[cfg(test)]
mod tests;

use std::net::IpAddr;
use std::sync::Arc;

pub use carve::{
    carve_archive_key, carve_block_key, carve_public_id, CarveStart, CarveSweep,
    CARVE_ABANDONED_AFTER_SECONDS, CARVE_MAX_BLOCK_SIZE, CARVE_MAX_OPEN_PER_NODE, CARVE_MAX_SIZE,
    CARVE_MIN_BLOCK_SIZE,
};
pub use config::{ConfigReply, NOT_MODIFIED_ETAG};
pub use enroll::EnrollRequest;
pub use logs::{oversize_line_key, OVERSIZE_LINE_PREFIX};

use crate::server::metrics::{Metrics, StoreCall};
use crate::server::services::rate_limit::{KeyedRateLimit, RateLimit};
use crate::server::services::serving_cache::ServingCache;
use last_seen::LastSeen;
use sgt_core::error::{Error, ErrorKind, Result};
use sgt_core::store::Node;
use sgt_core::types::{now_unix, now_unix_ms, EnvironmentName, HostIdentifier, NodeKey};
use sgt_core::Backends;

/// Handles osquery agent requests against the [`Backends`].
///
/// Cheap to share (`Arc<AgentService>`); every method is safe to call concurrently.
#[derive(Debug)]
pub struct AgentService {
    backends: Backends,
    last_seen: LastSeen,
    cache: Arc<ServingCache>,
    metrics: Arc<Metrics>,
    enroll_limit: KeyedRateLimit<IpAddr>,
    host_enroll_limit: KeyedRateLimit<HostIdentity>,
    metrics_readers: Vec<ipnet::IpNet>,
    /// Seconds between a node's detail queries; `None`: never asked.
    detail_interval: Option<i64>,
    detail_schedule: details::DetailSchedule,
    /// Seconds between a node's dynamic label queries; `None`: never asked.
    label_interval: Option<i64>,
    label_schedule: details::DetailSchedule,
}

/// The identity a node is enrolled under: environment, host identifier, hardware uuid.
type HostIdentity = (EnvironmentName, HostIdentifier, String);

/// Enrolls allowed per source address by default: 1,000 at once (a mass deployment behind
/// one NAT address), then 6,000 a minute. osquery retries a refused enroll with backoff.
pub const DEFAULT_ENROLL_LIMIT: RateLimit = RateLimit {
    burst: 1_000,
    per_minute: 6_000,
};

/// Enrolls allowed per host identity (environment, host identifier, hardware uuid) by
/// default: 3 at once, then 1 a minute. A host re-enrolls once after its node is deleted or
/// its key lost; two cloned hosts sharing an identity re-key each other in a loop, which this
/// slows to one re-key a minute.
pub const DEFAULT_HOST_ENROLL_LIMIT: RateLimit = RateLimit {
    burst: 3,
    per_minute: 1,
};

/// How often each node is asked its detail queries by default.
pub const DEFAULT_DETAIL_INTERVAL: std::time::Duration = std::time::Duration::from_secs(3600);

/// How often each node is asked its dynamic labels' queries by default.
pub const DEFAULT_LABEL_INTERVAL: std::time::Duration = std::time::Duration::from_secs(600);

/// How often `sgt serve` writes the last-seen times noted since the last write.
pub const LAST_SEEN_FLUSH_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);

/// How stale a node's stored `last_seen` may be by default: each node's time is written at
/// most this often.
pub const DEFAULT_LAST_SEEN_RESOLUTION: std::time::Duration = std::time::Duration::from_secs(30);

/// The limits the agent service keeps, apart from the transport's connection limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceLimits {
    /// Enrolls per source address.
    pub enroll_limit: RateLimit,
    /// Enrolls per host identity.
    pub host_enroll_limit: RateLimit,
    /// How often at most each node's `last_seen` is written.
    pub last_seen_resolution: std::time::Duration,
    /// How long after it was last seen a node counts as online; `None`: twice its
    /// environment's `distributed_interval` plus a minute, plus how late stored last-seen
    /// times may be.
    pub online_window: Option<std::time::Duration>,
    /// How often each node is asked its detail queries (version, system, OS, addresses);
    /// `None`: never.
    pub detail_interval: Option<std::time::Duration>,
    /// How often each node is asked the queries of the dynamic labels that cover it; `None`:
    /// never.
    pub label_interval: Option<std::time::Duration>,
    /// Networks that may read `GET /metrics` (everyone when empty).
    pub metrics_allow: Vec<ipnet::IpNet>,
}

impl Default for ServiceLimits {
    /// The services' defaults: see [`DEFAULT_ENROLL_LIMIT`], [`DEFAULT_HOST_ENROLL_LIMIT`]
    /// and [`DEFAULT_LAST_SEEN_RESOLUTION`]; metrics readable by everyone.
    fn default() -> Self {
        ServiceLimits {
            enroll_limit: DEFAULT_ENROLL_LIMIT,
            host_enroll_limit: DEFAULT_HOST_ENROLL_LIMIT,
            last_seen_resolution: DEFAULT_LAST_SEEN_RESOLUTION,
            online_window: None,
            detail_interval: Some(DEFAULT_DETAIL_INTERVAL),
            label_interval: Some(DEFAULT_LABEL_INTERVAL),
            metrics_allow: Vec::new(),
        }
    }
}

/// An interval in whole seconds, at least one.
fn interval_seconds(interval: std::time::Duration) -> i64 {
    i64::try_from(interval.as_secs())
        .unwrap_or(i64::MAX / 4)
        .max(1)
}

/// How long the label definitions are used before they are read again.
const LABELS_TTL: std::time::Duration = std::time::Duration::from_secs(10);

/// What a node awaiting approval is told when it asks for what only approved nodes get.
fn awaiting_approval() -> Error {
    Error::forbidden("this node awaits enrollment approval")
}

/// Revoked keys are polled with this much overlap, so a revocation written late by another
/// instance (clock skew, a slow transaction) is still seen.
const REVOCATION_OVERLAP_MS: i64 = 60_000;

impl AgentService {
    /// A service over `backends`, keeping `limits`.
    pub fn new(backends: Backends, limits: &ServiceLimits) -> Self {
        let cache = ServingCache::default();
        *cache
            .revocations_polled_ms
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = now_unix_ms();
        AgentService {
            backends,
            last_seen: LastSeen::new(limits.last_seen_resolution),
            cache: Arc::new(cache),
            metrics: Arc::new(Metrics::default()),
            enroll_limit: KeyedRateLimit::new(limits.enroll_limit),
            host_enroll_limit: KeyedRateLimit::new(limits.host_enroll_limit),
            metrics_readers: limits.metrics_allow.clone(),
            detail_interval: limits.detail_interval.map(interval_seconds),
            detail_schedule: details::DetailSchedule::default(),
            label_interval: limits.label_interval.map(interval_seconds),
            label_schedule: details::DetailSchedule::default(),
        }
    }

    /// Whether a caller from `address` (unknown: `None`) may read `GET /metrics`.
    pub fn may_read_metrics(&self, address: Option<IpAddr>) -> bool {
        self.metrics_readers.is_empty()
            || address.is_some_and(|a| self.metrics_readers.iter().any(|n| n.contains(&a)))
    }

    /// Whether an enroll from `source` may go ahead now (always, when the address is unknown).
    fn admit_enroll(&self, source: Option<IpAddr>) -> Result<()> {
        match source {
            Some(address) if !self.enroll_limit.allow(&address) => Err(Error::rate_limited(
                "too many enrolls from this address, retry later",
            )),
            _ => Ok(()),
        }
    }

    /// The process's counters, served at `GET /metrics`.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The in-memory state behind the hot paths; give it to the admin service so its changes
    /// are seen at once.
    pub fn serving_cache(&self) -> Arc<ServingCache> {
        Arc::clone(&self.cache)
    }

    /// Drops cached nodes whose keys were revoked (deleted or re-keyed, possibly through
    /// another instance) or whose labels changed since the previous call, returning how many,
    /// and re-reads the live queries, and every ten seconds the labels. Call it every second or two: that is how long another instance's delete or
    /// new campaign takes to reach this one. Until the first call every distributed read
    /// asks the store.
    ///
    /// # Errors
    /// The store's error; the next call covers the same period again.
    pub async fn refresh_cache(&self) -> Result<usize> {
        let since = *self
            .cache
            .revocations_polled_ms
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let started = now_unix_ms();
        self.metrics.store_call(StoreCall::ChangedKeys);
        let revoked = self
            .backends
            .store
            .changed_keys_since(since - REVOCATION_OVERLAP_MS)
            .await?;
        let dropped = self
            .cache
            .forget_keys(revoked.iter().map(|r| r.key.as_str()));
        *self
            .cache
            .revocations_polled_ms
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = started;
        self.metrics.store_call(StoreCall::LiveQueries);
        let live = self.backends.store.live_queries(now_unix()).await?;
        self.cache.set_live_queries(live);
        if self.label_interval.is_some() && self.cache.labels_older_than(LABELS_TTL) {
            self.metrics.store_call(StoreCall::Labels);
            let labels = self.backends.store.list_labels().await?;
            self.cache.set_labels(labels);
        }
        Ok(dropped)
    }

    /// The backends this service runs on.
    pub fn backends(&self) -> &Backends {
        &self.backends
    }

    /// The node holding `key`, noting that it was seen now. Its `host_details` are an empty
    /// object: no agent endpoint needs them, and the serving cache, which holds up to a
    /// million nodes, keeps only what the agent endpoints use (read the store for them).
    ///
    /// # Errors
    /// `Unauthorized` for a malformed or unknown key (the agent must re-enroll); backend errors
    /// as they come.
    pub async fn authenticate(&self, key: &str) -> Result<Arc<Node>> {
        let key = NodeKey::parse(key).map_err(|_| Error::unauthorized("invalid node key"))?;
        let now = now_unix();
        if let Some(node) = self.cache.node(key.as_str()) {
            if self.last_seen.note(&node, now) {
                self.cache.touch(key.as_str(), now);
            }
            return Ok(node);
        }
        self.metrics.store_call(StoreCall::NodeByKey);
        match self.backends.store.node_by_key(&key).await {
            Ok(mut node) => {
                self.last_seen.note(&node, now);
                node.host_details = serde_json::Value::Object(serde_json::Map::new());
                let served = Arc::new(node.clone());
                node.last_seen = node.last_seen.max(now);
                self.cache.insert_node(Arc::new(node));
                Ok(served)
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {
                Err(Error::unauthorized("unknown node key"))
            }
            Err(e) => Err(e),
        }
    }

    /// Writes the last-seen times noted since the previous flush, in one store call.
    /// Call it periodically and once at shutdown.
    ///
    /// # Errors
    /// The store's error; the times are kept and retried at the next flush.
    pub async fn flush_last_seen(&self) -> Result<usize> {
        let written = self.last_seen.flush(self.backends.store.as_ref()).await;
        if !matches!(written, Ok(0)) {
            self.metrics.store_call(StoreCall::RecordLastSeen);
        }
        written
    }
}
