//! Nodes: the `nodes` table, with node keys and host identities as `lookups` items.

use std::collections::HashMap;

use async_trait::async_trait;
use futures_util::future;
use sgt_core::store::{
    host_details_summary, page_size, ChangedKey, ListNodes, NewNode, Node, NodeStore,
    DEFAULT_PAGE_SIZE, MAX_NODES_BY_IDS,
};
use sgt_core::types::{now_unix_ms, EnvironmentName, HostIdentifier, NodeId, NodeKey, UnixSeconds};
use sgt_core::{Error, Result};

use super::item::{self, n, s, Item};
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, TransactWriteItem};

use super::writes::{build_delete, build_put, delete, put};
use super::{
    attrs, blob_field, classify, condition_failed, names, unless_condition_failed, DynamoStore,
    BACKEND, RACE_RETRIES,
};

/// How many last-seen updates are in flight at once.
const LAST_SEEN_CONCURRENCY: usize = 16;

/// The `lookups` item that maps a node key to its node id.
fn key_lookup(key: &str) -> String {
    format!("node-key/{key}")
}

/// The `lookups` item that maps a host identity (environment, host identifier, hardware uuid)
/// to its node id: the host-identifier index enroll uses. JSON keeps the three parts apart
/// whatever characters they hold.
fn identity_lookup(environment: &str, host_identifier: &str, hardware_uuid: &str) -> String {
    let parts = serde_json::json!([environment, host_identifier, hardware_uuid]);
    format!("node-host/{parts}")
}

/// The `lookups` item holding a node's latest last-seen time. It is kept apart from the node
/// item because DynamoDB bills an update by the size of the whole item: updating the node item,
/// which carries the host details, costs 2 to 3 write units; this item costs 1. A node's
/// `last_seen` is the later of the two items' times.
fn seen_lookup(id: &str) -> String {
    format!("node-seen/{id}")
}

/// The `audit` table stream listing revoked node keys, sorted by time.
pub(super) const REVOKED_KEYS_STREAM: &str = "revoked-keys";
/// Revoked-key items live a day (TTL), longer than any instance's refresh interval.
const REVOKED_KEY_RETENTION_SECONDS: i64 = 24 * 3600;

/// The sort key of a revoked-key item: `<unix ms, 15 digits>/<key>`.
fn revoked_key_id(at_ms: i64, key: &str) -> String {
    format!("{:015}/{key}", at_ms.max(0))
}

/// The put, inside a transaction, that lists `key` as revoked (a delete or re-key) or its node
/// as changed (its labels), now.
pub(super) fn changed_key(audit_table: &str, key: &str) -> Result<TransactWriteItem> {
    let now_ms = now_unix_ms();
    Ok(put(build_put(
        audit_table,
        attrs([
            ("stream", s(REVOKED_KEYS_STREAM)),
            ("id", s(revoked_key_id(now_ms, key))),
            ("node_key", s(key)),
            ("revoked_at_ms", n(now_ms)),
            (
                super::tables::TTL_ATTRIBUTE,
                n(now_ms / 1000 + REVOKED_KEY_RETENTION_SECONDS),
            ),
        ]),
        None,
        None,
    )?))
}

/// Whether a node item awaits approval (items written before approvals existed do not).
fn is_pending(stored: &Item) -> bool {
    matches!(stored.get("pending"), Some(AttributeValue::Bool(true)))
}

fn lookup_key(lookup: String) -> Item {
    attrs([("lookup", s(lookup))])
}

fn node_key_of(id: &NodeId) -> Item {
    attrs([("id", s(id.as_str()))])
}

impl DynamoStore {
    /// The node item for `node` with id `id`, enrolled at `enrolled_at`, seen at `last_seen`.
    async fn node_item(
        &self,
        node: &NewNode,
        id: &NodeId,
        enrolled_at: UnixSeconds,
        last_seen: UnixSeconds,
    ) -> Result<Item> {
        let mut stored = attrs([
            ("id", s(id.as_str())),
            ("kind", s("node")),
            ("node_key", s(node.key.as_str())),
            ("environment", s(node.environment.as_str())),
            ("host_identifier", s(node.host_identifier.as_str())),
            ("hardware_uuid", s(&node.hardware_uuid)),
            ("platform_type", s(&node.platform_type)),
            ("platform", s(&node.platform)),
            ("enrolled_at", n(enrolled_at)),
            ("last_seen", n(last_seen)),
            ("pending", AttributeValue::Bool(node.pending)),
        ]);
        self.put_text(
            &mut stored,
            "host_details",
            item::to_json(&node.host_details)?,
        )
        .await?;
        Ok(stored)
    }

