//! [`MemoryStore`]: every store concern in memory, behind one lock.
//!
//! For tests of the services and for the fuzz harness: it passes the whole store suite, so
//! what holds for it holds for the real backends. Nothing is persisted.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;

use crate::error::{Error, Result};
use crate::store::*;
use crate::types::{
    CarveSessionId, EnvironmentName, HostIdentifier, LabelName, NodeId, NodeKey, QueryId,
    SavedQueryName, UnixSeconds, Username,
};

/// How long a revoked key is listed by `changed_keys_since`, in milliseconds.
const REVOKED_KEY_MS: i64 = 86_400_000;

/// One node's delivery state and answer for one query.
#[derive(Debug, Clone)]
struct Delivery {
    state: DeliveryState,
    updated_at: UnixSeconds,
    result: Option<QueryResult>,
}

#[derive(Debug, Default)]
struct State {
    nodes: BTreeMap<NodeId, Node>,
    node_by_key: HashMap<NodeKey, NodeId>,
    node_by_identity: HashMap<(EnvironmentName, HostIdentifier, String), NodeId>,
    revoked_keys: Vec<ChangedKey>,
    environments: BTreeMap<EnvironmentName, Environment>,
    queries: BTreeMap<QueryId, DistributedQuery>,
    /// Per query, per node.
    deliveries: BTreeMap<QueryId, BTreeMap<NodeId, Delivery>>,
    saved_queries: BTreeMap<SavedQueryName, SavedQuery>,
    labels: BTreeMap<LabelName, Label>,
    carves: BTreeMap<CarveSessionId, (CarveSession, std::collections::BTreeSet<u64>)>,
    users: BTreeMap<Username, User>,
    tokens: BTreeMap<String, ApiToken>,
    audit: BTreeMap<String, AuditEntry>,
    secret_usage: BTreeMap<String, SecretUsage>,
}

impl State {
    fn revoke(&mut self, key: NodeKey) {
        self.node_by_key.remove(&key);
        self.note_changed(key);
    }

    /// Lists `key` as changed: instances caching its node re-read it.
    fn note_changed(&mut self, key: NodeKey) {
        let now_ms = now_ms();
        self.revoked_keys
            .retain(|k| k.changed_at_ms >= now_ms - REVOKED_KEY_MS);
        self.revoked_keys.push(ChangedKey {
            key,
            changed_at_ms: now_ms,
        });
    }

