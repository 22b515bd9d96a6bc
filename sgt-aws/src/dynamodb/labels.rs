//! Labels: the `labels` table holds each label's definition (sort key `label`) and one item
//! per member (sort key `node/<id>`); a node item lists its labels in the string set `labels`.
//! A membership change writes both, and the node's key in the changed-keys stream, in one
//! transaction.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, DeleteRequest, ReturnValue, WriteRequest,
};
use sgt_core::store::{Label, LabelStore};
use sgt_core::types::{EnvironmentName, LabelName, NodeId};
use sgt_core::{Error, Result};

use super::item::{self, n, s, Item};
use super::nodes::changed_key;
use super::writes::{build_delete, build_put, build_update, delete, put, update};
use super::{attrs, classify, condition_failed, names, DynamoStore, BACKEND, RACE_RETRIES};

const WHAT: &str = "label";
/// How many members a label's deletion takes out of their nodes at once.
const REMOVAL_CONCURRENCY: usize = 16;
/// The sort key of a label's definition item.
const DEFINITION: &str = "label";
/// The sort-key prefix of a label's member items.
const MEMBER_PREFIX: &str = "node/";

/// Creates or replaces a label's definition, keeping the first put's creation time.
const PUT: &str = "SET #kind = :kind, #environment = :environment, #query = :query, \
                   #platform = :platform, #description = :description, \
                   #updated_at = :updated_at, #updated_by = :updated_by, \
                   #created_at = if_not_exists(#created_at, :created_at)";

fn definition_key(name: &LabelName) -> Item {
    attrs([("label", s(name.as_str())), ("member", s(DEFINITION))])
}

/// The key of the item recording that node `id` is a member of `label`.
pub(super) fn member_key(label: &str, id: &str) -> Item {
    attrs([
        ("label", s(label)),
        ("member", s(format!("{MEMBER_PREFIX}{id}"))),
    ])
}

/// An optional string attribute: the string, or NULL.
fn optional(value: Option<&str>) -> AttributeValue {
    match value {
        Some(value) => s(value),
        None => AttributeValue::Null(true),
    }
}

fn label_from_item(stored: &Item) -> Result<Label> {
    Ok(Label {
        name: item::parsed(stored, "label", LabelName::parse)?,
        environment: item::optional_string(stored, "environment")
            .map(|e| EnvironmentName::parse(e).map_err(|_| item::corrupt("environment")))
            .transpose()?,
        query: item::optional_string(stored, "query").map(str::to_owned),
        platform: item::optional_string(stored, "platform").map(str::to_owned),
        description: item::string(stored, "description")?.to_owned(),
        created_at: item::number(stored, "created_at")?,
        updated_at: item::number(stored, "updated_at")?,
        updated_by: item::string(stored, "updated_by")?.to_owned(),
    })
}

/// The labels in a node item's `labels` string set, ordered by name.
pub(super) fn labels_of_node_item(stored: &Item) -> Result<Vec<LabelName>> {
    let mut labels = match stored.get("labels") {
        None => Vec::new(),
        Some(AttributeValue::Ss(names)) => names
            .iter()
            .map(|name| LabelName::parse(name.as_str()).map_err(|_| item::corrupt("labels")))
            .collect::<Result<Vec<_>>>()?,
        Some(_) => return Err(item::corrupt("labels")),
    };
    labels.sort();
    Ok(labels)
}

