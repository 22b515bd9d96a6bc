//! The agent service: what each osquery endpoint does, independent of HTTP.

mod carve;
mod config;
mod distributed;
mod enroll;
mod last_seen;
mod logs;

use std::sync::Arc;

pub use carve::{carve_archive_key, carve_block_key, CarveStart, CARVE_MAX_BLOCK_SIZE};
pub use config::{default_config, ConfigReply, NOT_MODIFIED_ETAG};
pub use enroll::EnrollRequest;

use crate::blobs::BlobStore;
use crate::error::{Error, ErrorKind, Result};
use crate::log_sink::LogSink;
use crate::secrets::SecretStore;
use crate::store::{Node, Store};
use crate::types::{now_unix, NodeKey};
use last_seen::LastSeen;

/// The four backends the service runs on.
#[derive(Debug, Clone)]
pub struct Backends {
    /// Nodes, environments, queries, carves.
    pub store: Arc<dyn Store>,
    /// Enroll secrets.
    pub secrets: Arc<dyn SecretStore>,
    /// Result and status log lines.
    pub log_sink: Arc<dyn LogSink>,
    /// Carve blocks and archives.
    pub blobs: Arc<dyn BlobStore>,
}

/// Handles osquery agent requests against the [`Backends`].
///
/// Cheap to share (`Arc<AgentService>`); every method is safe to call concurrently.
#[derive(Debug)]
pub struct AgentService {
    backends: Backends,
    last_seen: LastSeen,
}

impl AgentService {
    /// A service over `backends`.
    pub fn new(backends: Backends) -> Self {
        AgentService {
            backends,
            last_seen: LastSeen::default(),
        }
    }

    /// The backends this service runs on.
    pub fn backends(&self) -> &Backends {
        &self.backends
    }

    /// The node holding `key`, noting that it was seen now.
    ///
    /// # Errors
    /// `Unauthorized` for a malformed or unknown key (the agent must re-enroll); backend errors
    /// as they come.
    pub async fn authenticate(&self, key: &str) -> Result<Node> {
        let key = NodeKey::parse(key).map_err(|_| Error::unauthorized("invalid node key"))?;
        match self.backends.store.node_by_key(&key).await {
            Ok(node) => {
                self.last_seen.note(&node, now_unix());
                Ok(node)
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
        self.last_seen.flush(self.backends.store.as_ref()).await
    }
}