    fn other_admin_than(&self, username: &Username) -> bool {
        self.users
            .values()
            .any(|u| u.role == Role::Admin && &u.username != username)
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Every store trait in memory. Each call holds one lock for its whole work, so every call is
/// atomic.
#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl NodeStore for MemoryStore {
    async fn enroll_node(&self, node: NewNode) -> Result<Node> {
        let mut state = self.state();
        let identity = (
            node.environment.clone(),
            node.host_identifier.clone(),
            node.hardware_uuid.clone(),
        );
        if let Some(id) = state.node_by_identity.get(&identity).cloned() {
            let existing = state.nodes.get(&id).cloned().expect("indexed node exists");
            let updated = Node {
                key: node.key.clone(),
                platform_type: node.platform_type,
                platform: node.platform,
                host_details: node.host_details,
                last_seen: existing.last_seen.max(node.now),
                ..existing.clone()
            };
            if existing.key != node.key {
                state.revoke(existing.key.clone());
            }
            state.node_by_key.insert(node.key, id.clone());
            state.nodes.insert(id, updated.clone());
            return Ok(updated);
        }
        let created = Node {
            id: node.id.clone(),
            key: node.key.clone(),
            environment: node.environment,
            host_identifier: node.host_identifier,
            hardware_uuid: node.hardware_uuid,
            platform_type: node.platform_type,
            platform: node.platform,
            host_details: node.host_details,
            enrolled_at: node.now,
            last_seen: node.now,
            labels: Vec::new(),
            pending: node.pending,
        };
        state.node_by_identity.insert(identity, node.id.clone());
        state.node_by_key.insert(node.key, node.id.clone());
        state.nodes.insert(node.id, created.clone());
        Ok(created)
    }

    async fn node_by_key(&self, key: &NodeKey) -> Result<Node> {
        let state = self.state();
        state
            .node_by_key
            .get(key)
            .and_then(|id| state.nodes.get(id))
            .cloned()
            .ok_or_else(|| Error::not_found("node"))
    }

    async fn node_by_id(&self, id: &NodeId) -> Result<Node> {
        self.state()
            .nodes
            .get(id)
            .cloned()
            .ok_or_else(|| Error::not_found("node"))
    }

    async fn list_nodes(&self, request: &ListNodes) -> Result<Vec<Node>> {
        let state = self.state();
        let mut listed = Vec::new();
        for node in state.nodes.values() {
            if listed.len() == page_size(request.limit) {
                break;
            }
            if request.matches(node) {
                let details = serde_json::to_string(&node.host_details)
                    .map_err(|e| Error::backend("memory", e))?;
                listed.push(Node {
                    host_details: host_details_summary(&details)?,
                    ..node.clone()
                });
            }
        }
        Ok(listed)
    }

    async fn nodes_by_ids(&self, ids: &[NodeId]) -> Result<Vec<Node>> {
        if ids.len() > MAX_NODES_BY_IDS {
            return Err(Error::invalid_input("too many node ids in one call"));
        }
        let state = self.state();
        let wanted: std::collections::BTreeSet<&NodeId> = ids.iter().collect();
        let mut found = Vec::new();
        for id in wanted {
            if let Some(node) = state.nodes.get(id) {
                let details = serde_json::to_string(&node.host_details)
                    .map_err(|e| Error::backend("memory", e))?;
                found.push(Node {
                    host_details: host_details_summary(&details)?,
                    ..node.clone()
                });
            }
        }
        Ok(found)
    }

    async fn update_host_details(&self, id: &NodeId, details: &serde_json::Value) -> Result<()> {
        self.state()
            .nodes
            .get_mut(id)
            .ok_or_else(|| Error::not_found("node"))?
            .host_details = details.clone();
        Ok(())
    }

    async fn approve_node(&self, id: &NodeId) -> Result<bool> {
        let mut state = self.state();
        let node = state
            .nodes
            .get_mut(id)
            .ok_or_else(|| Error::not_found("node"))?;
        if !node.pending {
            return Ok(false);
        }
        node.pending = false;
        let key = node.key.clone();
        state.note_changed(key);
        Ok(true)
    }

    async fn delete_node(&self, id: &NodeId) -> Result<()> {
        let mut state = self.state();
        let node = state
            .nodes
            .remove(id)
            .ok_or_else(|| Error::not_found("node"))?;
        state.node_by_identity.remove(&(
            node.environment.clone(),
            node.host_identifier.clone(),
            node.hardware_uuid.clone(),
        ));
        state.revoke(node.key);
        // Answers already given stay as history; deliveries not yet made are dropped.
        for deliveries in state.deliveries.values_mut() {
            if deliveries
                .get(id)
                .is_some_and(|d| d.state == DeliveryState::Pending)
            {
                deliveries.remove(id);
            }
        }
        Ok(())
    }

    async fn changed_keys_since(&self, since_ms: i64) -> Result<Vec<ChangedKey>> {
        Ok(self
            .state()
            .revoked_keys
            .iter()
            .filter(|k| k.changed_at_ms >= since_ms)
            .cloned()
            .collect())
    }

    async fn record_last_seen(&self, seen: &[(NodeId, UnixSeconds)]) -> Result<()> {
        let mut state = self.state();
        for (id, at) in seen {
            if let Some(node) = state.nodes.get_mut(id) {
                node.last_seen = node.last_seen.max(*at);
            }
        }
        Ok(())
    }
}

#[async_trait]
impl EnvironmentStore for MemoryStore {
    async fn create_environment(&self, environment: &Environment) -> Result<()> {
        let mut state = self.state();
        if state.environments.contains_key(&environment.name) {
            return Err(Error::already_exists("environment"));
        }
        state
            .environments
            .insert(environment.name.clone(), environment.clone());
        Ok(())
    }

    async fn environment(&self, name: &EnvironmentName) -> Result<Environment> {
        self.state()
            .environments
            .get(name)
            .cloned()
            .ok_or_else(|| Error::not_found("environment"))
    }

