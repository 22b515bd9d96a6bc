//! Live queries: the `queries` table, and one `deliveries` item per (query, targeted node)
//! holding its delivery state and then its answer.

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{PutRequest, ReturnValue, WriteRequest};
use sgt_core::store::{
    page_size, DeliveryState, DistributedQuery, NewQuery, NodeQueryResult, NodeRef, PendingQuery,
    QueryResult, QueryStore, QueryTarget, QueryTargets,
};
use sgt_core::types::{NodeId, QueryId, UnixSeconds};
use sgt_core::{Error, Result};

use super::item::{self, n, s, Item};
use super::{
    attrs, blob_field, classify, condition_failed, created_key, names, unless_condition_failed,
    DynamoStore, BACKEND,
};

/// A query and its answers stay this long after the query expired, then TTL removes them.
pub(crate) const ANSWER_RETENTION_SECONDS: i64 = 30 * 24 * 3600;
/// The `live` value of a query that was not cancelled (nor seen expired).
const LIVE: &str = "live";

/// What a node answered, kept as one JSON value (inline or in the blob store).
#[derive(serde::Serialize, serde::Deserialize)]
struct Answer {
    rows: Vec<serde_json::Value>,
    message: Option<String>,
    stats: Option<serde_json::Value>,
}

fn query_key(id: &str) -> Item {
    attrs([("id", s(id))])
}

fn delivery_key(query_id: &str, node_id: &str) -> Item {
    attrs([("query_id", s(query_id)), ("node_id", s(node_id))])
}

/// True when the stored query may still be delivered at `now`.
fn is_live(query: &Item, now: UnixSeconds) -> Result<bool> {
    Ok(item::optional_number(query, "cancelled_at")?.is_none()
        && item::optional_number(query, "expires_at")?.is_none_or(|t| t > now))
}

impl DynamoStore {
    async fn query_from_item(&self, stored: &Item) -> Result<DistributedQuery> {
        Ok(DistributedQuery {
            id: item::parsed(stored, "id", QueryId::parse)?,
            sql: self.get_text(stored, "sql").await?,
            targets: self.targets_of(stored).await?,
            created_by: item::string(stored, "created_by")?.to_owned(),
            created_at: item::number(stored, "created_at")?,
            expires_at: item::optional_number(stored, "expires_at")?,
            cancelled_at: item::optional_number(stored, "cancelled_at")?,
        })
    }

    async fn targets_of(&self, stored: &Item) -> Result<QueryTargets> {
        item::json(&self.get_text(stored, "targets").await?, "query targets")
    }

    async fn query_item(&self, id: &QueryId) -> Result<Item> {
        self.get_item(&self.tables.queries, query_key(id.as_str()), true)
            .await?
            .ok_or_else(|| Error::not_found("query"))
    }

    /// Deletes the node's deliveries that were never handed out (the node is gone).
    pub(super) async fn drop_pending_deliveries(&self, node: &NodeId) -> Result<()> {
        for pending in self.pending_query_ids(node).await? {
            let result = self
                .client
                .delete_item()
                .table_name(&self.tables.deliveries)
                .set_key(Some(delivery_key(&pending, node.as_str())))
                .condition_expression("#state = :pending")
                .set_expression_attribute_names(names(&["#state"]))
                .expression_attribute_values(":pending", s(DeliveryState::Pending.as_str()))
                .send()
                .await;
            unless_condition_failed(result, "query delivery")?;
        }
        Ok(())
    }

    /// Ids of the queries made pending for `node` when they were created.
    async fn pending_query_ids(&self, node: &NodeId) -> Result<Vec<String>> {
        let query = self
            .client
            .query()
            .table_name(&self.tables.deliveries)
            .index_name("pending-by-node")
            .key_condition_expression("#pending_node = :node")
            .set_expression_attribute_names(names(&["#pending_node"]))
            .expression_attribute_values(":node", s(node.as_str()));
        let keys = self.query_all(query, "query delivery").await?;
        keys.iter()
            .map(|k| item::string(k, "query_id").map(str::to_owned))
            .collect()
    }

