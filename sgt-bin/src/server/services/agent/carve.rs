use std::sync::Arc;

use bytes::Bytes;
use sha2::{Digest, Sha256};

use crate::server::metrics::StoreCall;
use sgt_core::blobs::BlobKey;
use sgt_core::error::{Error, ErrorKind, Result};
use sgt_core::store::{CarveStatus, NewCarve, Node};
use sgt_core::types::{now_unix, CarveSessionId};

use super::AgentService;

/// The largest block size accepted from an agent (osquery's default is 8 KiB).
pub const CARVE_MAX_BLOCK_SIZE: u64 = 16 * 1024 * 1024;
/// The smallest block size accepted (osquery's `--carver_block_size` is 8 KiB by default):
/// each block is a blob of its own until assembly.
pub const CARVE_MIN_BLOCK_SIZE: u64 = 1024;
/// The largest carve accepted (8 GiB).
pub const CARVE_MAX_SIZE: u64 = 8 * 1024 * 1024 * 1024;
/// Carves one node may be uploading at once.
pub const CARVE_MAX_OPEN_PER_NODE: usize = 4;
/// A carve still receiving blocks this long after it started is abandoned: its blocks are
/// deleted and it is marked failed.
pub const CARVE_ABANDONED_AFTER_SECONDS: i64 = 24 * 3600;

/// What a [`AgentService::sweep_carves`] run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CarveSweep {
    /// Carves whose blocks had all arrived, assembled now.
    pub assembled: usize,
    /// Carves abandoned part-way, marked failed with their blocks deleted.
    pub expired: usize,
}

/// Whether a live query's SQL reads osquery's `carves` table, which is what makes an agent
/// carve.
fn asks_for_carve(sql: &str) -> bool {
    sql.to_ascii_lowercase().contains("carves")
}

/// What `carve/start` announces.
#[derive(Debug, Clone)]
pub struct CarveStart {
    /// Number of blocks that follow.
    pub block_count: u64,
    /// Size of each block but possibly the last.
    pub block_size: u64,
    /// Total size of the archive.
    pub carve_size: u64,
    /// osquery's carve GUID.
    pub carve_guid: String,
    /// osquery's request id.
    pub request_id: String,
}

/// Where block `block_id` of a session is kept until assembly.
pub fn carve_block_key(session: &CarveSessionId, block_id: u64) -> BlobKey {
    BlobKey::parse(format!("carves/{}/block-{block_id}", session.as_str()))
        .expect("session ids are valid key segments")
}

/// The id a carve is shown and fetched by in the admin API: the first 128 bits of the SHA-256
/// of its session id, in hex. The session id is the upload capability (the only credential of
/// older agents' `carve/continue`), so it is never shown; this id cannot be turned back into
/// it.
pub fn carve_public_id(session: &CarveSessionId) -> String {
    let digest = Sha256::digest(format!("sgt-carve:{}", session.as_str()).as_bytes());
    hex::encode(&digest[..16])
}

/// Where the assembled archive of a session is kept.
pub fn carve_archive_key(session: &CarveSessionId) -> BlobKey {
    BlobKey::parse(format!("carves/{}/archive", session.as_str()))
        .expect("session ids are valid key segments")
}

impl AgentService {
    /// Opens a carve session for `node`; returns the session id the agent sends with blocks.
    ///
    /// A carve is accepted only when it answers a carve the server asked this node for: a
    /// live query on osquery's `carves` table that targets the node, whose stored answer from
    /// the node has a row with this `carve_id` and `request_id` (osquery 4.7+), or whose id is
    /// the `request_id` (older agents). At most [`CARVE_MAX_OPEN_PER_NODE`] may be open.
    ///
    /// # Errors
    /// `InvalidInput` when the sizes are inconsistent or outside the limits; `Forbidden` for a
    /// carve nobody asked for or from a node awaiting approval; `Conflict` past the open
    /// carves per node; backend errors.
    pub async fn carve_start(&self, node: &Node, start: CarveStart) -> Result<CarveSessionId> {
        if node.pending {
            return Err(super::awaiting_approval());
        }
        if !(CARVE_MIN_BLOCK_SIZE..=CARVE_MAX_BLOCK_SIZE).contains(&start.block_size) {
            return Err(Error::invalid_input(format!(
                "block_size must be {CARVE_MIN_BLOCK_SIZE} to {CARVE_MAX_BLOCK_SIZE}"
            )));
        }
        if start.carve_size == 0 || start.carve_size > CARVE_MAX_SIZE {
            return Err(Error::invalid_input(format!(
                "carve_size must be 1 to {CARVE_MAX_SIZE}"
            )));
        }
        if start.block_count != start.carve_size.div_ceil(start.block_size) {
            return Err(Error::invalid_input(
                "block_count must equal carve_size / block_size rounded up",
            ));
        }
        for (name, value) in [
            ("carve_id", &start.carve_guid),
            ("request_id", &start.request_id),
        ] {
            if value.len() > 256 || value.chars().any(char::is_control) {
                return Err(Error::invalid_input(format!(
                    "{name} must be at most 256 printable characters"
                )));
            }
        }
        if !self.carve_was_requested(node, &start).await? {
            tracing::warn!(node_id = %node.id, "a carve nobody asked this node for was refused");
            return Err(Error::forbidden(
                "no carve was requested of this node: carves answer a live query on the carves table",
            ));
        }
        let open = self
            .backends
            .store
            .list_carves(Some(&node.id))
            .await?
            .iter()
            .filter(|s| s.status == CarveStatus::Receiving)
            .count();
        if open >= CARVE_MAX_OPEN_PER_NODE {
            return Err(Error::conflict(format!(
                "this node already uploads {open} carves; finish or wait for them"
            )));
        }
        let session_id = CarveSessionId::generate();
        self.metrics.store_call(StoreCall::Carve);
        self.backends
            .store
            .create_carve(&NewCarve {
                session_id: session_id.clone(),
                node_id: node.id.clone(),
                carve_guid: start.carve_guid,
                request_id: start.request_id,
                block_count: start.block_count,
                block_size: start.block_size,
                carve_size: start.carve_size,
                created_at: now_unix(),
            })
            .await?;
        tracing::info!(node_id = %node.id, carve = %carve_public_id(&session_id), blocks = start.block_count, "carve started");
        Ok(session_id)
    }

