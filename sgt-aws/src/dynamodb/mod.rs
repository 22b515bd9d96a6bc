//! The store on DynamoDB: every sgt-core store trait, on the tables of [`TABLES`].
//!
//! Request paths use GetItem, Query, conditional writes and transactions only, never Scan.
//! Values that could pass DynamoDB's 400 KB item limit (host details, configs, SQL, targets,
//! query results) are kept inline up to [`INLINE_LIMIT`] bytes and otherwise written to the
//! blob store (S3 in production), the item holding the blob's key. `sgt-aws/README.md` lists
//! each table, index and the calls every request path makes.

mod audit;
mod carves;
mod environments;
mod item;
mod labels;
mod nodes;
mod queries;
mod saved_queries;
pub mod tables;
mod users;
mod writes;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, TransactWriteItem, WriteRequest};
use bytes::Bytes;
use sgt_core::blobs::{BlobKey, BlobStore};
use sgt_core::types::random_hex;
use sgt_core::{Error, Result};

use crate::errors::{classify, code};
use item::{s, Item};
pub use tables::TABLES;

const BACKEND: &str = "dynamodb";
/// Text values longer than this go to the blob store instead of the item (at most two such
/// values per item, so an item stays well under DynamoDB's 400 KB).
pub const INLINE_LIMIT: usize = 128 * 1024;
/// How often a write that lost a race (a failed condition) is tried again from a fresh read.
const RACE_RETRIES: usize = 20;
/// The blob-store folder of values over [`INLINE_LIMIT`]. Items refer to these blobs for as
/// long as they live, so a deployment must never expire them by age.
pub const OVERFLOW_PREFIX: &str = "dynamodb-overflow";

/// The full table names of one deployment.
#[derive(Debug, Clone)]
struct TableNames {
    nodes: String,
    lookups: String,
    environments: String,
    queries: String,
    deliveries: String,
    saved_queries: String,
    labels: String,
    carves: String,
    carve_blocks: String,
    users: String,
    tokens: String,
    audit: String,
}

impl TableNames {
    fn new(prefix: &str) -> Self {
        TableNames {
            nodes: tables::NODES.table_name(prefix),
            lookups: tables::LOOKUPS.table_name(prefix),
            environments: tables::ENVIRONMENTS.table_name(prefix),
            queries: tables::QUERIES.table_name(prefix),
            deliveries: tables::DELIVERIES.table_name(prefix),
            saved_queries: tables::SAVED_QUERIES.table_name(prefix),
            labels: tables::LABELS.table_name(prefix),
            carves: tables::CARVES.table_name(prefix),
            carve_blocks: tables::CARVE_BLOCKS.table_name(prefix),
            users: tables::USERS.table_name(prefix),
            tokens: tables::TOKENS.table_name(prefix),
            audit: tables::AUDIT.table_name(prefix),
        }
    }
}

/// The sgt store on DynamoDB tables named `<prefix>-<table>` (created by `sgt provision`),
/// with oversize values in a blob store.
#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: aws_sdk_dynamodb::Client,
    tables: TableNames,
    overflow: Arc<dyn BlobStore>,
}

impl DynamoStore {
    /// A store on the tables of `prefix`, keeping values over [`INLINE_LIMIT`] in `overflow`.
    pub fn new(
        client: aws_sdk_dynamodb::Client,
        prefix: &str,
        overflow: Arc<dyn BlobStore>,
    ) -> Self {
        DynamoStore {
            client,
            tables: TableNames::new(prefix),
            overflow,
        }
    }

    /// A store built from the process's one SDK configuration.
    pub fn from_config(
        config: &aws_config::SdkConfig,
        prefix: &str,
        overflow: Arc<dyn BlobStore>,
    ) -> Self {
        Self::new(aws_sdk_dynamodb::Client::new(config), prefix, overflow)
    }

    /// Puts `text` into `item` as attribute `field`, or into the blob store with its key in
    /// `<field>_blob` when it is longer than [`INLINE_LIMIT`].
    async fn put_text(&self, item: &mut Item, field: &str, text: String) -> Result<()> {
        if text.len() <= INLINE_LIMIT {
            item.insert(field.to_owned(), s(text));
            return Ok(());
        }
        let key = BlobKey::parse(format!("{OVERFLOW_PREFIX}/{}", random_hex(16)))?;
        self.overflow.put(&key, Bytes::from(text)).await?;
        item.insert(blob_field(field), s(key.as_str()));
        Ok(())
    }