    /// The node of item `stored`; with only the summary of its host details unless `whole`.
    async fn node_from_item(&self, stored: &Item, whole: bool) -> Result<Node> {
        let details = self.get_text(stored, "host_details").await?;
        let host_details = if whole {
            item::json(&details, "host details")?
        } else {
            host_details_summary(&details)?
        };
        Ok(Node {
            id: item::parsed(stored, "id", NodeId::parse)?,
            key: item::parsed(stored, "node_key", NodeKey::parse)?,
            environment: item::parsed(stored, "environment", EnvironmentName::parse)?,
            host_identifier: item::parsed(stored, "host_identifier", HostIdentifier::parse)?,
            hardware_uuid: item::string(stored, "hardware_uuid")?.to_owned(),
            platform_type: item::string(stored, "platform_type")?.to_owned(),
            platform: item::string(stored, "platform")?.to_owned(),
            host_details,
            enrolled_at: item::number(stored, "enrolled_at")?,
            last_seen: item::number(stored, "last_seen")?,
            labels: super::labels::labels_of_node_item(stored)?,
            pending: is_pending(stored),
        })
    }

    async fn node_item_by_id(&self, id: &str) -> Result<Option<Item>> {
        self.get_item(&self.tables.nodes, attrs([("id", s(id))]), true)
            .await
    }

    /// The node of item `stored`, with `last_seen` moved to its last-seen item's time when that
    /// is later; with only the summary of its host details unless `whole`.
    async fn node_seen_at(&self, stored: &Item, seen: Option<&Item>, whole: bool) -> Result<Node> {
        let mut node = self.node_from_item(stored, whole).await?;
        if let Some(seen) = seen {
            node.last_seen = node.last_seen.max(item::number(seen, "last_seen")?);
        }
        Ok(node)
    }

    /// The nodes with these ids that exist, ordered by id, with the summary of their host
    /// details: node items and last-seen items read together, in batches.
    async fn listed_nodes_with_ids(&self, ids: &[&str]) -> Result<Vec<Node>> {
        let node_keys = ids.iter().map(|id| attrs([("id", s(*id))])).collect();
        let seen_keys = ids.iter().map(|id| lookup_key(seen_lookup(id))).collect();
        let (mut found, seen) = future::try_join(
            self.batch_get(&self.tables.nodes, node_keys),
            self.batch_get(&self.tables.lookups, seen_keys),
        )
        .await?;
        let seen: HashMap<&str, &Item> = seen
            .iter()
            .filter_map(|i| Some((item::optional_string(i, "node_id")?, i)))
            .collect();
        found.sort_by(|a, b| item::optional_string(a, "id").cmp(&item::optional_string(b, "id")));
        let mut nodes = Vec::with_capacity(found.len());
        for stored in &found {
            let id = item::string(stored, "id")?;
            nodes.push(
                self.node_seen_at(stored, seen.get(id).copied(), false)
                    .await?,
            );
        }
        Ok(nodes)
    }

    /// The node with id `id`, its node item and last-seen item read together.
    async fn node_with_id(&self, id: &str) -> Result<Option<Node>> {
        let (stored, seen) = future::try_join(
            self.node_item_by_id(id),
            self.get_item(&self.tables.lookups, lookup_key(seen_lookup(id)), true),
        )
        .await?;
        match stored {
            Some(stored) => Ok(Some(self.node_seen_at(&stored, seen.as_ref(), true).await?)),
            None => Ok(None),
        }
    }

    /// Moves one node's last-seen time forward to `at`; a later stored time is left.
    async fn move_last_seen(&self, id: &NodeId, at: UnixSeconds) -> Result<()> {
        let result = self
            .client
            .update_item()
            .table_name(&self.tables.lookups)
            .set_key(Some(lookup_key(seen_lookup(id.as_str()))))
            .update_expression("SET #last_seen = :at, #node_id = :id")
            .condition_expression("attribute_not_exists(#last_seen) OR #last_seen < :at")
            .set_expression_attribute_names(names(&["#last_seen #node_id"]))
            .expression_attribute_values(":at", n(at))
            .expression_attribute_values(":id", s(id.as_str()))
            .send()
            .await;
        unless_condition_failed(result, "node").map(|_| ())
    }

