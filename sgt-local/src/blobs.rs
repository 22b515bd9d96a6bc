//! Blobs as files under a root directory, one path segment per key segment.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;
use sgt_core::blobs::{BlobKey, BlobStore};
use sgt_core::{Error, Result};

use crate::fs_util::{io_error, sync_dir, temp_path_beside, write_atomic};

const BACKEND: &str = "dir-blobs";

/// Blobs stored as files below a root directory.
#[derive(Debug, Clone)]
pub struct DirBlobStore {
    root: PathBuf,
}

impl DirBlobStore {
    /// A store rooted at `root` (created if missing).
    ///
    /// # Errors
    /// `Backend` when the directory cannot be created.
    pub fn open(root: impl AsRef<Path>) -> Result<Self> {
        let root = root.as_ref().to_path_buf();
        std::fs::create_dir_all(&root).map_err(|e| Error::backend(BACKEND, e))?;
        Ok(DirBlobStore { root })
    }

    /// The file of `key`. Keys are validated to plain segments, so this stays under the root.
    fn path(&self, key: &BlobKey) -> PathBuf {
        let mut path = self.root.clone();
        path.extend(key.segments());
        path
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> std::io::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(std::io::Error::other)?
}

fn concat_files(target: &Path, parts: &[PathBuf]) -> std::io::Result<u64> {
    use std::fs::{self, File};
    let dir = target.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    let temp = temp_path_beside(target);
    let result = (|| {
        let mut options = fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            // An assembled archive is as private as its blocks.
            options.mode(0o600);
        }
        let mut out = options.open(&temp)?;
        let mut size = 0;
        for part in parts {
            size += std::io::copy(&mut File::open(part)?, &mut out)?;
        }
        out.sync_all()?;
        fs::rename(&temp, target)?;
        sync_dir(dir)?;
        Ok(size)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result
}

#[async_trait]
impl BlobStore for DirBlobStore {
    async fn put(&self, key: &BlobKey, data: Bytes) -> Result<()> {
        let path = self.path(key);
        blocking(move || write_atomic(&path, &data, 0o600))
            .await
            .map_err(|e| io_error(BACKEND, "blob", e))
    }

    async fn get(&self, key: &BlobKey) -> Result<Bytes> {
        tokio::fs::read(self.path(key))
            .await
            .map(Bytes::from)
            .map_err(|e| io_error(BACKEND, "blob", e))
    }

    async fn size(&self, key: &BlobKey) -> Result<u64> {
        tokio::fs::metadata(self.path(key))
            .await
            .map(|m| m.len())
            .map_err(|e| io_error(BACKEND, "blob", e))
    }

    async fn read_range(&self, key: &BlobKey, offset: u64, len: u64) -> Result<Bytes> {
        use tokio::io::{AsyncReadExt, AsyncSeekExt};
        let mut file = tokio::fs::File::open(self.path(key))
            .await
            .map_err(|e| io_error(BACKEND, "blob", e))?;
        file.seek(std::io::SeekFrom::Start(offset))
            .await
            .map_err(|e| Error::backend(BACKEND, e))?;
        let mut buf = Vec::with_capacity(len.min(16 << 20) as usize);
        file.take(len)
            .read_to_end(&mut buf)
            .await
            .map_err(|e| Error::backend(BACKEND, e))?;
        Ok(Bytes::from(buf))
    }

    async fn concat(&self, target: &BlobKey, parts: &[BlobKey]) -> Result<u64> {
        let target = self.path(target);
        let parts: Vec<PathBuf> = parts.iter().map(|p| self.path(p)).collect();
        blocking(move || concat_files(&target, &parts))
            .await
            .map_err(|e| io_error(BACKEND, "blob", e))
    }

    async fn delete(&self, key: &BlobKey) -> Result<()> {
        match tokio::fs::remove_file(self.path(key)).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::backend(BACKEND, e)),
        }
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[tokio::test]
    async fn blocks_and_assembled_archives_are_private_to_the_server() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = DirBlobStore::open(dir.path()).unwrap();
        let part = BlobKey::parse("carves/s/block-0").unwrap();
        let archive = BlobKey::parse("carves/s/archive").unwrap();
        blobs.put(&part, Bytes::from_static(b"abc")).await.unwrap();
        assert_eq!(
            blobs
                .concat(&archive, std::slice::from_ref(&part))
                .await
                .unwrap(),
            3
        );
        for key in [&part, &archive] {
            let mode = std::fs::metadata(blobs.path(key))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{key}");
        }
    }
}