    /// Queries not cancelled (expired ones included until a read retires them).
    async fn live_query_items(&self) -> Result<Vec<Item>> {
        let query = self
            .client
            .query()
            .table_name(&self.tables.queries)
            .index_name("live")
            .key_condition_expression("#live = :live")
            .set_expression_attribute_names(names(&["#live"]))
            .expression_attribute_values(":live", s(LIVE));
        self.query_all(query, "query").await
    }

    /// Marks a pending delivery delivered; false if someone else took it first.
    async fn take_delivery(&self, query_id: &str, node: &NodeId, now: UnixSeconds) -> Result<bool> {
        let result = self
            .client
            .update_item()
            .table_name(&self.tables.deliveries)
            .set_key(Some(delivery_key(query_id, node.as_str())))
            .update_expression("SET #state = :delivered, #updated_at = :now REMOVE #pending_node")
            .condition_expression("#state = :pending")
            .set_expression_attribute_names(names(&["#state #updated_at #pending_node"]))
            .expression_attribute_values(":delivered", s(DeliveryState::Delivered.as_str()))
            .expression_attribute_values(":pending", s(DeliveryState::Pending.as_str()))
            .expression_attribute_values(":now", n(now))
            .send()
            .await;
        Ok(unless_condition_failed(result, "query delivery")?.is_some())
    }

    /// Takes a pending delivery of a cancelled or expired query out of the pending index; its
    /// state stays pending (it was never delivered).
    async fn retire_delivery(&self, query_id: &str, node: &NodeId) -> Result<()> {
        let result = self
            .client
            .update_item()
            .table_name(&self.tables.deliveries)
            .set_key(Some(delivery_key(query_id, node.as_str())))
            .update_expression("REMOVE #pending_node")
            .condition_expression("#state = :pending")
            .set_expression_attribute_names(names(&["#pending_node #state"]))
            .expression_attribute_values(":pending", s(DeliveryState::Pending.as_str()))
            .send()
            .await;
        unless_condition_failed(result, "query delivery").map(|_| ())
    }

    /// Takes an expired query out of the live index.
    async fn retire_query(&self, id: &str, now: UnixSeconds) -> Result<()> {
        let result = self
            .client
            .update_item()
            .table_name(&self.tables.queries)
            .set_key(Some(query_key(id)))
            .update_expression("REMOVE #live")
            .condition_expression("#expires_at <= :now")
            .set_expression_attribute_names(names(&["#live #expires_at"]))
            .expression_attribute_values(":now", n(now))
            .send()
            .await;
        unless_condition_failed(result, "query").map(|_| ())
    }

    /// Creates the delivery of a broad query to a node that had none, already delivered;
    /// false if one exists (it was handed out already, or is pending from creation).
    async fn claim_delivery(&self, query: &Item, node: &NodeId, now: UnixSeconds) -> Result<bool> {
        let mut delivery = attrs([
            ("query_id", s(item::string(query, "id")?)),
            ("node_id", s(node.as_str())),
            ("state", s(DeliveryState::Delivered.as_str())),
            ("updated_at", n(now)),
        ]);
        if let Some(ttl) = query.get(super::tables::TTL_ATTRIBUTE) {
            delivery.insert(super::tables::TTL_ATTRIBUTE.to_owned(), ttl.clone());
        }
        let result = self
            .client
            .put_item()
            .table_name(&self.tables.deliveries)
            .set_item(Some(delivery))
            .condition_expression("attribute_not_exists(#query_id)")
            .set_expression_attribute_names(names(&["#query_id"]))
            .send()
            .await;
        Ok(unless_condition_failed(result, "query delivery")?.is_some())
    }

    async fn answer_of(&self, delivery: &Item) -> Result<Answer> {
        item::json(&self.get_text(delivery, "answer").await?, "query answer")
    }
}