    /// One enroll attempt; `Ok(None)` when it lost a race and must be tried again.
    async fn try_enroll(&self, node: &NewNode) -> Result<Option<Node>> {
        let identity = identity_lookup(
            node.environment.as_str(),
            node.host_identifier.as_str(),
            &node.hardware_uuid,
        );
        let tables = &self.tables;
        let existing = self
            .get_item(&tables.lookups, lookup_key(identity.clone()), true)
            .await?;
        let current = match &existing {
            Some(lookup) => {
                self.node_item_by_id(item::string(lookup, "node_id")?)
                    .await?
            }
            None => None,
        };
        let new_key_item = attrs([
            ("lookup", s(key_lookup(node.key.as_str()))),
            ("node_id", s("")),
        ]);
        let (stored, writes) = match (&existing, &current) {
            (Some(_), Some(current)) => {
                // Re-key the existing node, if nobody re-keyed it since we read it.
                let id = item::parsed(current, "id", NodeId::parse)?;
                let old_key = item::string(current, "node_key")?.to_owned();
                let last_seen = item::number(current, "last_seen")?.max(node.now);
                let enrolled_at = item::number(current, "enrolled_at")?;
                let mut stored = self.node_item(node, &id, enrolled_at, last_seen).await?;
                // Its approval stays what it was.
                stored.insert("pending".into(), AttributeValue::Bool(is_pending(current)));
                // The node keeps its labels, if nobody changed them since we read it.
                let (labels_condition, mut values) = match current.get("labels") {
                    Some(labels) => {
                        stored.insert("labels".into(), labels.clone());
                        ("#labels = :labels", attrs([(":labels", labels.clone())]))
                    }
                    None => ("attribute_not_exists(#labels)", Item::new()),
                };
                values.insert(":old".into(), s(old_key.as_str()));
                let mut new_key = new_key_item;
                new_key.insert("node_id".into(), s(id.as_str()));
                let writes = vec![
                    put(build_put(
                        &tables.nodes,
                        stored.clone(),
                        Some(&format!("#node_key = :old AND {labels_condition}")),
                        Some(values),
                    )?),
                    delete(build_delete(
                        &tables.lookups,
                        lookup_key(key_lookup(&old_key)),
                        None,
                        None,
                    )?),
                    put(build_put(
                        &tables.lookups,
                        new_key,
                        Some("attribute_not_exists(#lookup)"),
                        None,
                    )?),
                    changed_key(&tables.audit, &old_key)?,
                ];
                (stored, writes)
            }
            _ => {
                // A new node; or the identity points at a node that no longer exists.
                let stored = self.node_item(node, &node.id, node.now, node.now).await?;
                let mut new_key = new_key_item;
                new_key.insert("node_id".into(), s(node.id.as_str()));
                let identity_item =
                    attrs([("lookup", s(identity)), ("node_id", s(node.id.as_str()))]);
                let claim = match &existing {
                    None => build_put(
                        &tables.lookups,
                        identity_item,
                        Some("attribute_not_exists(#lookup)"),
                        None,
                    )?,
                    Some(stale) => build_put(
                        &tables.lookups,
                        identity_item,
                        Some("#node_id = :stale"),
                        Some(attrs([(":stale", s(item::string(stale, "node_id")?))])),
                    )?,
                };
                let writes = vec![
                    put(claim),
                    put(build_put(
                        &tables.lookups,
                        new_key,
                        Some("attribute_not_exists(#lookup)"),
                        None,
                    )?),
                    put(build_put(
                        &tables.nodes,
                        stored.clone(),
                        Some("attribute_not_exists(#id)"),
                        None,
                    )?),
                ];
                (stored, writes)
            }
        };
        match self.transact("node", writes).await? {
            Ok(()) => match &current {
                Some(current) => {
                    self.delete_overflow(current).await;
                    let id = item::string(&stored, "id")?;
                    let seen = self
                        .get_item(&tables.lookups, lookup_key(seen_lookup(id)), true)
                        .await?;
                    Ok(Some(self.node_seen_at(&stored, seen.as_ref(), true).await?))
                }
                None => Ok(Some(self.node_from_item(&stored, true).await?)),
            },
            Err(_) => {
                self.delete_overflow(&stored).await;
                Ok(None)
            }
        }
    }
}

#[async_trait]
impl NodeStore for DynamoStore {
    async fn enroll_node(&self, node: NewNode) -> Result<Node> {
        for _ in 0..RACE_RETRIES {
            if let Some(stored) = self.try_enroll(&node).await? {
                return Ok(stored);
            }
        }
        Err(Error::unavailable(
            "dynamodb: concurrent enrolls of one host kept conflicting; try again",
        ))
    }

    async fn node_by_key(&self, key: &NodeKey) -> Result<Node> {
        let lookup = self
            .get_item(
                &self.tables.lookups,
                lookup_key(key_lookup(key.as_str())),
                true,
            )
            .await?
            .ok_or_else(|| Error::not_found("node"))?;
        let node = self
            .node_with_id(item::string(&lookup, "node_id")?)
            .await?
            .ok_or_else(|| Error::not_found("node"))?;
        // A lookup left over from a re-key that lost its race does not count.
        if node.key.as_str() != key.as_str() {
            return Err(Error::not_found("node"));
        }
        Ok(node)
    }

