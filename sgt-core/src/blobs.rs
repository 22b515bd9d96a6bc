//! Byte objects: carve blocks and assembled carve archives.

use std::fmt;

use async_trait::async_trait;
use bytes::Bytes;

use crate::error::{Error, Result};

/// The name of a blob: `/`-separated segments of `[A-Za-z0-9._-]`, none empty, `.` or `..`,
/// at most 512 bytes. Safe to map onto a file path or an object key.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlobKey(String);

impl BlobKey {
    /// Validates a key.
    pub fn parse(value: impl Into<String>) -> Result<Self> {
        let value = value.into();
        if value.is_empty() || value.len() > 512 {
            return Err(Error::invalid_input("blob key must be 1 to 512 bytes"));
        }
        for segment in value.split('/') {
            let ok = !segment.is_empty()
                && segment != "."
                && segment != ".."
                && segment
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
            if !ok {
                return Err(Error::invalid_input("blob key has an invalid segment"));
            }
        }
        Ok(BlobKey(value))
    }

    /// The key as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The segments of the key.
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }
}

impl fmt::Display for BlobKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for BlobKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BlobKey({:?})", self.0)
    }
}

/// A store of immutable byte objects.
///
/// # Contract
/// - `put` is durable when it returns and replaces any blob of that key whole: readers see
///   the old or the new bytes, never a mix.
/// - `concat` writes `target` as the parts joined in order, without holding them all in memory
///   where the backend can avoid it; the parts stay.
/// - `delete` of a missing key succeeds.
///
/// # Errors
/// `NotFound` for a missing key (`get`, `size`, a missing part of `concat`);
/// `Unavailable` / `Backend` for backend failures.
#[async_trait]
pub trait BlobStore: Send + Sync + std::fmt::Debug + 'static {
    /// Stores `data` under `key`.
    async fn put(&self, key: &BlobKey, data: Bytes) -> Result<()>;

    /// The bytes under `key`.
    async fn get(&self, key: &BlobKey) -> Result<Bytes>;

    /// The size in bytes of the blob under `key`.
    async fn size(&self, key: &BlobKey) -> Result<u64>;

    /// At most `len` bytes of the blob under `key` from `offset` (fewer at its end, none past
    /// it), so large blobs can be streamed in pieces.
    async fn read_range(&self, key: &BlobKey, offset: u64, len: u64) -> Result<Bytes>;

    /// Writes `target` as `parts` joined in order; returns its size.
    async fn concat(&self, target: &BlobKey, parts: &[BlobKey]) -> Result<u64>;

    /// Removes `key`.
    async fn delete(&self, key: &BlobKey) -> Result<()>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_cannot_escape() {
        assert!(BlobKey::parse("carves/abc/block-0").is_ok());
        for bad in [
            "", "/a", "a/", "a//b", "../a", "a/../b", "a/./b", "a b", "a\\b",
        ] {
            assert!(BlobKey::parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