    /// The text [`DynamoStore::put_text`] stored as `field`.
    async fn get_text(&self, item: &Item, field: &str) -> Result<String> {
        if let Some(AttributeValue::S(text)) = item.get(field) {
            return Ok(text.clone());
        }
        match item.get(&blob_field(field)) {
            Some(AttributeValue::S(key)) => {
                let data = self.overflow.get(&BlobKey::parse(key.as_str())?).await?;
                String::from_utf8(data.to_vec()).map_err(|_| item::corrupt(field))
            }
            _ => Err(item::corrupt(field)),
        }
    }

    /// Deletes the overflow blobs `item` refers to; failures are logged, not returned (an
    /// orphaned blob wastes space but loses nothing).
    async fn delete_overflow(&self, item: &Item) {
        for (name, value) in item {
            if let (true, AttributeValue::S(key)) = (name.ends_with("_blob"), value) {
                match BlobKey::parse(key.as_str()) {
                    Ok(key) => {
                        if let Err(e) = self.overflow.delete(&key).await {
                            tracing::warn!(error = %e, "could not delete an overflow blob");
                        }
                    }
                    Err(_) => tracing::warn!("an overflow blob key is malformed"),
                }
            }
        }
    }

    async fn get_item(&self, table: &str, key: Item, consistent: bool) -> Result<Option<Item>> {
        let output = self
            .client
            .get_item()
            .table_name(table)
            .set_key(Some(key))
            .consistent_read(consistent)
            .send()
            .await
            .map_err(|e| classify(BACKEND, table, e))?;
        Ok(output.item)
    }

    /// Runs a transaction. `Ok(Err(reasons))` when it was cancelled: one cancellation code per
    /// item (`ConditionalCheckFailed`, `TransactionConflict`, `None`, ...), possibly empty when
    /// the emulator or service gave none.
    async fn transact(
        &self,
        what: &str,
        items: Vec<TransactWriteItem>,
    ) -> Result<std::result::Result<(), Vec<String>>> {
        match self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
        {
            Ok(_) => Ok(Ok(())),
            Err(SdkError::ServiceError(service)) => match service.err() {
                TransactWriteItemsError::TransactionCanceledException(cancelled) => {
                    Ok(Err(cancelled
                        .cancellation_reasons()
                        .iter()
                        .map(|r| r.code().unwrap_or("None").to_owned())
                        .collect()))
                }
                _ => Err(classify(BACKEND, what, SdkError::ServiceError(service))),
            },
            Err(e) => Err(classify(BACKEND, what, e)),
        }
    }

    /// Every item a query matches, page after page.
    async fn query_all(&self, query: QueryFluentBuilder, what: &str) -> Result<Vec<Item>> {
        self.query_up_to(query, what, usize::MAX).await
    }

    /// The first `limit` items a query matches (after its filter), page after page.
    async fn query_up_to(
        &self,
        query: QueryFluentBuilder,
        what: &str,
        limit: usize,
    ) -> Result<Vec<Item>> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let page = query
                .clone()
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| classify(BACKEND, what, e))?;
            items.extend(page.items.unwrap_or_default());
            if items.len() >= limit {
                items.truncate(limit);
                return Ok(items);
            }
            start = page.last_evaluated_key;
            if start.is_none() {
                return Ok(items);
            }
        }
    }

    /// Reads items by key, `consistent`ly, in batches of 100, retrying unprocessed keys.
    /// The order of the result is not the order of `keys`.
    async fn batch_get(&self, table: &str, keys: Vec<Item>) -> Result<Vec<Item>> {
        let mut found = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(100) {
            let mut request = Some(
                KeysAndAttributes::builder()
                    .set_keys(Some(chunk.to_vec()))
                    .consistent_read(true)
                    .build()
                    .map_err(|e| Error::backend(BACKEND, e))?,
            );
            let mut attempt = 0;
            while let Some(pending) = request.take() {
                let output = self
                    .client
                    .batch_get_item()
                    .request_items(table, pending)
                    .send()
                    .await
                    .map_err(|e| classify(BACKEND, table, e))?;
                if let Some(mut responses) = output.responses {
                    found.extend(responses.remove(table).unwrap_or_default());
                }
                request = output
                    .unprocessed_keys
                    .and_then(|mut u| u.remove(table))
                    .filter(|k| !k.keys().is_empty());
                if request.is_some() {
                    backoff(&mut attempt, table).await?;
                }
            }
        }
        Ok(found)
    }

    /// Writes items in batches of 25, retrying unprocessed ones with backoff.
    async fn batch_write(&self, table: &str, writes: Vec<WriteRequest>) -> Result<()> {
        for chunk in writes.chunks(25) {
            let mut pending = chunk.to_vec();
            let mut attempt = 0;
            while !pending.is_empty() {
                let output = self
                    .client
                    .batch_write_item()
                    .request_items(table, pending)
                    .send()
                    .await
                    .map_err(|e| classify(BACKEND, table, e))?;
                pending = output
                    .unprocessed_items
                    .and_then(|mut u| u.remove(table))
                    .unwrap_or_default();
                if !pending.is_empty() {
                    backoff(&mut attempt, table).await?;
                }
            }
        }
        Ok(())
    }
}

