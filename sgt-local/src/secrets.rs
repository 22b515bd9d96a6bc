//! Enroll secrets in a JSON file (mode 0600), loaded at open and written through on change.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use async_trait::async_trait;
use sgt_core::secrets::{EnrollSecret, SecretStore};
use sgt_core::{Error, Result};

use crate::fs_util::{io_error, write_atomic};

/// Enroll secrets kept in one JSON file readable only by its owner.
#[derive(Debug)]
pub struct FileSecrets {
    path: PathBuf,
    secrets: Mutex<Vec<EnrollSecret>>,
}

impl FileSecrets {
    /// Opens (or starts) the secrets file at `path`.
    ///
    /// # Errors
    /// `Backend` when the file exists but cannot be read or parsed.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let secrets = match std::fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).map_err(|e| Error::backend("file-secrets", e))?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(io_error("file-secrets", "secrets file", e)),
        };
        Ok(FileSecrets {
            path,
            secrets: Mutex::new(secrets),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<EnrollSecret>> {
        self.secrets.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes `next` to disk, then makes it current; on failure nothing changes.
    fn commit(&self, current: &mut Vec<EnrollSecret>, next: Vec<EnrollSecret>) -> Result<()> {
        let bytes =
            serde_json::to_vec_pretty(&next).map_err(|e| Error::backend("file-secrets", e))?;
        write_atomic(&self.path, &bytes, 0o600)
            .map_err(|e| io_error("file-secrets", "secrets file", e))?;
        *current = next;
        Ok(())
    }
}

#[async_trait]
impl SecretStore for FileSecrets {
    async fn list_enroll_secrets(&self) -> Result<Vec<EnrollSecret>> {
        Ok(self.lock().clone())
    }

    async fn add_enroll_secret(&self, secret: &EnrollSecret) -> Result<()> {
        let mut current = self.lock();
        if current.iter().any(|s| s.id == secret.id) {
            return Err(Error::already_exists("enroll secret"));
        }
        let mut next = current.clone();
        next.push(secret.clone());
        self.commit(&mut current, next)
    }

    async fn revoke_enroll_secret(&self, id: &str) -> Result<()> {
        let mut current = self.lock();
        if !current.iter().any(|s| s.id == id) {
            return Err(Error::not_found("enroll secret"));
        }
        let next = current.iter().filter(|s| s.id != id).cloned().collect();
        self.commit(&mut current, next)
    }
}
