//! Online status: a node is online while it was seen within its environment's online window,
//! `2 × distributed_interval + 60 s` of the environment's config, plus how late the stored
//! last-seen time may be; or within `online_window_seconds` when the settings fix it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::AdminService;
use sgt_core::error::{ErrorKind, Result};
use sgt_core::store::{Node, MAX_NODES_BY_IDS};
use sgt_core::types::{now_unix, EnvironmentName, NodeId, UnixSeconds};

/// osquery's default `--distributed_interval`, for configs that do not set it.
const OSQUERY_DEFAULT_DISTRIBUTED_INTERVAL: i64 = 60;
/// How long a node's online status is reused before it is read again.
const STATUS_REUSED_FOR: Duration = Duration::from_secs(10);
/// Statuses kept at most; past it the oldest are dropped.
const STATUSES_KEPT: usize = 200_000;

/// Seconds after its last-seen time that a node of an environment with `config` still counts
/// as online, when stored last-seen times lag by up to `last_seen_lag` seconds.
pub(crate) fn online_window(config: &Value, last_seen_lag: i64) -> i64 {
    let interval = config
        .pointer("/options/distributed_interval")
        .and_then(|v| v.as_i64().or_else(|| v.as_str()?.trim().parse().ok()))
        .filter(|i| *i > 0)
        .unwrap_or(OSQUERY_DEFAULT_DISTRIBUTED_INTERVAL);
    interval
        .saturating_mul(2)
        .saturating_add(60 + last_seen_lag)
}

/// Recently computed online statuses, so that following a large campaign (every target's
/// status, every second or two, by several people) reads each node at most every
/// [`STATUS_REUSED_FOR`].
#[derive(Debug, Default)]
pub(crate) struct OnlineStatuses {
    known: Mutex<HashMap<NodeId, (bool, Instant)>>,
}

impl OnlineStatuses {
    fn get(&self, id: &NodeId) -> Option<bool> {
        let known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        known
            .get(id)
            .filter(|(_, at)| at.elapsed() < STATUS_REUSED_FOR)
            .map(|(online, _)| *online)
    }

    fn put(&self, statuses: impl IntoIterator<Item = (NodeId, bool)>) {
        let mut known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        if known.len() >= STATUSES_KEPT {
            known.retain(|_, (_, at)| at.elapsed() < STATUS_REUSED_FOR);
            if known.len() >= STATUSES_KEPT {
                known.clear();
            }
        }
        let now = Instant::now();
        known.extend(statuses.into_iter().map(|(id, online)| (id, (online, now))));
    }
}

impl AdminService {
    /// The online window of each environment asked about, read once per call.
    async fn window_of(
        &self,
        environment: &EnvironmentName,
        windows: &mut HashMap<EnvironmentName, i64>,
    ) -> Result<i64> {
        if let Some(window) = self.fixed_online_window {
            return Ok(window);
        }
        if let Some(window) = windows.get(environment) {
            return Ok(*window);
        }
        let config = match self.backends.store.environment(environment).await {
            Ok(environment) => environment.config,
            // A node outlives a deleted environment; osquery's defaults apply to it.
            Err(e) if e.kind() == ErrorKind::NotFound => Value::Null,
            Err(e) => return Err(e),
        };
        let window = online_window(&config, self.last_seen_lag);
        windows.insert(environment.clone(), window);
        Ok(window)
    }

    /// Whether each of `nodes` is online at `now`.
    pub(super) async fn online_flags(&self, nodes: &[Node], now: UnixSeconds) -> Result<Vec<bool>> {
        let mut windows = HashMap::new();
        let mut flags = Vec::with_capacity(nodes.len());
        for node in nodes {
            let window = self.window_of(&node.environment, &mut windows).await?;
            flags.push(now - node.last_seen <= window);
        }
        Ok(flags)
    }

    /// How many of the nodes `ids` are online now (nodes that no longer exist are not).
    pub(super) async fn count_online(&self, ids: &[NodeId]) -> Result<usize> {
        let mut online = 0;
        let mut unknown = Vec::new();
        for id in ids {
            match self.online_statuses.get(id) {
                Some(true) => online += 1,
                Some(false) => {}
                None => unknown.push(id.clone()),
            }
        }
        let now = now_unix();
        for chunk in unknown.chunks(MAX_NODES_BY_IDS) {
            let nodes = self.backends.store.nodes_by_ids(chunk).await?;
            let flags = self.online_flags(&nodes, now).await?;
            online += flags.iter().filter(|f| **f).count();
            let mut statuses: HashMap<NodeId, bool> =
                chunk.iter().map(|id| (id.clone(), false)).collect();
            statuses.extend(nodes.into_iter().map(|n| n.id).zip(flags));
            self.online_statuses.put(statuses);
        }
        Ok(online)
    }
}

#[cfg(test)]
mod tests {
    use super::online_window;
    use serde_json::json;

    #[test]
    fn the_window_follows_the_distributed_interval() {
        let config = json!({"options": {"distributed_interval": 10}});
        assert_eq!(online_window(&config, 30), 2 * 10 + 60 + 30);
        let text = json!({"options": {"distributed_interval": "15"}});
        assert_eq!(online_window(&text, 0), 90);
        assert_eq!(online_window(&json!({}), 0), 180, "osquery's default 60 s");
        let nonsense = json!({"options": {"distributed_interval": -5}});
        assert_eq!(online_window(&nonsense, 0), 180);
    }
}
