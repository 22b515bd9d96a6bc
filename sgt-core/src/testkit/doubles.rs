//! Plainly correct in-memory backends and fault injectors for tests.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use crate::blobs::{BlobKey, BlobStore};
use crate::error::{Error, Result};
use crate::log_sink::{LogBatch, LogSink, SinkLimits};
use crate::secrets::{EnrollSecret, SecretStore};

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A log sink that keeps every record in memory, in order.
#[derive(Debug, Default)]
pub struct RecordingLogSink {
    records: Mutex<Vec<String>>,
    appends: AtomicUsize,
}

impl RecordingLogSink {
    /// An empty sink.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every record stored so far.
    pub fn records(&self) -> Vec<String> {
        lock(&self.records).clone()
    }

    /// Number of successful `append` calls.
    pub fn appends(&self) -> usize {
        self.appends.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl LogSink for RecordingLogSink {
    async fn append(&self, batch: &LogBatch) -> Result<()> {
        lock(&self.records).extend(batch.records());
        self.appends.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    fn limits(&self) -> SinkLimits {
        SinkLimits {
            max_batch_records: usize::MAX,
            max_batch_bytes: usize::MAX,
            max_record_bytes: usize::MAX,
            preserves_order: true,
        }
    }
}

#[async_trait]
impl super::log_sink::SinkUnderTest for RecordingLogSink {
    fn sink(&self) -> &dyn LogSink {
        self
    }

    async fn stored_records(&self) -> Vec<serde_json::Value> {
        self.records()
            .iter()
            .map(|r| serde_json::from_str(r).expect("records are JSON"))
            .collect()
    }
}

/// Latency and failures to inject into a backend's calls.
#[derive(Debug, Default)]
struct Faults {
    remaining_failures: AtomicUsize,
    delay: Duration,
    /// Each call past the first failures also fails with this probability.
    fail_share: f64,
    calls: AtomicUsize,
    failures: AtomicUsize,
}

impl Faults {
    fn new(fail_first: usize, delay: Duration) -> Self {
        Faults {
            remaining_failures: AtomicUsize::new(fail_first),
            delay,
            fail_share: 0.0,
            calls: AtomicUsize::new(0),
            failures: AtomicUsize::new(0),
        }
    }

    /// Counts the call, waits the delay, then fails it with `Unavailable` if failures remain.
    async fn inject(&self, what: &str) -> Result<()> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        let failed = self
            .remaining_failures
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
            || (self.fail_share > 0.0 && rand::random::<f64>() < self.fail_share);
        if failed {
            self.failures.fetch_add(1, Ordering::SeqCst);
            return Err(Error::unavailable(format!("injected {what} failure")));
        }
        Ok(())
    }
}

/// Wraps a sink: the first `fail_first` appends fail with `Unavailable` without reaching it,
/// and every append first waits `delay`.
#[derive(Debug)]
pub struct FaultyLogSink<S> {
    inner: S,
    faults: Faults,
}

impl<S: LogSink> FaultyLogSink<S> {
    /// A sink failing its first `fail_first` appends.
    pub fn failing_first(inner: S, fail_first: usize) -> Self {
        FaultyLogSink {
            inner,
            faults: Faults::new(fail_first, Duration::ZERO),
        }
    }

    /// A sink adding `delay` to every append.
    pub fn slow(inner: S, delay: Duration) -> Self {
        FaultyLogSink {
            inner,
            faults: Faults::new(0, delay),
        }
    }

    /// An outage, then a slow recovery: the first `fail_first` appends fail, and every
    /// append first waits `delay`.
    pub fn failing_first_then_slow(inner: S, fail_first: usize, delay: Duration) -> Self {
        FaultyLogSink {
            inner,
            faults: Faults::new(fail_first, delay),
        }
    }

    /// A sink failing each append with probability `share` (0 to 1), at random.
    pub fn failing_share(inner: S, share: f64) -> Self {
        let mut faults = Faults::new(0, Duration::ZERO);
        faults.fail_share = share.clamp(0.0, 1.0);
        FaultyLogSink { inner, faults }
    }

    /// The wrapped sink.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// Appends made so far, failed ones included.
    pub fn calls(&self) -> usize {
        self.faults.calls.load(Ordering::SeqCst)
    }

    /// Appends failed so far.
    pub fn failures(&self) -> usize {
        self.faults.failures.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl<S: LogSink> LogSink for FaultyLogSink<S> {
    async fn append(&self, batch: &LogBatch) -> Result<()> {
        self.faults.inject("sink").await?;
        self.inner.append(batch).await
    }

    fn limits(&self) -> SinkLimits {
        self.inner.limits()
    }
}

/// A sink that encodes every record, as a real sink would, then drops it: for benches and
/// fuzzing, where memory must stay flat.
#[derive(Debug, Default)]
pub struct DiscardingLogSink;

#[async_trait]
impl LogSink for DiscardingLogSink {
    async fn append(&self, batch: &LogBatch) -> Result<()> {
        let bytes: usize = batch.records().map(|r| r.len()).sum();
        std::hint::black_box(bytes);
        Ok(())
    }

    fn limits(&self) -> SinkLimits {
        SinkLimits {
            max_batch_records: 100_000,
            max_batch_bytes: 256 * 1024 * 1024,
            max_record_bytes: 64 * 1024 * 1024,
            preserves_order: true,
        }
    }
}

/// Enroll secrets held in memory.
#[derive(Debug, Default)]
pub struct MemorySecrets {
    secrets: Mutex<Vec<EnrollSecret>>,
}

impl MemorySecrets {
    /// A store holding `secrets`.
    pub fn new(secrets: Vec<EnrollSecret>) -> Self {
        MemorySecrets {
            secrets: Mutex::new(secrets),
        }
    }
}

#[async_trait]
impl SecretStore for MemorySecrets {
    async fn list_enroll_secrets(&self) -> Result<Vec<EnrollSecret>> {
        Ok(lock(&self.secrets).clone())
    }

    async fn add_enroll_secret(&self, secret: &EnrollSecret) -> Result<()> {
        let mut secrets = lock(&self.secrets);
        if secrets.iter().any(|s| s.id == secret.id) {
            return Err(Error::already_exists("enroll secret"));
        }
        secrets.push(secret.clone());
        Ok(())
    }

    async fn revoke_enroll_secret(&self, id: &str) -> Result<()> {
        let mut secrets = lock(&self.secrets);
        let before = secrets.len();
        secrets.retain(|s| s.id != id);
        if secrets.len() == before {
            return Err(Error::not_found("enroll secret"));
        }
        Ok(())
    }
}

/// Blobs held in memory.
#[derive(Debug, Default)]
pub struct MemoryBlobStore {
    blobs: Mutex<BTreeMap<BlobKey, Bytes>>,
    concat_delay: Duration,
}

impl MemoryBlobStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store whose `concat` first waits `delay`, as joining a large archive does.
    pub fn with_slow_concat(delay: Duration) -> Self {
        MemoryBlobStore {
            concat_delay: delay,
            ..Self::default()
        }
    }
}

#[async_trait]
impl BlobStore for MemoryBlobStore {
    async fn put(&self, key: &BlobKey, data: Bytes) -> Result<()> {
        lock(&self.blobs).insert(key.clone(), data);
        Ok(())
    }

    async fn get(&self, key: &BlobKey) -> Result<Bytes> {
        lock(&self.blobs)
            .get(key)
            .cloned()
            .ok_or_else(|| Error::not_found("blob"))
    }

    async fn size(&self, key: &BlobKey) -> Result<u64> {
        Ok(self.get(key).await?.len() as u64)
    }

    async fn read_range(&self, key: &BlobKey, offset: u64, len: u64) -> Result<Bytes> {
        let blob = self.get(key).await?;
        let start = (offset as usize).min(blob.len());
        let end = start.saturating_add(len as usize).min(blob.len());
        Ok(blob.slice(start..end))
    }

    async fn concat(&self, target: &BlobKey, parts: &[BlobKey]) -> Result<u64> {
        tokio::time::sleep(self.concat_delay).await;
        let mut blobs = lock(&self.blobs);
        let mut joined = Vec::new();
        for part in parts {
            joined.extend_from_slice(blobs.get(part).ok_or_else(|| Error::not_found("blob"))?);
        }
        let size = joined.len() as u64;
        blobs.insert(target.clone(), Bytes::from(joined));
        Ok(size)
    }

    async fn delete(&self, key: &BlobKey) -> Result<()> {
        lock(&self.blobs).remove(key);
        Ok(())
    }
}

/// Shorthand: an `Arc` of a fresh double, for conformance macros.
pub async fn arc<T: Default>() -> Arc<T> {
    Arc::new(T::default())
}

#[cfg(test)]
mod conformance {
    mod memory_secrets {
        crate::secret_store_conformance_tests!(crate::testkit::doubles::arc::<
            crate::testkit::doubles::MemorySecrets,
        >());
    }
    mod memory_blobs {
        crate::blob_store_conformance_tests!(crate::testkit::doubles::arc::<
            crate::testkit::doubles::MemoryBlobStore,
        >());
    }
    mod recording_sink {
        crate::log_sink_conformance_tests!(crate::testkit::doubles::arc::<
            crate::testkit::doubles::RecordingLogSink,
        >());
    }
}

/// Wraps a store: every call first waits `delay`, and the first `fail_first` calls fail with
/// `Unavailable` without reaching it.
#[derive(Debug)]
pub struct FaultyStore {
    inner: Arc<dyn crate::store::Store>,
    faults: Faults,
}

impl FaultyStore {
    /// A store failing its first `fail_first` calls.
    pub fn failing_first(inner: Arc<dyn crate::store::Store>, fail_first: usize) -> Self {
        FaultyStore {
            inner,
            faults: Faults::new(fail_first, Duration::ZERO),
        }
    }

    /// A store adding `delay` to every call.
    pub fn slow(inner: Arc<dyn crate::store::Store>, delay: Duration) -> Self {
        FaultyStore {
            inner,
            faults: Faults::new(0, delay),
        }
    }

    /// Makes the next `n` calls fail with `Unavailable`.
    pub fn fail_next(&self, n: usize) {
        self.faults.remaining_failures.store(n, Ordering::SeqCst);
    }

    /// Calls made so far, failed ones included.
    pub fn calls(&self) -> usize {
        self.faults.calls.load(Ordering::SeqCst)
    }

    async fn fault(&self) -> Result<()> {
        self.faults.inject("store").await
    }
}

mod faulty_store_impls {
    use super::FaultyStore;
    use crate::error::Result;
    use crate::store::*;
    use crate::types::*;
    use async_trait::async_trait;

    #[async_trait]
    impl NodeStore for FaultyStore {
        async fn enroll_node(&self, node: NewNode) -> Result<Node> {
            self.fault().await?;
            self.inner.enroll_node(node).await
        }
        async fn node_by_key(&self, key: &NodeKey) -> Result<Node> {
            self.fault().await?;
            self.inner.node_by_key(key).await
        }
        async fn node_by_id(&self, id: &NodeId) -> Result<Node> {
            self.fault().await?;
            self.inner.node_by_id(id).await
        }
        async fn list_nodes(&self, request: &ListNodes) -> Result<Vec<Node>> {
            self.fault().await?;
            self.inner.list_nodes(request).await
        }
        async fn nodes_by_ids(&self, ids: &[NodeId]) -> Result<Vec<Node>> {
            self.fault().await?;
            self.inner.nodes_by_ids(ids).await
        }
        async fn update_host_details(
            &self,
            id: &NodeId,
            details: &serde_json::Value,
        ) -> Result<()> {
            self.fault().await?;
            self.inner.update_host_details(id, details).await
        }
        async fn approve_node(&self, id: &NodeId) -> Result<bool> {
            self.fault().await?;
            self.inner.approve_node(id).await
        }
        async fn delete_node(&self, id: &NodeId) -> Result<()> {
            self.fault().await?;
            self.inner.delete_node(id).await
        }
        async fn record_last_seen(&self, seen: &[(NodeId, UnixSeconds)]) -> Result<()> {
            self.fault().await?;
            self.inner.record_last_seen(seen).await
        }
        async fn changed_keys_since(&self, since_ms: i64) -> Result<Vec<ChangedKey>> {
            self.fault().await?;
            self.inner.changed_keys_since(since_ms).await
        }
    }

    #[async_trait]
    impl EnvironmentStore for FaultyStore {
        async fn create_environment(&self, environment: &Environment) -> Result<()> {
            self.fault().await?;
            self.inner.create_environment(environment).await
        }
        async fn environment(&self, name: &EnvironmentName) -> Result<Environment> {
            self.fault().await?;
            self.inner.environment(name).await
        }
        async fn list_environments(&self) -> Result<Vec<Environment>> {
            self.fault().await?;
            self.inner.list_environments().await
        }
        async fn put_config(
            &self,
            name: &EnvironmentName,
            config: &serde_json::Value,
            now: UnixSeconds,
            expected_version: Option<u64>,
        ) -> Result<u64> {
            self.fault().await?;
            self.inner
                .put_config(name, config, now, expected_version)
                .await
        }
        async fn put_environment_settings(
            &self,
            name: &EnvironmentName,
            settings: &EnvironmentSettings,
        ) -> Result<()> {
            self.fault().await?;
            self.inner.put_environment_settings(name, settings).await
        }
        async fn delete_environment(&self, name: &EnvironmentName) -> Result<()> {
            self.fault().await?;
            self.inner.delete_environment(name).await
        }
    }

    #[async_trait]
    impl SavedQueryStore for FaultyStore {
        async fn put_saved_query(&self, query: &SavedQuery) -> Result<SavedQuery> {
            self.fault().await?;
            self.inner.put_saved_query(query).await
        }
        async fn saved_query(&self, name: &SavedQueryName) -> Result<SavedQuery> {
            self.fault().await?;
            self.inner.saved_query(name).await
        }
        async fn list_saved_queries(&self) -> Result<Vec<SavedQuery>> {
            self.fault().await?;
            self.inner.list_saved_queries().await
        }
        async fn delete_saved_query(&self, name: &SavedQueryName) -> Result<()> {
            self.fault().await?;
            self.inner.delete_saved_query(name).await
        }
    }

    #[async_trait]
    impl LabelStore for FaultyStore {
        async fn put_label(&self, label: &Label) -> Result<Label> {
            self.fault().await?;
            self.inner.put_label(label).await
        }
        async fn label(&self, name: &LabelName) -> Result<Label> {
            self.fault().await?;
            self.inner.label(name).await
        }
        async fn list_labels(&self) -> Result<Vec<Label>> {
            self.fault().await?;
            self.inner.list_labels().await
        }
        async fn delete_label(&self, name: &LabelName) -> Result<()> {
            self.fault().await?;
            self.inner.delete_label(name).await
        }
        async fn set_label_member(
            &self,
            label: &LabelName,
            node: &NodeId,
            member: bool,
        ) -> Result<bool> {
            self.fault().await?;
            self.inner.set_label_member(label, node, member).await
        }
    }

    #[async_trait]
    impl QueryStore for FaultyStore {
        async fn create_query(&self, query: &NewQuery) -> Result<()> {
            self.fault().await?;
            self.inner.create_query(query).await
        }
        async fn query(&self, id: &QueryId) -> Result<DistributedQuery> {
            self.fault().await?;
            self.inner.query(id).await
        }
        async fn list_queries(
            &self,
            before: Option<&QueryId>,
            limit: usize,
        ) -> Result<Vec<DistributedQuery>> {
            self.fault().await?;
            self.inner.list_queries(before, limit).await
        }
        async fn cancel_query(&self, id: &QueryId, now: UnixSeconds) -> Result<()> {
            self.fault().await?;
            self.inner.cancel_query(id, now).await
        }
        async fn take_pending_queries(
            &self,
            node: NodeRef<'_>,
            now: UnixSeconds,
        ) -> Result<Vec<PendingQuery>> {
            self.fault().await?;
            self.inner.take_pending_queries(node, now).await
        }
        async fn live_queries(&self, now: UnixSeconds) -> Result<Vec<DistributedQuery>> {
            self.fault().await?;
            self.inner.live_queries(now).await
        }
        async fn record_result(&self, node: &NodeId, result: &QueryResult) -> Result<()> {
            self.fault().await?;
            self.inner.record_result(node, result).await
        }
        async fn query_targets(&self, id: &QueryId) -> Result<Vec<QueryTarget>> {
            self.fault().await?;
            self.inner.query_targets(id).await
        }
        async fn query_results(
            &self,
            id: &QueryId,
            after: Option<&NodeId>,
            limit: usize,
        ) -> Result<Vec<NodeQueryResult>> {
            self.fault().await?;
            self.inner.query_results(id, after, limit).await
        }
    }

    #[async_trait]
    impl CarveStore for FaultyStore {
        async fn create_carve(&self, carve: &NewCarve) -> Result<()> {
            self.fault().await?;
            self.inner.create_carve(carve).await
        }
        async fn carve(&self, id: &CarveSessionId) -> Result<CarveSession> {
            self.fault().await?;
            self.inner.carve(id).await
        }
        async fn record_carve_block(
            &self,
            id: &CarveSessionId,
            block_id: u64,
        ) -> Result<BlockRecorded> {
            self.fault().await?;
            self.inner.record_carve_block(id, block_id).await
        }
        async fn finish_carve(
            &self,
            id: &CarveSessionId,
            status: CarveStatus,
            sha256: Option<&str>,
            now: UnixSeconds,
        ) -> Result<()> {
            self.fault().await?;
            self.inner.finish_carve(id, status, sha256, now).await
        }
        async fn list_carves(&self, node: Option<&NodeId>) -> Result<Vec<CarveSession>> {
            self.fault().await?;
            self.inner.list_carves(node).await
        }
    }

    #[async_trait]
    impl UserStore for FaultyStore {
        async fn create_user(&self, user: &User) -> Result<()> {
            self.fault().await?;
            self.inner.create_user(user).await
        }
        async fn user(&self, username: &Username) -> Result<User> {
            self.fault().await?;
            self.inner.user(username).await
        }
        async fn list_users(&self) -> Result<Vec<User>> {
            self.fault().await?;
            self.inner.list_users().await
        }
        async fn update_user(&self, user: &User) -> Result<()> {
            self.fault().await?;
            self.inner.update_user(user).await
        }
        async fn delete_user(&self, username: &Username) -> Result<()> {
            self.fault().await?;
            self.inner.delete_user(username).await
        }
        async fn create_token(&self, token: &ApiToken) -> Result<()> {
            self.fault().await?;
            self.inner.create_token(token).await
        }
        async fn token_by_hash(&self, token_hash: &str) -> Result<ApiToken> {
            self.fault().await?;
            self.inner.token_by_hash(token_hash).await
        }
        async fn list_tokens(&self, username: Option<&Username>) -> Result<Vec<ApiToken>> {
            self.fault().await?;
            self.inner.list_tokens(username).await
        }
        async fn delete_token(&self, id: &str) -> Result<()> {
            self.fault().await?;
            self.inner.delete_token(id).await
        }
    }

    #[async_trait]
    impl AuditStore for FaultyStore {
        async fn append_audit(&self, entry: &AuditEntry) -> Result<()> {
            self.fault().await?;
            self.inner.append_audit(entry).await
        }
        async fn list_audit(
            &self,
            filter: &AuditFilter,
            before: Option<&str>,
            limit: usize,
        ) -> Result<Vec<AuditEntry>> {
            self.fault().await?;
            self.inner.list_audit(filter, before, limit).await
        }
        async fn record_secret_use(&self, secret_id: &str, now: UnixSeconds) -> Result<()> {
            self.fault().await?;
            self.inner.record_secret_use(secret_id, now).await
        }
        async fn secret_usage(&self) -> Result<Vec<SecretUsage>> {
            self.fault().await?;
            self.inner.secret_usage().await
        }
    }
}

/// Backends on `store` for tests, benches and fuzzing: the `default` environment with `config`,
/// in-memory secrets holding one enroll secret for it, a [`DiscardingLogSink`] and
/// in-memory blobs. Returns them and the secret's value.
///
/// # Panics
/// When the store cannot create the environment.
pub async fn default_backends(
    store: Arc<dyn crate::store::Store>,
    config: serde_json::Value,
) -> (crate::Backends, String) {
    let secret = super::secrets::new_secret("default");
    let value = secret.value.expose().to_owned();
    store
        .create_environment(&crate::store::Environment {
            name: crate::types::EnvironmentName::default_name(),
            config,
            created_at: 0,
            config_updated_at: 0,
            config_version: 1,
            settings: Default::default(),
        })
        .await
        .expect("the default environment is created");
    let backends = crate::Backends {
        store,
        secrets: Arc::new(MemorySecrets::new(vec![secret])),
        log_sink: Arc::new(DiscardingLogSink),
        blobs: Arc::new(MemoryBlobStore::new()),
    };
    (backends, value)
}