#[async_trait]
impl QueryStore for DynamoStore {
    async fn create_query(&self, query: &NewQuery) -> Result<()> {
        let ttl = query
            .expires_at
            .map(|t| n(t.saturating_add(ANSWER_RETENTION_SECONDS)));
        let mut stored = attrs([
            ("id", s(query.id.as_str())),
            ("kind", s("query")),
            ("created_by", s(&query.created_by)),
            ("created_at", n(query.created_at)),
            (
                "created_key",
                s(created_key(query.created_at, query.id.as_str())),
            ),
        ]);
        if let Some(expires_at) = query.expires_at {
            stored.insert("expires_at".into(), n(expires_at));
        }
        if let Some(ttl) = &ttl {
            stored.insert(super::tables::TTL_ATTRIBUTE.into(), ttl.clone());
        }
        stored.insert("live".into(), s(LIVE));
        self.put_text(&mut stored, "sql", query.sql.clone()).await?;
        self.put_text(&mut stored, "targets", item::to_json(&query.targets)?)
            .await?;
        let created = self
            .client
            .put_item()
            .table_name(&self.tables.queries)
            .set_item(Some(stored.clone()))
            .condition_expression("attribute_not_exists(#id)")
            .set_expression_attribute_names(names(&["#id"]))
            .send()
            .await;
        if let Err(e) = created {
            self.delete_overflow(&stored).await;
            return Err(if condition_failed(&e) {
                Error::already_exists("query")
            } else {
                classify(BACKEND, "query", e)
            });
        }
        let mut seen = HashSet::new();
        let mut writes = Vec::new();
        for node in query.node_ids.iter().filter(|n| seen.insert(*n)) {
            let mut delivery = attrs([
                ("query_id", s(query.id.as_str())),
                ("node_id", s(node.as_str())),
                ("state", s(DeliveryState::Pending.as_str())),
                ("updated_at", n(query.created_at)),
                ("pending_node", s(node.as_str())),
            ]);
            if let Some(ttl) = &ttl {
                delivery.insert(super::tables::TTL_ATTRIBUTE.into(), ttl.clone());
            }
            let put = PutRequest::builder()
                .set_item(Some(delivery))
                .build()
                .map_err(|e| Error::backend(BACKEND, e))?;
            writes.push(WriteRequest::builder().put_request(put).build());
        }
        if let Err(e) = self.batch_write(&self.tables.deliveries, writes).await {
            // Not half-made: without its item the query is never delivered, and the caller
            // may create it again.
            let _ = self
                .client
                .delete_item()
                .table_name(&self.tables.queries)
                .set_key(Some(query_key(query.id.as_str())))
                .send()
                .await;
            self.delete_overflow(&stored).await;
            return Err(e);
        }
        Ok(())
    }

    async fn query(&self, id: &QueryId) -> Result<DistributedQuery> {
        let stored = self.query_item(id).await?;
        self.query_from_item(&stored).await
    }

    async fn list_queries(
        &self,
        before: Option<&QueryId>,
        limit: usize,
    ) -> Result<Vec<DistributedQuery>> {
        let limit = page_size(limit);
        let mut query = self
            .client
            .query()
            .table_name(&self.tables.queries)
            .index_name("all-by-created")
            .scan_index_forward(false)
            .limit(limit as i32)
            .expression_attribute_values(":kind", s("query"));
        query = match before {
            Some(before) => {
                let cursor = self.query_item(before).await?;
                let condition = "#kind = :kind AND #created_key < :before";
                query
                    .key_condition_expression(condition)
                    .set_expression_attribute_names(names(&[condition]))
                    .expression_attribute_values(
                        ":before",
                        s(item::string(&cursor, "created_key")?),
                    )
            }
            None => query
                .key_condition_expression("#kind = :kind")
                .set_expression_attribute_names(names(&["#kind"])),
        };
        let mut queries = Vec::new();
        for stored in self.query_up_to(query, "query", limit).await? {
            queries.push(self.query_from_item(&stored).await?);
        }
        Ok(queries)
    }

