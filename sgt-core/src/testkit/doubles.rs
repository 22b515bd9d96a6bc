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

/// Wraps a sink: the first `fail_first` appends fail with `Unavailable` without reaching it,
/// and every append first waits `delay`.
#[derive(Debug)]
pub struct FaultyLogSink<S> {
    inner: S,
    remaining_failures: AtomicUsize,
    delay: Duration,
}

impl<S: LogSink> FaultyLogSink<S> {
    /// A sink failing its first `fail_first` appends.
    pub fn failing_first(inner: S, fail_first: usize) -> Self {
        FaultyLogSink {
            inner,
            remaining_failures: AtomicUsize::new(fail_first),
            delay: Duration::ZERO,
        }
    }

    /// A sink adding `delay` to every append.
    pub fn slow(inner: S, delay: Duration) -> Self {
        FaultyLogSink {
            inner,
            remaining_failures: AtomicUsize::new(0),
            delay,
        }
    }

    /// The wrapped sink.
    pub fn inner(&self) -> &S {
        &self.inner
    }
}

#[async_trait]
impl<S: LogSink> LogSink for FaultyLogSink<S> {
    async fn append(&self, batch: &LogBatch) -> Result<()> {
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        let failed = self
            .remaining_failures
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if failed {
            return Err(Error::unavailable("injected sink failure"));
        }
        self.inner.append(batch).await
    }

    fn limits(&self) -> SinkLimits {
        self.inner.limits()
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
}

impl MemoryBlobStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
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

    async fn concat(&self, target: &BlobKey, parts: &[BlobKey]) -> Result<u64> {
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