    async fn list_environments(&self) -> Result<Vec<Environment>> {
        Ok(self.state().environments.values().cloned().collect())
    }

    async fn put_config(
        &self,
        name: &EnvironmentName,
        config: &serde_json::Value,
        now: UnixSeconds,
        expected_version: Option<u64>,
    ) -> Result<u64> {
        let mut state = self.state();
        let environment = state
            .environments
            .get_mut(name)
            .ok_or_else(|| Error::not_found("environment"))?;
        if expected_version.is_some_and(|v| v != environment.config_version) {
            return Err(Error::stale_config());
        }
        environment.config = config.clone();
        environment.config_updated_at = now;
        environment.config_version += 1;
        Ok(environment.config_version)
    }

    async fn put_environment_settings(
        &self,
        name: &EnvironmentName,
        settings: &EnvironmentSettings,
    ) -> Result<()> {
        self.state()
            .environments
            .get_mut(name)
            .ok_or_else(|| Error::not_found("environment"))?
            .settings = settings.clone();
        Ok(())
    }

    async fn delete_environment(&self, name: &EnvironmentName) -> Result<()> {
        self.state()
            .environments
            .remove(name)
            .map(|_| ())
            .ok_or_else(|| Error::not_found("environment"))
    }
}

#[async_trait]
impl SavedQueryStore for MemoryStore {
    async fn put_saved_query(&self, query: &SavedQuery) -> Result<SavedQuery> {
        let mut state = self.state();
        let mut stored = query.clone();
        if let Some(existing) = state.saved_queries.get(&query.name) {
            stored.created_at = existing.created_at;
        }
        state
            .saved_queries
            .insert(query.name.clone(), stored.clone());
        Ok(stored)
    }

    async fn saved_query(&self, name: &SavedQueryName) -> Result<SavedQuery> {
        self.state()
            .saved_queries
            .get(name)
            .cloned()
            .ok_or_else(|| Error::not_found("saved query"))
    }

    async fn list_saved_queries(&self) -> Result<Vec<SavedQuery>> {
        Ok(self.state().saved_queries.values().cloned().collect())
    }

    async fn delete_saved_query(&self, name: &SavedQueryName) -> Result<()> {
        self.state()
            .saved_queries
            .remove(name)
            .map(|_| ())
            .ok_or_else(|| Error::not_found("saved query"))
    }
}

#[async_trait]
impl LabelStore for MemoryStore {
    async fn put_label(&self, label: &Label) -> Result<Label> {
        let mut state = self.state();
        let mut stored = label.clone();
        if let Some(existing) = state.labels.get(&label.name) {
            stored.created_at = existing.created_at;
        }
        state.labels.insert(label.name.clone(), stored.clone());
        Ok(stored)
    }

    async fn label(&self, name: &LabelName) -> Result<Label> {
        self.state()
            .labels
            .get(name)
            .cloned()
            .ok_or_else(|| Error::not_found("label"))
    }

    async fn list_labels(&self) -> Result<Vec<Label>> {
        Ok(self.state().labels.values().cloned().collect())
    }

    async fn delete_label(&self, name: &LabelName) -> Result<()> {
        let mut state = self.state();
        state
            .labels
            .remove(name)
            .ok_or_else(|| Error::not_found("label"))?;
        let mut changed = Vec::new();
        for node in state.nodes.values_mut() {
            if let Ok(at) = node.labels.binary_search(name) {
                node.labels.remove(at);
                changed.push(node.key.clone());
            }
        }
        for key in changed {
            state.note_changed(key);
        }
        Ok(())
    }