    async fn cancel_query(&self, id: &QueryId, now: UnixSeconds) -> Result<()> {
        let result = self
            .client
            .update_item()
            .table_name(&self.tables.queries)
            .set_key(Some(query_key(id.as_str())))
            .update_expression(
                "SET #cancelled_at = if_not_exists(#cancelled_at, :now) REMOVE #live",
            )
            .condition_expression("attribute_exists(#id)")
            .set_expression_attribute_names(names(&["#cancelled_at #live #id"]))
            .expression_attribute_values(":now", n(now))
            .send()
            .await;
        unless_condition_failed(result, "query")?
            .map(|_| ())
            .ok_or_else(|| Error::not_found("query"))
    }

    async fn take_pending_queries(
        &self,
        node: NodeRef<'_>,
        now: UnixSeconds,
    ) -> Result<Vec<PendingQuery>> {
        let pending = self.pending_query_ids(node.id).await?;
        // Every live query, by id (pending ones are usually among them), and the broad ones
        // with their targets parsed once.
        let mut known: HashMap<String, Item> = HashMap::new();
        let mut broad = Vec::new();
        for query in self.live_query_items().await? {
            let targets = self.targets_of(&query).await?;
            if targets.is_broad() {
                broad.push((query.clone(), targets));
            }
            known.insert(item::string(&query, "id")?.to_owned(), query);
        }
        let unknown: Vec<Item> = pending
            .iter()
            .filter(|id| !known.contains_key(*id))
            .map(|id| query_key(id))
            .collect();
        if !unknown.is_empty() {
            for query in self.batch_get(&self.tables.queries, unknown).await? {
                known.insert(item::string(&query, "id")?.to_owned(), query);
            }
        }
        let mut handed = Vec::new();
        // Deliveries made pending when the query was created.
        for query_id in &pending {
            let Some(query) = known.get(query_id) else {
                continue; // The query is gone (TTL); its delivery goes with it.
            };
            if !is_live(query, now)? {
                // Never to be delivered: take it out of this node's pending index for good.
                self.retire_delivery(query_id, node.id).await?;
            } else if self.take_delivery(query_id, node.id, now).await? {
                handed.push(PendingQuery {
                    id: item::parsed(query, "id", QueryId::parse)?,
                    sql: self.get_text(query, "sql").await?,
                });
            }
        }
        // Broad queries this node matches but has no delivery of yet (it enrolled later).
        let pending: HashSet<&str> = pending.iter().map(String::as_str).collect();
        let mut candidates = Vec::new();
        for (query, targets) in &broad {
            let id = item::string(query, "id")?;
            if !is_live(query, now)? {
                // Expired: out of the live index, so later reads stop reading it.
                self.retire_query(id, now).await?;
                continue;
            }
            if !pending.contains(id) && targets.matches(node) {
                candidates.push(query);
            }
        }
        if !candidates.is_empty() {
            let keys = candidates
                .iter()
                .map(|q| Ok(delivery_key(item::string(q, "id")?, node.id.as_str())))
                .collect::<Result<Vec<_>>>()?;
            let existing: HashSet<String> = self
                .batch_get(&self.tables.deliveries, keys)
                .await?
                .iter()
                .map(|d| item::string(d, "query_id").map(str::to_owned))
                .collect::<Result<_>>()?;
            for query in candidates {
                let id = item::string(query, "id")?;
                if !existing.contains(id) && self.claim_delivery(query, node.id, now).await? {
                    handed.push(PendingQuery {
                        id: item::parsed(query, "id", QueryId::parse)?,
                        sql: self.get_text(query, "sql").await?,
                    });
                }
            }
        }
        handed.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(handed)
    }

    async fn live_queries(&self, now: UnixSeconds) -> Result<Vec<DistributedQuery>> {
        let mut live = Vec::new();
        for stored in self.live_query_items().await? {
            if is_live(&stored, now)? {
                live.push(self.query_from_item(&stored).await?);
            } else {
                self.retire_query(item::string(&stored, "id")?, now).await?;
            }
        }
        live.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(live)
    }

