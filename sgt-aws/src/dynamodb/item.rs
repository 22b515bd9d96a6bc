//! Reading and writing item attributes.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use sgt_core::{Error, Result};

pub(crate) type Item = HashMap<String, AttributeValue>;

/// A string attribute.
pub(crate) fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

/// A number attribute.
pub(crate) fn n(value: i64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// A stored item is missing an attribute or has it in the wrong shape.
pub(crate) fn corrupt(what: &str) -> Error {
    Error::backend(
        super::BACKEND,
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("stored item has a malformed {what}"),
        ),
    )
}

/// The string attribute `name`.
pub(crate) fn string<'a>(item: &'a Item, name: &str) -> Result<&'a str> {
    optional_string(item, name).ok_or_else(|| corrupt(name))
}

/// The string attribute `name`, if present.
pub(crate) fn optional_string<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    match item.get(name) {
        Some(AttributeValue::S(value)) => Some(value.as_str()),
        _ => None,
    }
}

/// The number attribute `name`.
pub(crate) fn number(item: &Item, name: &str) -> Result<i64> {
    optional_number(item, name)?.ok_or_else(|| corrupt(name))
}

/// The number attribute `name`, if present.
pub(crate) fn optional_number(item: &Item, name: &str) -> Result<Option<i64>> {
    match item.get(name) {
        Some(AttributeValue::N(value)) => value.parse().map(Some).map_err(|_| corrupt(name)),
        Some(AttributeValue::Null(_)) | None => Ok(None),
        Some(_) => Err(corrupt(name)),
    }
}

/// Parses a stored value with a validating constructor.
pub(crate) fn parsed<T>(item: &Item, name: &str, parse: impl Fn(String) -> Result<T>) -> Result<T> {
    parse(string(item, name)?.to_owned()).map_err(|_| corrupt(name))
}

/// Parses stored JSON text.
pub(crate) fn json<T: serde::de::DeserializeOwned>(text: &str, what: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|_| corrupt(what))
}

/// Serializes to JSON text.
pub(crate) fn to_json<T: serde::Serialize + ?Sized>(value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|e| Error::backend(super::BACKEND, e))
}
