//! File carves: asking a node for files, following uploads, downloading archives.

use super::AdminService;
use crate::admin_types::{Caller, CarveRequest, CarveView, NewCampaign, Page, QueryView};
use crate::server::services::agent::{carve_archive_key, carve_public_id};
use sgt_core::blobs::BlobKey;
use sgt_core::error::{Error, Result};
use sgt_core::store::{CarveSession, CarveStatus, QueryTargets, Role};
use sgt_core::types::NodeId;

impl From<CarveSession> for CarveView {
    fn from(session: CarveSession) -> Self {
        let progress_percent = (session.blocks_received * 100)
            .checked_div(session.carve.block_count)
            .unwrap_or(0);
        let carve = session.carve;
        CarveView {
            id: carve_public_id(&carve.session_id),
            node_id: carve.node_id,
            carve_guid: carve.carve_guid,
            request_id: carve.request_id,
            block_count: carve.block_count,
            block_size: carve.block_size,
            carve_size: carve.carve_size,
            created_at: carve.created_at,
            status: session.status,
            blocks_received: session.blocks_received,
            progress_percent,
            sha256: session.sha256,
            finished_at: session.finished_at,
        }
    }
}

/// Where an assembled archive is and what it is.
#[derive(Debug, Clone)]
pub struct ArchiveInfo {
    /// Blob key.
    pub key: BlobKey,
    /// Size in bytes.
    pub size: u64,
    /// `application/zstd` for compressed carves, else `application/x-tar`.
    pub content_type: &'static str,
    /// A file name for downloads.
    pub file_name: String,
}

fn carve_sql(path: &str) -> Result<String> {
    let absolute = path.starts_with('/')
        || (path.len() > 2
            && path.as_bytes()[1] == b':'
            && path.as_bytes()[0].is_ascii_alphabetic());
    if !absolute || path.len() > 4096 || path.chars().any(char::is_control) {
        return Err(Error::invalid_input(
            "path must be an absolute path of at most 4096 printable characters",
        ));
    }
    let quoted = path.replace('\'', "''");
    let op = if path.contains('%') { "LIKE" } else { "=" };
    Ok(format!(
        "SELECT * FROM carves WHERE carve = 1 AND path {op} '{quoted}';"
    ))
}

impl AdminService {
    /// Asks a node for files (operators and admins): a live query on the `carves` table that
    /// makes the agent upload them as one archive. The upload appears in the carve list when
    /// it starts (within about a minute of the agent running the query).
    ///
    /// # Errors
    /// `Forbidden`; `InvalidInput` for a bad path or unknown node.
    pub async fn request_carve(&self, caller: &Caller, request: CarveRequest) -> Result<QueryView> {
        caller.require(Role::Operator)?;
        let sql = carve_sql(&request.path)?;
        self.create_campaign(
            caller,
            NewCampaign {
                sql,
                targets: QueryTargets {
                    node_ids: vec![request.node_id],
                    ..Default::default()
                },
                saved_query: None,
                expires_in_seconds: None,
            },
        )
        .await
    }

    /// Carves, newest first, optionally of one node, a page at a time: those after the carve
    /// `cursor` (a carve id; empty or absent: the first page), at most `limit` (0: 100).
    ///
    /// # Errors
    /// `InvalidInput` for a bad node id or a cursor that names no carve; backend errors.
    pub async fn list_carves(
        &self,
        caller: &Caller,
        node: Option<&str>,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<CarveView>> {
        caller.require(Role::Viewer)?;
        let node = node
            .map(|n| NodeId::parse(n).map_err(|_| Error::invalid_input("bad node id")))
            .transpose()?;
        let carves: Vec<CarveView> = self
            .backends
            .store
            .list_carves(node.as_ref())
            .await?
            .into_iter()
            .map(CarveView::from)
            .collect();
        let start = match crate::admin_types::non_empty(cursor) {
            None => 0,
            Some(cursor) => {
                carves
                    .iter()
                    .position(|c| c.id == cursor)
                    .ok_or_else(|| Error::invalid_input("cursor names no carve"))?
                    + 1
            }
        };
        let size = crate::admin_types::page_limit((limit > 0).then_some(limit));
        let items: Vec<CarveView> = carves.into_iter().skip(start).take(size).collect();
        Ok(Page::new(items, limit, |c: &CarveView| c.id.clone()))
    }

    /// One carve, by its admin API id.
    ///
    /// # Errors
    /// `NotFound`.
    pub async fn carve(&self, caller: &Caller, id: &str) -> Result<CarveView> {
        Ok(self.carve_session(caller, id).await?.into())
    }

    /// The session of the carve with admin API id `id`.
    async fn carve_session(&self, caller: &Caller, id: &str) -> Result<CarveSession> {
        caller.require(Role::Viewer)?;
        self.backends
            .store
            .list_carves(None)
            .await?
            .into_iter()
            .find(|s| carve_public_id(&s.carve.session_id) == id)
            .ok_or_else(|| Error::not_found("carve"))
    }

    /// Where the assembled archive of a complete carve is, for streaming it.
    ///
    /// # Errors
    /// `NotFound`; `Conflict` while the carve is not complete.
    pub async fn carve_archive(&self, caller: &Caller, id: &str) -> Result<ArchiveInfo> {
        let session = self.carve_session(caller, id).await?;
        if session.status != CarveStatus::Complete {
            return Err(Error::conflict("the carve is not complete yet"));
        }
        let key = carve_archive_key(&session.carve.session_id);
        let size = self.backends.blobs.size(&key).await?;
        let head = self.backends.blobs.read_range(&key, 0, 4).await?;
        let zstd = head.as_ref() == [0x28, 0xb5, 0x2f, 0xfd];
        Ok(ArchiveInfo {
            key,
            size,
            content_type: if zstd {
                "application/zstd"
            } else {
                "application/x-tar"
            },
            file_name: format!("carve-{id}.{}", if zstd { "tar.zst" } else { "tar" }),
        })
    }

    /// Up to `len` bytes of an archive from `offset` (empty past its end), for streaming
    /// a download a piece at a time.
    ///
    /// # Errors
    /// Backend errors.
    pub async fn read_archive(
        &self,
        archive: &ArchiveInfo,
        offset: u64,
        len: u64,
    ) -> Result<bytes::Bytes> {
        self.backends
            .blobs
            .read_range(&archive.key, offset, len)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::carve_sql;

    #[test]
    fn carve_paths_are_quoted_and_checked() {
        assert_eq!(
            carve_sql("/etc/pass'wd").unwrap(),
            "SELECT * FROM carves WHERE carve = 1 AND path = '/etc/pass''wd';"
        );
        assert!(carve_sql("/var/log/%.log").unwrap().contains("LIKE"));
        assert!(carve_sql("C:\\Windows\\x").is_ok());
        assert!(carve_sql("relative").is_err());
        assert!(carve_sql("/a\nb").is_err());
    }
}