impl DynamoStore {
    /// One page of `label`'s member ids after `after`, and whether more may follow.
    pub(super) async fn label_member_page(
        &self,
        label: &LabelName,
        after: Option<&NodeId>,
        start: Option<Item>,
    ) -> Result<(Vec<String>, Option<Item>)> {
        let condition = "#label = :label AND #member BETWEEN :from AND :to";
        let from = match after {
            // The next possible id after `after`: ids are [A-Za-z0-9_-].
            Some(after) => format!("{MEMBER_PREFIX}{after}\u{1}"),
            None => MEMBER_PREFIX.to_owned(),
        };
        let page = self
            .client
            .query()
            .table_name(&self.tables.labels)
            .key_condition_expression(condition)
            .set_expression_attribute_names(names(&[condition]))
            .expression_attribute_values(":label", s(label.as_str()))
            .expression_attribute_values(":from", s(from))
            .expression_attribute_values(":to", s(format!("{MEMBER_PREFIX}\u{7f}")))
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| classify(BACKEND, WHAT, e))?;
        let ids = page
            .items()
            .iter()
            .filter_map(|i| item::optional_string(i, "member")?.strip_prefix(MEMBER_PREFIX))
            .map(str::to_owned)
            .collect();
        Ok((ids, page.last_evaluated_key))
    }

    /// One attempt at a membership change; `Ok(None)` when it lost a race.
    async fn try_set_member(
        &self,
        label: &LabelName,
        node: &NodeId,
        member: bool,
    ) -> Result<Option<bool>> {
        let tables = &self.tables;
        let stored = self
            .get_item(&tables.nodes, attrs([("id", s(node.as_str()))]), true)
            .await?
            .ok_or_else(|| Error::not_found("node"))?;
        let is_member = labels_of_node_item(&stored)?.contains(label);
        if is_member == member {
            self.get_item(&tables.labels, definition_key(label), true)
                .await?
                .ok_or_else(|| Error::not_found(WHAT))?;
            return Ok(Some(false));
        }
        let key = item::string(&stored, "node_key")?;
        let set = AttributeValue::Ss(vec![label.as_str().to_owned()]);
        let (expression, condition) = if member {
            (
                "ADD #labels :label",
                "#node_key = :key AND NOT contains(#labels, :name)",
            )
        } else {
            (
                "DELETE #labels :label",
                "#node_key = :key AND contains(#labels, :name)",
            )
        };
        let check_condition = "attribute_exists(#label)";
        let check = ConditionCheck::builder()
            .table_name(&tables.labels)
            .set_key(Some(definition_key(label)))
            .condition_expression(check_condition)
            .set_expression_attribute_names(names(&[check_condition]))
            .build()
            .map_err(|e| Error::backend(BACKEND, e))?;
        let member_item = member_key(label.as_str(), node.as_str());
        let member_write = if member {
            let mut stored = member_item;
            stored.insert("node_id".into(), s(node.as_str()));
            put(build_put(&tables.labels, stored, None, None)?)
        } else {
            delete(build_delete(&tables.labels, member_item, None, None)?)
        };
        let writes = vec![
            aws_sdk_dynamodb::types::TransactWriteItem::builder()
                .condition_check(check)
                .build(),
            update(build_update(
                &tables.nodes,
                attrs([("id", s(node.as_str()))]),
                expression,
                Some(condition),
                attrs([
                    (":label", set),
                    (":name", s(label.as_str())),
                    (":key", s(key)),
                ]),
            )?),
            member_write,
            changed_key(&tables.audit, key)?,
        ];
        match self.transact(WHAT, writes).await? {
            Ok(()) => Ok(Some(true)),
            Err(reasons)
                if reasons
                    .first()
                    .is_some_and(|r| r == "ConditionalCheckFailed") =>
            {
                Err(Error::not_found(WHAT))
            }
            Err(_) => Ok(None),
        }
    }
}

#[async_trait]
impl LabelStore for DynamoStore {
    async fn put_label(&self, label: &Label) -> Result<Label> {
        // The SQL (at most 64 KiB, checked by the admin service) stays inline.
        let output = self
            .client
            .update_item()
            .table_name(&self.tables.labels)
            .set_key(Some(definition_key(&label.name)))
            .update_expression(PUT)
            .set_expression_attribute_names(names(&[PUT]))
            .expression_attribute_values(":kind", s(WHAT))
            .expression_attribute_values(
                ":environment",
                optional(label.environment.as_ref().map(EnvironmentName::as_str)),
            )
            .expression_attribute_values(":query", optional(label.query.as_deref()))
            .expression_attribute_values(":platform", optional(label.platform.as_deref()))
            .expression_attribute_values(":description", s(&label.description))
            .expression_attribute_values(":updated_at", n(label.updated_at))
            .expression_attribute_values(":updated_by", s(&label.updated_by))
            .expression_attribute_values(":created_at", n(label.created_at))
            .return_values(ReturnValue::AllNew)
            .send()
            .await
            .map_err(|e| classify(BACKEND, WHAT, e))?;
        let stored = output
            .attributes
            .ok_or_else(|| Error::backend(BACKEND, "UpdateItem returned no item"))?;
        label_from_item(&stored)
    }