    async fn record_result(&self, node: &NodeId, result: &QueryResult) -> Result<()> {
        let state = if result.status == 0 {
            DeliveryState::Succeeded
        } else {
            DeliveryState::Failed
        };
        let answer = Answer {
            rows: result.rows.clone(),
            message: result.message.clone(),
            stats: result.stats.clone(),
        };
        let mut new = Item::new();
        self.put_text(&mut new, "answer", item::to_json(&answer)?)
            .await?;
        let (set, remove) = match new.get("answer") {
            Some(_) => ("answer".to_owned(), blob_field("answer")),
            None => (blob_field("answer"), "answer".to_owned()),
        };
        let value = new.get(&set).cloned().unwrap_or_else(|| s(""));
        let update = format!(
            "SET #state = :state, #updated_at = :at, #status = :status, #received_at = :at, #{set} = :answer REMOVE #pending_node, #{remove}"
        );
        let outcome = self
            .client
            .update_item()
            .table_name(&self.tables.deliveries)
            .set_key(Some(delivery_key(result.query_id.as_str(), node.as_str())))
            .update_expression(&update)
            .condition_expression("attribute_exists(#query_id)")
            .set_expression_attribute_names(names(&[&update, "#query_id"]))
            .expression_attribute_values(":state", s(state.as_str()))
            .expression_attribute_values(":at", n(result.received_at))
            .expression_attribute_values(":status", n(result.status))
            .expression_attribute_values(":answer", value)
            .return_values(ReturnValue::AllOld)
            .send()
            .await;
        match outcome {
            Ok(output) => {
                if let Some(old) = output.attributes {
                    if old.contains_key("answer_blob")
                        && old.get("answer_blob") != new.get("answer_blob")
                    {
                        self.delete_overflow(&old).await;
                    }
                }
                Ok(())
            }
            Err(e) => {
                self.delete_overflow(&new).await;
                if condition_failed(&e) {
                    Err(Error::not_found("query target"))
                } else {
                    Err(classify(BACKEND, "query result", e))
                }
            }
        }
    }

    async fn query_targets(&self, id: &QueryId) -> Result<Vec<QueryTarget>> {
        self.query_item(id).await?;
        let query = self
            .client
            .query()
            .table_name(&self.tables.deliveries)
            .key_condition_expression("#query_id = :id")
            .set_expression_attribute_names(names(&["#query_id"]))
            .expression_attribute_values(":id", s(id.as_str()))
            .consistent_read(true);
        let mut targets = Vec::new();
        for delivery in self.query_all(query, "query delivery").await? {
            let state = DeliveryState::parse(item::string(&delivery, "state")?)
                .ok_or_else(|| item::corrupt("delivery state"))?;
            let message = if state == DeliveryState::Failed {
                self.answer_of(&delivery).await?.message
            } else {
                None
            };
            targets.push(QueryTarget {
                node_id: item::parsed(&delivery, "node_id", NodeId::parse)?,
                state,
                updated_at: item::number(&delivery, "updated_at")?,
                message,
            });
        }
        Ok(targets)
    }

    async fn query_results(
        &self,
        id: &QueryId,
        after: Option<&NodeId>,
        limit: usize,
    ) -> Result<Vec<NodeQueryResult>> {
        self.query_item(id).await?;
        let limit = page_size(limit);
        let mut query = self
            .client
            .query()
            .table_name(&self.tables.deliveries)
            .filter_expression("attribute_exists(#received_at)")
            .expression_attribute_values(":id", s(id.as_str()))
            .consistent_read(true);
        let condition = match after {
            Some(after) => {
                query = query.expression_attribute_values(":after", s(after.as_str()));
                "#query_id = :id AND #node_id > :after"
            }
            None => "#query_id = :id",
        };
        let query = query
            .key_condition_expression(condition)
            .set_expression_attribute_names(names(&[condition, "#received_at"]));
        let mut results = Vec::new();
        for delivery in self.query_up_to(query, "query result", limit).await? {
            let answer = self.answer_of(&delivery).await?;
            results.push(NodeQueryResult {
                node_id: item::parsed(&delivery, "node_id", NodeId::parse)?,
                result: QueryResult {
                    query_id: id.clone(),
                    status: item::number(&delivery, "status")?,
                    rows: answer.rows,
                    message: answer.message,
                    stats: answer.stats,
                    received_at: item::number(&delivery, "received_at")?,
                },
            });
        }
        Ok(results)
    }
}
