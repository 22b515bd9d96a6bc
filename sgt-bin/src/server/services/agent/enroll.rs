use crate::server::metrics::StoreCall;
use sgt_core::error::{Error, Result};
use sgt_core::store::NewNode;
use sgt_core::types::{now_unix, platform_name, HostIdentifier, NodeId, NodeKey};

use super::AgentService;

/// An enroll request as osquery sends it.
#[derive(Debug, Clone)]
pub struct EnrollRequest {
    /// The presented secret (already trimmed by the agent when it came from a file).
    pub enroll_secret: String,
    /// osquery's host identifier.
    pub host_identifier: HostIdentifier,
    /// osquery's platform bitmask, as a decimal string.
    pub platform_type: String,
    /// The `host_details` object (`{}` when absent).
    pub host_details: serde_json::Value,
    /// Where the request came from, when known: enrolls are rate-limited per address.
    pub source: Option<std::net::IpAddr>,
}

impl AgentService {
    /// Enrolls a host: the secret decides its environment; returns a fresh node key.
    ///
    /// A host that enrolls again (same environment, host identifier and hardware uuid) keeps
    /// its node id and gets a new key; its old key stops working.
    ///
    /// # Errors
    /// `RateLimited` past the per-address enroll limit (counted before the secret is checked,
    /// so it also bounds secret guessing) or the per-host-identity limit (counted after it);
    /// `Unauthorized` for a wrong, expired or empty
    /// secret; `InvalidInput` for a bad `platform_type`; backend errors as they come.
    pub async fn enroll(&self, request: EnrollRequest) -> Result<NodeKey> {
        self.admit_enroll(request.source)?;
        let now = now_unix();
        let secrets = self.backends.secrets.list_enroll_secrets().await?;
        // Compare against every secret, in constant time each, without stopping early.
        let mut matched = None;
        for secret in &secrets {
            let matches = secret.value.matches(&request.enroll_secret);
            if matches && secret.is_valid_at(now) && matched.is_none() {
                matched = Some(secret);
            }
        }
        let secret = matched.ok_or_else(|| Error::unauthorized("invalid enroll secret"))?;
        let environment = secret.environment.clone();
        // A secret outliving its environment enrolls no one.
        self.metrics.store_call(StoreCall::Environment);
        let approval = match self.backends.store.environment(&environment).await {
            Ok(found) => found.settings.enroll_approval,
            Err(e) if e.kind() == sgt_core::error::ErrorKind::NotFound => {
                return Err(Error::unauthorized(
                    "enroll secret's environment does not exist",
                ));
            }
            Err(e) => return Err(e),
        };
        if request.platform_type.len() > 16
            || !request.platform_type.chars().all(|c| c.is_ascii_digit())
        {
            return Err(Error::invalid_input(
                "platform_type must be a decimal number",
            ));
        }
        if !request.host_details.is_object() {
            return Err(Error::invalid_input("host_details must be an object"));
        }
        let hardware_uuid: String = request
            .host_details
            .pointer("/system_info/uuid")
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .chars()
            .take(128)
            .collect();
        let identity = (
            environment.clone(),
            request.host_identifier.clone(),
            hardware_uuid.clone(),
        );
        if !self.host_enroll_limit.allow(&identity) {
            tracing::warn!(environment = %environment, host_identifier = %request.host_identifier, "host identity enrolled too often: a cloned host, or a loop?");
            return Err(Error::rate_limited(
                "this host identity enrolled too often, retry later",
            ));
        }
        self.metrics.store_call(StoreCall::EnrollNode);
        let node = self
            .backends
            .store
            .enroll_node(NewNode {
                id: NodeId::generate(),
                key: NodeKey::generate(),
                environment,
                host_identifier: request.host_identifier,
                hardware_uuid,
                platform: platform_name(&request.platform_type).to_owned(),
                platform_type: request.platform_type,
                host_details: request.host_details,
                now,
                pending: approval,
            })
            .await?;
        // Its previous key, if cached here, stops working at once.
        self.cache.forget_node(&node.id);
        self.metrics.enroll();
        self.metrics.store_call(StoreCall::RecordSecretUse);
        if let Err(e) = self.backends.store.record_secret_use(&secret.id, now).await {
            tracing::warn!(secret_id = %secret.id, error = %e, "enroll secret usage not recorded");
        }
        tracing::info!(node_id = %node.id, environment = %node.environment, host_identifier = %node.host_identifier, pending = node.pending, "node enrolled");
        Ok(node.key)
    }
}