    /// Stores one block. Once the last block is durable the request is answered, and the
    /// archive is assembled in the background ([`AgentService::sweep_carves`]
    /// finishes any assembly a restart cut short). A resent block is accepted again without
    /// effect while the carve receives blocks.
    ///
    /// `sender` is the node the request's node key names, when it carries one (osquery
    /// 5.23+ sends it in the `Authorization` header): it must be the carve's node.
    ///
    /// # Errors
    /// `NotFound` for an unknown session; `Forbidden` for a block from another node;
    /// `Conflict` for a block of a carve that is complete or failed; `InvalidInput` for a
    /// block id out of range or a block of the wrong size; backend errors (the agent then
    /// resends the block).
    pub async fn carve_continue(
        &self,
        session_id: &CarveSessionId,
        sender: Option<&Node>,
        block_id: u64,
        data: Bytes,
    ) -> Result<()> {
        let store = &self.backends.store;
        self.metrics.store_call(StoreCall::Carve);
        let session = store.carve(session_id).await.map_err(|e| match e.kind() {
            ErrorKind::NotFound => Error::not_found("carve session"),
            _ => e,
        })?;
        let carve = &session.carve;
        if sender.is_some_and(|node| node.id != carve.node_id) {
            tracing::warn!(carve = %carve_public_id(session_id), "a carve block from another node was refused");
            return Err(Error::forbidden("this carve belongs to another node"));
        }
        match session.status {
            CarveStatus::Receiving => {}
            CarveStatus::Complete => {
                return Err(Error::conflict("the carve is already complete"));
            }
            CarveStatus::Failed => return Err(Error::conflict("the carve failed")),
        }
        if block_id >= carve.block_count {
            return Err(Error::invalid_input(format!(
                "block_id must be below {}",
                carve.block_count
            )));
        }
        let expected = if block_id + 1 == carve.block_count {
            carve.carve_size - (carve.block_count - 1) * carve.block_size
        } else {
            carve.block_size
        };
        if data.len() as u64 != expected {
            return Err(Error::invalid_input(format!(
                "block {block_id} has {} bytes, expected {expected}",
                data.len()
            )));
        }
        self.backends
            .blobs
            .put(&carve_block_key(session_id, block_id), data)
            .await?;
        self.metrics.store_call(StoreCall::Carve);
        let recorded = store.record_carve_block(session_id, block_id).await?;
        if recorded.newly_recorded && recorded.blocks_received == carve.block_count {
            // Joining a large archive takes longer than a request may: do it apart from it.
            let (backends, metrics) = (self.backends.clone(), Arc::clone(&self.metrics));
            let (session_id, block_count) = (session_id.clone(), carve.block_count);
            tokio::spawn(async move {
                assemble_carve_or_log(&backends, &metrics, &session_id, block_count).await
            });
        }
        Ok(())
    }

