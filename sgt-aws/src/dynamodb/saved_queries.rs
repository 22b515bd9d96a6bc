//! Saved queries: the `saved-queries` table, one item per name.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::ReturnValue;
use sgt_core::store::{SavedQuery, SavedQueryStore};
use sgt_core::types::SavedQueryName;
use sgt_core::{Error, Result};

use super::item::{self, n, s, Item};
use super::{attrs, classify, condition_failed, names, DynamoStore, BACKEND};

const WHAT: &str = "saved query";

/// Creates or replaces a saved query, keeping the first put's creation time.
const PUT: &str = "SET #kind = :kind, #sql = :sql, #description = :description, \
                   #updated_at = :updated_at, #updated_by = :updated_by, \
                   #created_at = if_not_exists(#created_at, :created_at)";

fn name_key(name: &SavedQueryName) -> Item {
    attrs([("name", s(name.as_str()))])
}

fn saved_query_from_item(stored: &Item) -> Result<SavedQuery> {
    Ok(SavedQuery {
        name: item::parsed(stored, "name", SavedQueryName::parse)?,
        sql: item::string(stored, "sql")?.to_owned(),
        description: item::string(stored, "description")?.to_owned(),
        created_at: item::number(stored, "created_at")?,
        updated_at: item::number(stored, "updated_at")?,
        updated_by: item::string(stored, "updated_by")?.to_owned(),
    })
}

#[async_trait]
impl SavedQueryStore for DynamoStore {
    async fn put_saved_query(&self, query: &SavedQuery) -> Result<SavedQuery> {
        // The SQL (at most 64 KiB, checked by the admin service) stays inline.
        let output = self
            .client
            .update_item()
            .table_name(&self.tables.saved_queries)
            .set_key(Some(name_key(&query.name)))
            .update_expression(PUT)
            .set_expression_attribute_names(names(&[PUT]))
            .expression_attribute_values(":kind", s("saved-query"))
            .expression_attribute_values(":sql", s(&query.sql))
            .expression_attribute_values(":description", s(&query.description))
            .expression_attribute_values(":updated_at", n(query.updated_at))
            .expression_attribute_values(":updated_by", s(&query.updated_by))
            .expression_attribute_values(":created_at", n(query.created_at))
            .return_values(ReturnValue::AllNew)
            .send()
            .await
            .map_err(|e| classify(BACKEND, WHAT, e))?;
        let stored = output
            .attributes
            .ok_or_else(|| Error::backend(BACKEND, "UpdateItem returned no item"))?;
        saved_query_from_item(&stored)
    }

    async fn saved_query(&self, name: &SavedQueryName) -> Result<SavedQuery> {
        let stored = self
            .get_item(&self.tables.saved_queries, name_key(name), true)
            .await?
            .ok_or_else(|| Error::not_found(WHAT))?;
        saved_query_from_item(&stored)
    }

    async fn list_saved_queries(&self) -> Result<Vec<SavedQuery>> {
        let query = self
            .client
            .query()
            .table_name(&self.tables.saved_queries)
            .index_name("all-by-name")
            .key_condition_expression("#kind = :kind")
            .set_expression_attribute_names(names(&["#kind"]))
            .expression_attribute_values(":kind", s("saved-query"));
        self.query_all(query, WHAT)
            .await?
            .iter()
            .map(saved_query_from_item)
            .collect()
    }

    async fn delete_saved_query(&self, name: &SavedQueryName) -> Result<()> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.tables.saved_queries)
            .set_key(Some(name_key(name)))
            .condition_expression("attribute_exists(#name)")
            .expression_attribute_names("#name", "name")
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if condition_failed(&e) => Err(Error::not_found(WHAT)),
            Err(e) => Err(classify(BACKEND, WHAT, e)),
        }
    }
}