    async fn label(&self, name: &LabelName) -> Result<Label> {
        let stored = self
            .get_item(&self.tables.labels, definition_key(name), true)
            .await?
            .ok_or_else(|| Error::not_found(WHAT))?;
        label_from_item(&stored)
    }

    async fn list_labels(&self) -> Result<Vec<Label>> {
        let query = self
            .client
            .query()
            .table_name(&self.tables.labels)
            .index_name("all-by-name")
            .key_condition_expression("#kind = :kind")
            .set_expression_attribute_names(names(&["#kind"]))
            .expression_attribute_values(":kind", s(WHAT));
        self.query_all(query, WHAT)
            .await?
            .iter()
            .map(label_from_item)
            .collect()
    }

    async fn delete_label(&self, name: &LabelName) -> Result<()> {
        // The definition first, so no membership is added while the members are removed.
        let result = self
            .client
            .delete_item()
            .table_name(&self.tables.labels)
            .set_key(Some(definition_key(name)))
            .condition_expression("attribute_exists(#label)")
            .expression_attribute_names("#label", "label")
            .send()
            .await;
        match result {
            Ok(_) => {}
            Err(e) if condition_failed(&e) => return Err(Error::not_found(WHAT)),
            Err(e) => return Err(classify(BACKEND, WHAT, e)),
        }
        let mut start = None;
        loop {
            let (ids, next) = self.label_member_page(name, None, start).await?;
            for batch in ids.chunks(REMOVAL_CONCURRENCY) {
                futures_util::future::try_join_all(
                    batch.iter().map(|id| self.remove_from_node(name, id)),
                )
                .await?;
            }
            let removals = ids
                .iter()
                .map(|id| {
                    let request = DeleteRequest::builder()
                        .set_key(Some(member_key(name.as_str(), id)))
                        .build()
                        .map_err(|e| Error::backend(BACKEND, e))?;
                    Ok(WriteRequest::builder().delete_request(request).build())
                })
                .collect::<Result<Vec<_>>>()?;
            self.batch_write(&self.tables.labels, removals).await?;
            start = next;
            if start.is_none() {
                return Ok(());
            }
        }
    }

    async fn set_label_member(
        &self,
        label: &LabelName,
        node: &NodeId,
        member: bool,
    ) -> Result<bool> {
        for _ in 0..RACE_RETRIES {
            if let Some(changed) = self.try_set_member(label, node, member).await? {
                return Ok(changed);
            }
        }
        Err(Error::unavailable(
            "dynamodb: concurrent changes of one node kept conflicting; try again",
        ))
    }
}

impl DynamoStore {
    /// Takes `label` out of node `id`'s label set (a node already gone is skipped) and lists
    /// its key as changed.
    async fn remove_from_node(&self, label: &LabelName, id: &str) -> Result<()> {
        let condition = "attribute_exists(#id)";
        let result = self
            .client
            .update_item()
            .table_name(&self.tables.nodes)
            .set_key(Some(attrs([("id", s(id))])))
            .update_expression("DELETE #labels :label")
            .condition_expression(condition)
            .set_expression_attribute_names(names(&["#labels #id"]))
            .expression_attribute_values(
                ":label",
                AttributeValue::Ss(vec![label.as_str().to_owned()]),
            )
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        let stored = match result {
            Ok(output) => output.attributes.unwrap_or_default(),
            Err(e) if condition_failed(&e) => return Ok(()),
            Err(e) => return Err(classify(BACKEND, WHAT, e)),
        };
        let key = item::string(&stored, "node_key")?;
        self.transact(WHAT, vec![changed_key(&self.tables.audit, key)?])
            .await?
            .map_err(|reasons| Error::unavailable(format!("dynamodb: {}", reasons.join(", "))))
    }
}