    async fn set_label_member(
        &self,
        label: &LabelName,
        node: &NodeId,
        member: bool,
    ) -> Result<bool> {
        let mut state = self.state();
        if !state.labels.contains_key(label) {
            return Err(Error::not_found("label"));
        }
        let stored = state
            .nodes
            .get_mut(node)
            .ok_or_else(|| Error::not_found("node"))?;
        let changed = match (stored.labels.binary_search(label), member) {
            (Err(at), true) => {
                stored.labels.insert(at, label.clone());
                true
            }
            (Ok(at), false) => {
                stored.labels.remove(at);
                true
            }
            _ => false,
        };
        if changed {
            let key = stored.key.clone();
            state.note_changed(key);
        }
        Ok(changed)
    }
}

fn is_live(query: &DistributedQuery, now: UnixSeconds) -> bool {
    query.cancelled_at.is_none() && query.expires_at.is_none_or(|t| t > now)
}

#[async_trait]
impl QueryStore for MemoryStore {
    async fn create_query(&self, query: &NewQuery) -> Result<()> {
        let mut state = self.state();
        if state.queries.contains_key(&query.id) {
            return Err(Error::already_exists("query"));
        }
        state.queries.insert(
            query.id.clone(),
            DistributedQuery {
                id: query.id.clone(),
                sql: query.sql.clone(),
                targets: query.targets.clone(),
                created_by: query.created_by.clone(),
                created_at: query.created_at,
                expires_at: query.expires_at,
                cancelled_at: None,
            },
        );
        let deliveries = query
            .node_ids
            .iter()
            .map(|node| {
                let pending = Delivery {
                    state: DeliveryState::Pending,
                    updated_at: query.created_at,
                    result: None,
                };
                (node.clone(), pending)
            })
            .collect();
        state.deliveries.insert(query.id.clone(), deliveries);
        Ok(())
    }

    async fn query(&self, id: &QueryId) -> Result<DistributedQuery> {
        self.state()
            .queries
            .get(id)
            .cloned()
            .ok_or_else(|| Error::not_found("query"))
    }

    async fn list_queries(
        &self,
        before: Option<&QueryId>,
        limit: usize,
    ) -> Result<Vec<DistributedQuery>> {
        let state = self.state();
        let mut queries: Vec<&DistributedQuery> = state.queries.values().collect();
        queries.sort_by(|a, b| (b.created_at, &b.id).cmp(&(a.created_at, &a.id)));
        let start = match before {
            None => 0,
            Some(before) => match state.queries.get(before) {
                None => return Ok(Vec::new()),
                Some(cursor) => queries
                    .iter()
                    .position(|q| (q.created_at, &q.id) < (cursor.created_at, &cursor.id))
                    .unwrap_or(queries.len()),
            },
        };
        Ok(queries
            .into_iter()
            .skip(start)
            .take(page_size(limit))
            .cloned()
            .collect())
    }

    async fn cancel_query(&self, id: &QueryId, now: UnixSeconds) -> Result<()> {
        let mut state = self.state();
        let query = state
            .queries
            .get_mut(id)
            .ok_or_else(|| Error::not_found("query"))?;
        query.cancelled_at.get_or_insert(now);
        Ok(())
    }

    async fn take_pending_queries(
        &self,
        node: NodeRef<'_>,
        now: UnixSeconds,
    ) -> Result<Vec<PendingQuery>> {
        let mut guard = self.state();
        let state = &mut *guard;
        let mut pending = Vec::new();
        for (id, query) in &state.queries {
            if !is_live(query, now) {
                continue;
            }
            let deliveries = state.deliveries.entry(id.clone()).or_default();
            // Broad queries reach nodes enrolled after them.
            if !deliveries.contains_key(node.id)
                && query.targets.is_broad()
                && query.targets.matches(node)
            {
                deliveries.insert(
                    node.id.clone(),
                    Delivery {
                        state: DeliveryState::Pending,
                        updated_at: now,
                        result: None,
                    },
                );
            }
            if let Some(delivery) = deliveries.get_mut(node.id) {
                if delivery.state == DeliveryState::Pending {
                    delivery.state = DeliveryState::Delivered;
                    delivery.updated_at = now;
                    pending.push(PendingQuery {
                        id: id.clone(),
                        sql: query.sql.clone(),
                    });
                }
            }
        }
        Ok(pending)
    }

    async fn live_queries(&self, now: UnixSeconds) -> Result<Vec<DistributedQuery>> {
        Ok(self
            .state()
            .queries
            .values()
            .filter(|q| is_live(q, now))
            .cloned()
            .collect())
    }

