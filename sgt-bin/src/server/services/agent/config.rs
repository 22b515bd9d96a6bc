use bytes::Bytes;
use sha2::{Digest, Sha256};

use sgt_core::error::{Error, Result};
use sgt_core::store::Node;

use super::AgentService;
use crate::server::metrics::StoreCall;
use crate::server::services::serving_cache::{CachedEnvironment, RenderedConfig};
use sgt_core::types::LabelName;

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
        let labels = environment.deciding_labels(&node.labels);
        let cached = self.cache.config(
            &node.environment,
            &node.platform,
            &labels,
            environment.generation,
        );
        let rendered = match cached {
            Some(rendered) => rendered,
            None => {
                let rendered = render_config(&environment, &node.platform, &labels)?;
                self.cache.insert_config(
                    &node.environment,
                    &node.platform,
                    labels,
                    rendered.clone(),
                );
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

/// `environment`'s config rendered for nodes of `platform` that are members of `labels`, with
/// and without an etag.
fn render_config(
    environment: &CachedEnvironment,
    platform: &str,
    labels: &[LabelName],
) -> Result<RenderedConfig> {
    let mut config =
        crate::server::services::config_doc::render_for_node(&environment.config, platform, labels);
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