    /// Whether `start` answers a carve the server asked `node` for (see
    /// [`AgentService::carve_start`]).
    async fn carve_was_requested(&self, node: &Node, start: &CarveStart) -> Result<bool> {
        const PAGE: usize = 1000;
        let store = &self.backends.store;
        // The live campaigns are in memory (refreshed every second): a node that sends
        // carve/start again and again costs no store listing.
        let asks_this_node = |q: &sgt_core::store::DistributedQuery| {
            asks_for_carve(&q.sql) && q.targets.matches(sgt_core::store::NodeRef::of(node))
        };
        let candidates = match self.cache.live_queries_where(asks_this_node) {
            Some(candidates) => candidates,
            None => {
                let live = store.live_queries(now_unix()).await?;
                live.into_iter().filter(|q| asks_this_node(q)).collect()
            }
        };
        for query in candidates {
            if query.id.as_str() == start.request_id {
                return Ok(true);
            }
            let mut after = None;
            loop {
                let page = store.query_results(&query.id, after.as_ref(), PAGE).await?;
                if let Some(answer) = page.iter().find(|r| r.node_id == node.id) {
                    let names_this_carve = |row: &serde_json::Value| {
                        row["carve_guid"] == start.carve_guid.as_str()
                            && row["request_id"] == start.request_id.as_str()
                    };
                    if answer.result.rows.iter().any(names_this_carve) {
                        return Ok(true);
                    }
                    break;
                }
                if page.len() < PAGE {
                    break;
                }
                after = page.last().map(|r| r.node_id.clone());
            }
        }
        Ok(false)
    }

    /// Assembles every carve whose blocks have all arrived but that is not complete yet (its
    /// assembly was cut short by a restart or failed), and expires carves still receiving
    /// [`CARVE_ABANDONED_AFTER_SECONDS`] after they started (their blocks are deleted). Run
    /// at start and then now and then.
    ///
    /// # Errors
    /// The store's error listing carves; a failed assembly or expiry is logged and left for
    /// next time.
    pub async fn sweep_carves(&self) -> Result<CarveSweep> {
        let mut sweep = CarveSweep::default();
        let now = now_unix();
        for session in self.backends.store.list_carves(None).await? {
            let carve = &session.carve;
            if session.status != CarveStatus::Receiving {
                continue;
            }
            if session.blocks_received < carve.block_count {
                if now - carve.created_at >= CARVE_ABANDONED_AFTER_SECONDS {
                    match self
                        .expire_carve(&carve.session_id, carve.block_count, now)
                        .await
                    {
                        Ok(()) => sweep.expired += 1,
                        Err(e) => {
                            tracing::warn!(carve = %carve_public_id(&carve.session_id), error = %e, "abandoned carve not expired; it is tried again later");
                        }
                    }
                }
                continue;
            }
            let assembled = assemble_carve_or_log(
                &self.backends,
                &self.metrics,
                &carve.session_id,
                carve.block_count,
            )
            .await;
            sweep.assembled += usize::from(assembled);
        }
        Ok(sweep)
    }

    /// Marks an abandoned carve failed and deletes its blocks.
    async fn expire_carve(
        &self,
        session_id: &CarveSessionId,
        block_count: u64,
        now: sgt_core::types::UnixSeconds,
    ) -> Result<()> {
        // Blocks first: if a delete fails, the carve is still receiving and the next sweep
        // tries again, instead of a failed carve leaving its blocks behind.
        for block in 0..block_count {
            self.backends
                .blobs
                .delete(&carve_block_key(session_id, block))
                .await?;
        }
        self.backends
            .store
            .finish_carve(session_id, CarveStatus::Failed, None, now)
            .await?;
        tracing::info!(carve = %carve_public_id(session_id), "abandoned carve expired");
        Ok(())
    }
}

/// [`assemble_carve`]; a failure is logged (the sweep tries again). True when assembled.
async fn assemble_carve_or_log(
    backends: &super::Backends,
    metrics: &crate::server::metrics::Metrics,
    session_id: &CarveSessionId,
    block_count: u64,
) -> bool {
    match assemble_carve(backends, metrics, session_id, block_count).await {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(carve = %carve_public_id(session_id), error = %e, "carve assembly failed; it is tried again later");
            false
        }
    }
}

/// Joins the blocks into the archive, hashes it, marks the session complete and drops the
/// blocks. Safe to run twice, even at once on two instances: the result is the same archive.
async fn assemble_carve(
    backends: &super::Backends,
    metrics: &crate::server::metrics::Metrics,
    session_id: &CarveSessionId,
    block_count: u64,
) -> Result<()> {
    let blobs = &backends.blobs;
    let parts: Vec<BlobKey> = (0..block_count)
        .map(|i| carve_block_key(session_id, i))
        .collect();
    let mut hasher = Sha256::new();
    for part in &parts {
        hasher.update(blobs.get(part).await?);
    }
    let sha256 = hex::encode(hasher.finalize());
    let size = blobs.concat(&carve_archive_key(session_id), &parts).await?;
    metrics.store_call(StoreCall::Carve);
    backends
        .store
        .finish_carve(session_id, CarveStatus::Complete, Some(&sha256), now_unix())
        .await?;
    for part in &parts {
        if let Err(e) = blobs.delete(part).await {
            tracing::warn!(carve = %carve_public_id(session_id), error = %e, "carve block not deleted after assembly");
        }
    }
    tracing::info!(carve = %carve_public_id(session_id), size, sha256 = %sha256, "carve assembled");
    Ok(())
}
