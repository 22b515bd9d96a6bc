//! Building the items of a DynamoDB transaction.

use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, Delete, Put, TransactWriteItem, Update,
};
use sgt_core::{Error, Result};

use super::item::Item;
use super::{names, BACKEND};

/// A transaction's put of `item`, if `condition` (with `#name` attributes) holds for the
/// stored item and `values`.
pub(super) fn build_put(
    table: &str,
    item: Item,
    condition: Option<&str>,
    values: Option<Item>,
) -> Result<Put> {
    Put::builder()
        .table_name(table)
        .set_item(Some(item))
        .set_condition_expression(condition.map(str::to_owned))
        .set_expression_attribute_names(condition.and_then(|c| names(&[c])))
        .set_expression_attribute_values(values)
        .build()
        .map_err(|e| Error::backend(BACKEND, e))
}

/// A transaction's delete of `key`, if `condition` holds.
pub(super) fn build_delete(
    table: &str,
    key: Item,
    condition: Option<&str>,
    values: Option<Item>,
) -> Result<Delete> {
    Delete::builder()
        .table_name(table)
        .set_key(Some(key))
        .set_condition_expression(condition.map(str::to_owned))
        .set_expression_attribute_names(condition.and_then(|c| names(&[c])))
        .set_expression_attribute_values(values)
        .build()
        .map_err(|e| Error::backend(BACKEND, e))
}

pub(super) fn put(put: Put) -> TransactWriteItem {
    TransactWriteItem::builder().put(put).build()
}

pub(super) fn delete(delete: Delete) -> TransactWriteItem {
    TransactWriteItem::builder().delete(delete).build()
}

/// A transaction's update of `key` by `expression`, if `condition` holds.
pub(super) fn build_update(
    table: &str,
    key: Item,
    expression: &str,
    condition: Option<&str>,
    values: Item,
) -> Result<Update> {
    Update::builder()
        .table_name(table)
        .set_key(Some(key))
        .update_expression(expression)
        .set_condition_expression(condition.map(str::to_owned))
        .set_expression_attribute_names(names(&[expression, condition.unwrap_or("")]))
        .set_expression_attribute_values(Some(values))
        .build()
        .map_err(|e| Error::backend(BACKEND, e))
}

/// A transaction's check that the user `username` (in the `users` table) has the admin
/// role, without writing it.
pub(super) fn still_admin(
    users_table: &str,
    username: &sgt_core::types::Username,
) -> Result<TransactWriteItem> {
    let condition = "#role = :admin";
    let check = ConditionCheck::builder()
        .table_name(users_table)
        .key("username", AttributeValue::S(username.as_str().to_owned()))
        .condition_expression(condition)
        .set_expression_attribute_names(names(&[condition]))
        .expression_attribute_values(":admin", AttributeValue::S("admin".into()))
        .build()
        .map_err(|e| Error::backend(BACKEND, e))?;
    Ok(TransactWriteItem::builder().condition_check(check).build())
}

pub(super) fn update(update: Update) -> TransactWriteItem {
    TransactWriteItem::builder().update(update).build()
}