fn blob_field(field: &str) -> String {
    format!("{field}_blob")
}

/// Waits before retrying throttled batch work; gives up as `Unavailable` after a few tries.
async fn backoff(attempt: &mut u32, what: &str) -> Result<()> {
    *attempt += 1;
    if *attempt > 8 {
        return Err(Error::unavailable(format!(
            "{BACKEND}: {what}: throttled, try again later"
        )));
    }
    tokio::time::sleep(Duration::from_millis(25 << (*attempt).min(6))).await;
    Ok(())
}

/// True when a single-item write failed its condition.
fn condition_failed<E, R>(error: &SdkError<E, R>) -> bool
where
    E: aws_smithy_types::error::metadata::ProvideErrorMetadata,
{
    code(error) == Some("ConditionalCheckFailedException")
}

/// The outcome of a conditional write: `Some` when it was made, `None` when its condition
/// failed; other failures classified.
fn unless_condition_failed<O, E, R>(
    result: std::result::Result<O, SdkError<E, R>>,
    what: &str,
) -> Result<Option<O>>
where
    E: aws_smithy_types::error::metadata::ProvideErrorMetadata
        + std::error::Error
        + Send
        + Sync
        + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    match result {
        Ok(output) => Ok(Some(output)),
        Err(e) if condition_failed(&e) => Ok(None),
        Err(e) => Err(classify(BACKEND, what, e)),
    }
}

/// True when a cancelled transaction's item `index` failed its condition.
fn failed_condition_at(reasons: &[String], index: usize) -> bool {
    reasons
        .get(index)
        .is_some_and(|r| r == "ConditionalCheckFailed")
}

/// A key or item from attribute pairs.
fn attrs<const N: usize>(pairs: [(&str, AttributeValue); N]) -> Item {
    pairs
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value))
        .collect::<HashMap<_, _>>()
}

/// The expression attribute names of expressions that write every attribute as `#name`
/// (so no attribute ever collides with DynamoDB's reserved words); `None` when there are none.
fn names(expressions: &[&str]) -> Option<HashMap<String, String>> {
    let mut names = HashMap::new();
    for expression in expressions {
        let mut rest = *expression;
        while let Some(start) = rest.find('#') {
            let name: String = rest[start + 1..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            rest = &rest[start + 1 + name.len()..];
            names.insert(format!("#{name}"), name);
        }
    }
    (!names.is_empty()).then_some(names)
}

/// A sort key that orders by time, then id: `<seconds, 20 digits>/<id>`.
fn created_key(created_at: i64, id: &str) -> String {
    format!("{:020}/{id}", created_at.max(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_collected_from_every_expression() {
        let found = names(&[
            "SET #state = :s REMOVE #pending_node",
            "#state = :old AND #id > :a",
        ])
        .unwrap();
        assert_eq!(found.len(), 3);
        assert_eq!(found["#pending_node"], "pending_node");
        assert_eq!(names(&[":a = :b"]), None);
    }

    #[test]
    fn condition_reasons_are_read_by_index() {
        let reasons = vec!["None".to_owned(), "ConditionalCheckFailed".to_owned()];
        assert!(failed_condition_at(&reasons, 1));
        assert!(!failed_condition_at(&reasons, 0));
        assert!(!failed_condition_at(&reasons, 5));
    }

    #[test]
    fn created_keys_sort_by_time_then_id() {
        assert!(created_key(9, "b") < created_key(10, "a"));
        assert!(created_key(10, "a") < created_key(10, "b"));
    }
}
