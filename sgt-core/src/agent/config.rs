use bytes::Bytes;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::store::Node;

use super::cache::RenderedConfig;
use super::AgentService;

/// The etag value that means "not modified"; never used as a real etag.
pub const NOT_MODIFIED_ETAG: &str = "ok";

/// What the config endpoint answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigReply {
    /// The whole config document, compact JSON with sorted keys.
    Full(Bytes),
    /// The same document gzipped, for an agent that accepts gzip (osquery's
    /// `--tls_accept_gzip`): answer it with `Content-Encoding: gzip`.
    FullGzip(Bytes),
    /// The agent's etag is current: answer `{"etag":"ok"}`.
    NotModified,
}

/// Configs shorter than this are served plain even to agents that accept gzip: the saving is
/// a few hundred bytes.
const GZIP_FROM_BYTES: usize = 1024;

/// `json` gzipped, when it is long enough to be worth it (each rendered config is gzipped at
/// most once, for the first agent that accepts gzip).
pub(super) fn gzipped(json: &[u8]) -> Option<Bytes> {
    use std::io::Write;
    if json.len() < GZIP_FROM_BYTES {
        return None;
    }
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(json).ok()?;
    encoder.finish().ok().map(Bytes::from)
}

/// The config a new environment starts with: a small cross-platform schedule that tells an
/// operator what each host is, plus options that make the agent use this server's live
/// queries promptly.
pub fn default_config() -> serde_json::Value {
    json!({
        "options": {
            "distributed_interval": 10,
            "logger_tls_period": 10,
            "schedule_splay_percent": 10,
        },
        "schedule": {
            "osquery_info": {
                "query": "SELECT version, build_platform, build_distro, config_hash, config_valid, extensions FROM osquery_info;",
                "interval": 3600,
                "snapshot": true,
            },
            "os_version": {
                "query": "SELECT name, version, major, minor, patch, build, platform, arch FROM os_version;",
                "interval": 3600,
                "snapshot": true,
            },
            "system_info": {
                "query": "SELECT hostname, uuid, cpu_brand, cpu_logical_cores, physical_memory, hardware_vendor, hardware_model FROM system_info;",
                "interval": 86400,
                "snapshot": true,
            },
            "uptime": {
                "query": "SELECT total_seconds FROM uptime;",
                "interval": 3600,
                "snapshot": true,
            },
            "users": {
                "query": "SELECT uid, gid, username, description, directory, shell FROM users;",
                "interval": 3600,
            },
            "listening_ports": {
                "query": "SELECT pid, port, protocol, family, address FROM listening_ports;",
                "interval": 600,
            },
        },
        "decorators": {
            "load": ["SELECT uuid AS host_uuid FROM system_info;", "SELECT hostname FROM system_info;"],
        },
    })
}

impl AgentService {
    /// The config document for `node`'s environment, rendered for its platform.
    ///
    /// `etag` is what the agent sent (`None` for agents that send no `etag` field). Such
    /// agents always get the document without an etag, byte-identical while it is unchanged.
    /// Others get it with an `"etag"` member, or [`ConfigReply::NotModified`] when theirs is
    /// current.
    ///
    /// # Errors
    /// `NotFound` when the node's environment was deleted; backend errors as they come.
    pub async fn config(
        &self,
        node: &Node,
        etag: Option<&str>,
        accepts_gzip: bool,
    ) -> Result<ConfigReply> {
        let rendered = match self.cache.config(&node.environment, &node.platform) {
            Some(rendered) => rendered,
            None => {
                let rendered = self.render_config(node).await?;
                self.cache
                    .insert_config(&node.environment, &node.platform, rendered.clone());
                rendered
            }
        };
        let served = match etag {
            None => rendered.plain,
            Some(sent) if !sent.is_empty() && sent == rendered.etag => {
                return Ok(ConfigReply::NotModified)
            }
            Some(_) => rendered.with_etag,
        };
        // Only an agent that accepts gzip makes the gzipped copy.
        let gzip = if accepts_gzip { served.gzip() } else { None };
        Ok(match gzip {
            Some(gzip) => ConfigReply::FullGzip(gzip),
            None => ConfigReply::Full(served.json),
        })
    }

    /// Reads `node`'s environment and renders its config for the node's platform, with and
    /// without an etag.
    async fn render_config(&self, node: &Node) -> Result<RenderedConfig> {
        self.metrics
            .store_call(crate::metrics::StoreCall::Environment);
        let environment = self.backends.store.environment(&node.environment).await?;
        let mut config =
            crate::config_doc::render_for_platform(&environment.config, &node.platform);
        let object = config
            .as_object_mut()
            .ok_or_else(|| Error::invalid_input("stored config is not a JSON object"))?;
        object.remove("etag");
        let plain = serde_json::to_vec(&config).map_err(|e| Error::backend("config", e))?;
        let etag = config_etag(&plain);
        if let Some(object) = config.as_object_mut() {
            object.insert("etag".to_owned(), serde_json::Value::String(etag.clone()));
        }
        let with_etag = serde_json::to_vec(&config).map_err(|e| Error::backend("config", e))?;
        Ok(RenderedConfig::new(
            Bytes::from(plain),
            etag,
            Bytes::from(with_etag),
        ))
    }
}

/// The etag of a rendered config: a hash of exactly the bytes served without it.
fn config_etag(rendered: &[u8]) -> String {
    let digest = Sha256::digest(rendered);
    hex::encode(&digest[..16])
}