    async fn record_result(&self, node: &NodeId, result: &QueryResult) -> Result<()> {
        let mut state = self.state();
        let delivery = state
            .deliveries
            .get_mut(&result.query_id)
            .and_then(|d| d.get_mut(node))
            .ok_or_else(|| Error::not_found("query target"))?;
        delivery.state = if result.status == 0 {
            DeliveryState::Succeeded
        } else {
            DeliveryState::Failed
        };
        delivery.updated_at = result.received_at;
        delivery.result = Some(result.clone());
        Ok(())
    }

    async fn query_targets(&self, id: &QueryId) -> Result<Vec<QueryTarget>> {
        let state = self.state();
        if !state.queries.contains_key(id) {
            return Err(Error::not_found("query"));
        }
        Ok(state
            .deliveries
            .get(id)
            .into_iter()
            .flatten()
            .map(|(node_id, delivery)| QueryTarget {
                node_id: node_id.clone(),
                state: delivery.state,
                updated_at: delivery.updated_at,
                message: match delivery.state {
                    DeliveryState::Failed => {
                        delivery.result.as_ref().and_then(|r| r.message.clone())
                    }
                    _ => None,
                },
            })
            .collect())
    }

    async fn query_results(
        &self,
        id: &QueryId,
        after: Option<&NodeId>,
        limit: usize,
    ) -> Result<Vec<NodeQueryResult>> {
        let state = self.state();
        if !state.queries.contains_key(id) {
            return Err(Error::not_found("query"));
        }
        Ok(state
            .deliveries
            .get(id)
            .into_iter()
            .flatten()
            .filter(|(node_id, _)| after.is_none_or(|after| *node_id > after))
            .filter_map(|(node_id, delivery)| {
                Some(NodeQueryResult {
                    node_id: node_id.clone(),
                    result: delivery.result.clone()?,
                })
            })
            .take(page_size(limit))
            .collect())
    }
}

#[async_trait]
impl CarveStore for MemoryStore {
    async fn create_carve(&self, carve: &NewCarve) -> Result<()> {
        let mut state = self.state();
        if state.carves.contains_key(&carve.session_id) {
            return Err(Error::already_exists("carve session"));
        }
        let session = CarveSession {
            carve: carve.clone(),
            status: CarveStatus::Receiving,
            blocks_received: 0,
            sha256: None,
            finished_at: None,
        };
        state
            .carves
            .insert(carve.session_id.clone(), (session, Default::default()));
        Ok(())
    }

    async fn carve(&self, id: &CarveSessionId) -> Result<CarveSession> {
        self.state()
            .carves
            .get(id)
            .map(|(session, _)| session.clone())
            .ok_or_else(|| Error::not_found("carve session"))
    }

    async fn record_carve_block(
        &self,
        id: &CarveSessionId,
        block_id: u64,
    ) -> Result<BlockRecorded> {
        let mut state = self.state();
        let (session, blocks) = state
            .carves
            .get_mut(id)
            .ok_or_else(|| Error::not_found("carve session"))?;
        let newly_recorded = blocks.insert(block_id);
        session.blocks_received = blocks.len() as u64;
        Ok(BlockRecorded {
            newly_recorded,
            blocks_received: session.blocks_received,
        })
    }

    async fn finish_carve(
        &self,
        id: &CarveSessionId,
        status: CarveStatus,
        sha256: Option<&str>,
        now: UnixSeconds,
    ) -> Result<()> {
        let mut state = self.state();
        let (session, _) = state
            .carves
            .get_mut(id)
            .ok_or_else(|| Error::not_found("carve session"))?;
        session.status = status;
        session.sha256 = sha256.map(str::to_owned);
        session.finished_at = Some(now);
        Ok(())
    }

    async fn list_carves(&self, node: Option<&NodeId>) -> Result<Vec<CarveSession>> {
        let state = self.state();
        let mut carves: Vec<CarveSession> = state
            .carves
            .values()
            .map(|(session, _)| session)
            .filter(|s| node.is_none_or(|n| &s.carve.node_id == n))
            .cloned()
            .collect();
        carves.sort_by(|a, b| {
            b.carve
                .created_at
                .cmp(&a.carve.created_at)
                .then_with(|| a.carve.session_id.cmp(&b.carve.session_id))
        });
        Ok(carves)
    }
}

#[async_trait]
impl UserStore for MemoryStore {
    async fn create_user(&self, user: &User) -> Result<()> {
        let mut state = self.state();
        if state.users.contains_key(&user.username) {
            return Err(Error::already_exists("user"));
        }
        state.users.insert(user.username.clone(), user.clone());
        Ok(())
    }

