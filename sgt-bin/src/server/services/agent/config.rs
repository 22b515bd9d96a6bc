use bytes::Bytes;
use sha2::{Digest, Sha256};

use sgt_core::error::{Error, Result};
use sgt_core::store::Node;

use super::AgentService;
use crate::server::metrics::StoreCall;
use crate::server::services::serving_cache::{CachedEnvironment, RenderKey, RenderedConfig};

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
        let environment = match self.cache.environment(&node.environment) {
            Some(environment) => environment,
            None => {
                self.metrics.store_call(StoreCall::Environment);
                let stored = self.backends.store.environment(&node.environment).await?;
                self.cache
                    .insert_environment(&node.environment, stored.config)
            }
        };
        let key = RenderKey {
            environment: node.environment.clone(),
            platform: node.platform.clone(),
            labels: environment.deciding_labels(&node.labels),
            pending: node.pending,
        };
        let rendered = match self.cache.config(&key, environment.generation) {
            Some(rendered) => rendered,
            None => {
                let rendered = render_config(&environment, &key)?;
                self.cache.insert_config(key, rendered.clone());
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
}

/// `environment`'s config rendered for the nodes `key` describes, with and without an etag.
/// A node awaiting approval gets the options only: no schedule, no packs.
fn render_config(environment: &CachedEnvironment, key: &RenderKey) -> Result<RenderedConfig> {
    let mut config = if key.pending {
        let options = environment.config.get("options").cloned();
        serde_json::json!({"options": options.unwrap_or_else(|| serde_json::json!({}))})
    } else {
        crate::server::services::config_doc::render_for_node(
            &environment.config,
            &key.platform,
            &key.labels,
        )
    };
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
        environment.generation,
    ))
}

/// The etag of a rendered config: a hash of exactly the bytes served without it.
fn config_etag(rendered: &[u8]) -> String {
    let digest = Sha256::digest(rendered);
    hex::encode(&digest[..16])
}
