//! Wiring: the one place that turns settings into backends.

use std::sync::Arc;

use sgt_core::agent::Backends;
use sgt_local::{DirBlobStore, FileLogSink, FileLogSinkOptions, FileSecrets, SqliteStore};

use crate::settings::{BlobsSetting, LogSinkSetting, SecretsSetting, Settings, StorageSetting};

/// Opens every backend the settings name.
///
/// # Errors
/// When a backend cannot be opened (unreadable file, failed migration, ...).
pub async fn build_backends(settings: &Settings) -> anyhow::Result<Backends> {
    let store = match &settings.storage {
        StorageSetting::Sqlite { path } => Arc::new(SqliteStore::open(path).await?),
    };
    let secrets = match &settings.secrets {
        SecretsSetting::File { path } => Arc::new(FileSecrets::open(path)?),
    };
    let log_sink = match &settings.log_sink {
        LogSinkSetting::File { dir, rotate_bytes } => {
            let mut options = FileLogSinkOptions::new(dir);
            options.rotate_bytes = *rotate_bytes;
            Arc::new(FileLogSink::open(options)?)
        }
    };
    let blobs = match &settings.blobs {
        BlobsSetting::Dir { path } => Arc::new(DirBlobStore::open(path)?),
    };
    Ok(Backends {
        store,
        secrets,
        log_sink,
        blobs,
    })
}