    async fn node_by_id(&self, id: &NodeId) -> Result<Node> {
        self.node_with_id(id.as_str())
            .await?
            .ok_or_else(|| Error::not_found("node"))
    }

    async fn list_nodes(&self, request: &ListNodes) -> Result<Vec<Node>> {
        let limit = page_size(request.limit);
        if let Some(label) = &request.label {
            // Members, a page of member items at a time.
            let mut nodes = Vec::new();
            let mut start = None;
            loop {
                let (ids, next) = self
                    .label_member_page(label, request.after.as_ref(), start)
                    .await?;
                let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
                for node in self.listed_nodes_with_ids(&ids).await? {
                    if request.matches(&node) {
                        nodes.push(node);
                        if nodes.len() == limit {
                            return Ok(nodes);
                        }
                    }
                }
                start = next;
                if start.is_none() {
                    return Ok(nodes);
                }
            }
        }
        let mut query = self
            .client
            .query()
            .table_name(&self.tables.nodes)
            .limit(DEFAULT_PAGE_SIZE as i32);
        let (index, partition_condition, partition) = match &request.environment {
            Some(environment) => (
                "by-environment",
                "#environment = :partition",
                environment.as_str(),
            ),
            None => ("all-by-id", "#kind = :partition", "node"),
        };
        let condition = match &request.after {
            Some(after) => {
                query = query.expression_attribute_values(":after", s(after.as_str()));
                format!("{partition_condition} AND #id > :after")
            }
            None => partition_condition.to_owned(),
        };
        let condition = condition.as_str();
        query = query
            .index_name(index)
            .key_condition_expression(condition)
            .set_expression_attribute_names(names(&[condition]))
            .expression_attribute_values(":partition", s(partition));
        let mut nodes = Vec::new();
        let mut start = None;
        loop {
            let page = query
                .clone()
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| classify(BACKEND, "node", e))?;
            let ids: Vec<&str> = page
                .items()
                .iter()
                .filter_map(|k| item::optional_string(k, "id"))
                .collect();
            for node in self.listed_nodes_with_ids(&ids).await? {
                if request.matches(&node) {
                    nodes.push(node);
                    if nodes.len() == limit {
                        return Ok(nodes);
                    }
                }
            }
            start = page.last_evaluated_key;
            if start.is_none() {
                return Ok(nodes);
            }
        }
    }

    async fn nodes_by_ids(&self, ids: &[NodeId]) -> Result<Vec<Node>> {
        if ids.len() > MAX_NODES_BY_IDS {
            return Err(Error::invalid_input("too many node ids in one call"));
        }
        let mut unique: Vec<&str> = ids.iter().map(NodeId::as_str).collect();
        unique.sort_unstable();
        unique.dedup();
        self.listed_nodes_with_ids(&unique).await
    }

    async fn update_host_details(&self, id: &NodeId, details: &serde_json::Value) -> Result<()> {
        let mut new = Item::new();
        self.put_text(&mut new, "host_details", item::to_json(details)?)
            .await?;
        // Inline or in the blob store, and the other attribute removed.
        let (set, remove) = match new.get("host_details") {
            Some(_) => ("host_details", blob_field("host_details")),
            None => ("host_details_blob", "host_details".to_owned()),
        };
        let value = new.get(set).cloned().unwrap_or_else(|| s(""));
        let result = self
            .client
            .update_item()
            .table_name(&self.tables.nodes)
            .set_key(Some(node_key_of(id)))
            .update_expression(format!("SET #{set} = :value REMOVE #{remove}"))
            .condition_expression("attribute_exists(#id)")
            .set_expression_attribute_names(names(&[&format!("#{set} #{remove} #id")]))
            .expression_attribute_values(":value", value)
            .return_values(ReturnValue::AllOld)
            .send()
            .await;
        match result {
            Ok(output) => {
                // The replaced value's blob, if it had one, is no longer referred to (host
                // details are the only value of a node item that can overflow).
                let old = output.attributes.unwrap_or_default();
                if old.get("host_details_blob") != new.get("host_details_blob") {
                    self.delete_overflow(&old).await;
                }
                Ok(())
            }
            Err(e) => {
                self.delete_overflow(&new).await;
                if condition_failed(&e) {
                    Err(Error::not_found("node"))
                } else {
                    Err(classify(BACKEND, "node", e))
                }
            }
        }
    }

    async fn approve_node(&self, id: &NodeId) -> Result<bool> {
        let tables = &self.tables;
        for _ in 0..RACE_RETRIES {
            let stored = self
                .node_item_by_id(id.as_str())
                .await?
                .ok_or_else(|| Error::not_found("node"))?;
            if !is_pending(&stored) {
                return Ok(false);
            }
            let key = item::string(&stored, "node_key")?;
            let writes = vec![
                super::writes::update(super::writes::build_update(
                    &tables.nodes,
                    node_key_of(id),
                    "SET #pending = :approved",
                    Some("#node_key = :key AND #pending = :pending"),
                    attrs([
                        (":approved", AttributeValue::Bool(false)),
                        (":pending", AttributeValue::Bool(true)),
                        (":key", s(key)),
                    ]),
                )?),
                changed_key(&tables.audit, key)?,
            ];
            if self.transact("node", writes).await?.is_ok() {
                return Ok(true);
            }
        }
        Err(Error::unavailable(
            "dynamodb: concurrent changes of one node kept conflicting; try again",
        ))
    }

    async fn delete_node(&self, id: &NodeId) -> Result<()> {
        let tables = &self.tables;
        let stored = self
            .node_item_by_id(id.as_str())
            .await?
            .ok_or_else(|| Error::not_found("node"))?;
        let node_key = item::string(&stored, "node_key")?;
        let identity = identity_lookup(
            item::string(&stored, "environment")?,
            item::string(&stored, "host_identifier")?,
            item::string(&stored, "hardware_uuid")?,
        );
        let writes = vec![
            delete(build_delete(
                &tables.nodes,
                node_key_of(id),
                Some("#node_key = :key"),
                Some(attrs([(":key", s(node_key))])),
            )?),
            delete(build_delete(
                &tables.lookups,
                lookup_key(key_lookup(node_key)),
                None,
                None,
            )?),
            delete(build_delete(
                &tables.lookups,
                lookup_key(identity),
                Some("attribute_not_exists(#lookup) OR #node_id = :id"),
                Some(attrs([(":id", s(id.as_str()))])),
            )?),
            delete(build_delete(
                &tables.lookups,
                lookup_key(seen_lookup(id.as_str())),
                None,
                None,
            )?),
            changed_key(&tables.audit, node_key)?,
        ];
        if let Err(reasons) = self.transact("node", writes).await? {
            // Re-enrolled (re-keyed) between our read and delete: the caller may try again.
            return Err(Error::conflict(format!(
                "node changed while being deleted ({})",
                reasons.join(", ")
            )));
        }
        self.delete_overflow(&stored).await;
        // Its memberships; one left behind by a failure here names a node that no longer
        // exists, which member lists skip.
        for label in super::labels::labels_of_node_item(&stored)? {
            let result = self
                .client
                .delete_item()
                .table_name(&tables.labels)
                .set_key(Some(super::labels::member_key(label.as_str(), id.as_str())))
                .send()
                .await;
            if let Err(e) = result {
                tracing::warn!(error = %classify(BACKEND, "label", e), "could not delete a label membership");
            }
        }
        self.drop_pending_deliveries(id).await
    }

    async fn changed_keys_since(&self, since_ms: i64) -> Result<Vec<ChangedKey>> {
        let condition = "#stream = :stream AND #id >= :since";
        let query = self
            .client
            .query()
            .table_name(&self.tables.audit)
            .key_condition_expression(condition)
            .set_expression_attribute_names(names(&[condition]))
            .expression_attribute_values(":stream", s(REVOKED_KEYS_STREAM))
            .expression_attribute_values(":since", s(format!("{:015}", since_ms.max(0))));
        self.query_all(query, "revoked key")
            .await?
            .iter()
            .map(|stored| {
                Ok(ChangedKey {
                    key: item::parsed(stored, "node_key", NodeKey::parse)?,
                    changed_at_ms: item::number(stored, "revoked_at_ms")?,
                })
            })
            .collect()
    }

    async fn record_last_seen(&self, seen: &[(NodeId, UnixSeconds)]) -> Result<()> {
        for batch in seen.chunks(LAST_SEEN_CONCURRENCY) {
            future::try_join_all(batch.iter().map(|(id, at)| self.move_last_seen(id, *at))).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_lookups_keep_parts_apart() {
        assert_ne!(
            identity_lookup("a", "b/c", ""),
            identity_lookup("a", "b", "c")
        );
        assert_eq!(
            identity_lookup("prod", "host\"1", "U"),
            r#"node-host/["prod","host\"1","U"]"#
        );
    }
}