    async fn user(&self, username: &Username) -> Result<User> {
        self.state()
            .users
            .get(username)
            .cloned()
            .ok_or_else(|| Error::not_found("user"))
    }

    async fn list_users(&self) -> Result<Vec<User>> {
        Ok(self.state().users.values().cloned().collect())
    }

    async fn update_user(&self, user: &User) -> Result<()> {
        let mut state = self.state();
        let stored = state
            .users
            .get(&user.username)
            .filter(|u| u.id == user.id)
            .ok_or_else(|| Error::not_found("user"))?;
        if stored.role == Role::Admin
            && user.role != Role::Admin
            && !state.other_admin_than(&user.username)
        {
            return Err(Error::last_admin());
        }
        state.users.insert(user.username.clone(), user.clone());
        Ok(())
    }

    async fn delete_user(&self, username: &Username) -> Result<()> {
        let mut state = self.state();
        let stored = state
            .users
            .get(username)
            .ok_or_else(|| Error::not_found("user"))?;
        if stored.role == Role::Admin && !state.other_admin_than(username) {
            return Err(Error::last_admin());
        }
        state.users.remove(username);
        state.tokens.retain(|_, t| &t.username != username);
        Ok(())
    }

    async fn create_token(&self, token: &ApiToken) -> Result<()> {
        let mut state = self.state();
        if state.tokens.contains_key(&token.id)
            || state
                .tokens
                .values()
                .any(|t| t.token_hash == token.token_hash)
        {
            return Err(Error::already_exists("token"));
        }
        state.tokens.insert(token.id.clone(), token.clone());
        Ok(())
    }

    async fn token_by_hash(&self, token_hash: &str) -> Result<ApiToken> {
        self.state()
            .tokens
            .values()
            .find(|t| t.token_hash == token_hash)
            .cloned()
            .ok_or_else(|| Error::not_found("token"))
    }

    async fn list_tokens(&self, username: Option<&Username>) -> Result<Vec<ApiToken>> {
        let mut tokens: Vec<ApiToken> = self
            .state()
            .tokens
            .values()
            .filter(|t| username.is_none_or(|u| &t.username == u))
            .cloned()
            .collect();
        tokens.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(tokens)
    }

    async fn delete_token(&self, id: &str) -> Result<()> {
        self.state()
            .tokens
            .remove(id)
            .map(|_| ())
            .ok_or_else(|| Error::not_found("token"))
    }
}

#[async_trait]
impl AuditStore for MemoryStore {
    async fn append_audit(&self, entry: &AuditEntry) -> Result<()> {
        let mut state = self.state();
        if state.audit.contains_key(&entry.id) {
            return Err(Error::already_exists("audit entry"));
        }
        state.audit.insert(entry.id.clone(), entry.clone());
        Ok(())
    }

    async fn list_audit(
        &self,
        filter: &AuditFilter,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<AuditEntry>> {
        Ok(self
            .state()
            .audit
            .values()
            .rev()
            .filter(|e| before.is_none_or(|b| e.id.as_str() < b) && filter.matches(e))
            .take(page_size(limit))
            .cloned()
            .collect())
    }

    async fn record_secret_use(&self, secret_id: &str, now: UnixSeconds) -> Result<()> {
        let mut state = self.state();
        let usage = state
            .secret_usage
            .entry(secret_id.to_owned())
            .or_insert_with(|| SecretUsage {
                secret_id: secret_id.to_owned(),
                use_count: 0,
                last_used_at: now,
            });
        usage.use_count += 1;
        usage.last_used_at = usage.last_used_at.max(now);
        Ok(())
    }

    async fn secret_usage(&self) -> Result<Vec<SecretUsage>> {
        Ok(self.state().secret_usage.values().cloned().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::MemoryStore;

    crate::store_conformance_tests!(async { std::sync::Arc::new(MemoryStore::new()) });
}
