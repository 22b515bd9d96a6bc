//! Environments and their config documents: the `environments` table.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use sgt_core::store::{Environment, EnvironmentSettings, EnvironmentStore};
use sgt_core::types::{EnvironmentName, UnixSeconds};
use sgt_core::{Error, Result};

use super::item::{self, n, s, Item};
use super::{attrs, blob_field, classify, condition_failed, names, DynamoStore, BACKEND};

fn name_key(name: &EnvironmentName) -> Item {
    attrs([("name", s(name.as_str()))])
}

/// A count as a number attribute.
fn count(value: u64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// The config version of a stored environment; items written before versions existed are
/// at version 1.
fn config_version(stored: &Item) -> Result<u64> {
    let version = item::optional_number(stored, "config_version")?.unwrap_or(1);
    u64::try_from(version).map_err(|_| item::corrupt("config_version"))
}

impl DynamoStore {
    async fn environment_from_item(&self, stored: &Item) -> Result<Environment> {
        Ok(Environment {
            name: item::parsed(stored, "name", EnvironmentName::parse)?,
            config: item::json(&self.get_text(stored, "config").await?, "config")?,
            created_at: item::number(stored, "created_at")?,
            config_updated_at: item::number(stored, "config_updated_at")?,
            config_version: config_version(stored)?,
            settings: match item::optional_string(stored, "settings") {
                Some(text) => item::json(text, "environment settings")?,
                None => EnvironmentSettings::default(),
            },
        })
    }
}

#[async_trait]
impl EnvironmentStore for DynamoStore {
    async fn create_environment(&self, environment: &Environment) -> Result<()> {
        let mut stored = attrs([
            ("name", s(environment.name.as_str())),
            ("kind", s("environment")),
            ("created_at", n(environment.created_at)),
            ("config_updated_at", n(environment.config_updated_at)),
            ("config_version", count(environment.config_version)),
            ("settings", s(item::to_json(&environment.settings)?)),
        ]);
        self.put_text(&mut stored, "config", item::to_json(&environment.config)?)
            .await?;
        let result = self
            .client
            .put_item()
            .table_name(&self.tables.environments)
            .set_item(Some(stored.clone()))
            .condition_expression("attribute_not_exists(#name)")
            .expression_attribute_names("#name", "name")
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) => {
                self.delete_overflow(&stored).await;
                if condition_failed(&e) {
                    Err(Error::already_exists("environment"))
                } else {
                    Err(classify(BACKEND, "environment", e))
                }
            }
        }
    }

    async fn environment(&self, name: &EnvironmentName) -> Result<Environment> {
        // Eventually consistent: this is the config poll's read, and a replaced config reaches
        // agents at a later poll anyway.
        let stored = self
            .get_item(&self.tables.environments, name_key(name), false)
            .await?
            .ok_or_else(|| Error::not_found("environment"))?;
        self.environment_from_item(&stored).await
    }

    async fn list_environments(&self) -> Result<Vec<Environment>> {
        let query = self
            .client
            .query()
            .table_name(&self.tables.environments)
            .index_name("all-by-name")
            .key_condition_expression("#kind = :kind")
            .set_expression_attribute_names(names(&["#kind"]))
            .expression_attribute_values(":kind", s("environment"));
        let mut environments = Vec::new();
        for stored in self.query_all(query, "environment").await? {
            environments.push(self.environment_from_item(&stored).await?);
        }
        Ok(environments)
    }

    async fn put_config(
        &self,
        name: &EnvironmentName,
        config: &serde_json::Value,
        now: UnixSeconds,
        expected_version: Option<u64>,
    ) -> Result<u64> {
        let mut new = Item::new();
        self.put_text(&mut new, "config", item::to_json(config)?)
            .await?;
        let (set, remove) = match new.get("config") {
            Some(_) => ("config", blob_field("config")),
            None => ("config_blob", "config".to_owned()),
        };
        let value = new.get(set).cloned().unwrap_or_else(|| s(""));
        // Items from before versions existed have none and count as version 1.
        let condition = match expected_version {
            None => "attribute_exists(#name)",
            Some(1) => {
                "attribute_exists(#name) AND \
                 (attribute_not_exists(#config_version) OR #config_version = :expected)"
            }
            Some(_) => "attribute_exists(#name) AND #config_version = :expected",
        };
        let mut update = self
            .client
            .update_item()
            .table_name(&self.tables.environments)
            .set_key(Some(name_key(name)))
            .update_expression(format!(
                "SET #{set} = :value, #config_updated_at = :now, \
                 #config_version = if_not_exists(#config_version, :one) + :one REMOVE #{remove}"
            ))
            .condition_expression(condition)
            .set_expression_attribute_names(names(&[
                &format!("#{set} #{remove}"),
                "#config_updated_at #name #config_version",
            ]))
            .expression_attribute_values(":value", value)
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":one", n(1))
            .return_values(ReturnValue::AllOld);
        if let Some(expected) = expected_version {
            update = update.expression_attribute_values(":expected", count(expected));
        }
        match update.send().await {
            Ok(output) => {
                let old = output.attributes.unwrap_or_default();
                if old.get("config_blob") != new.get("config_blob") {
                    self.delete_overflow(&old).await;
                }
                Ok(config_version(&old)? + 1)
            }
            Err(e) => {
                self.delete_overflow(&new).await;
                if !condition_failed(&e) {
                    return Err(classify(BACKEND, "environment", e));
                }
                // Either no such environment, or another writer replaced the config first.
                match self
                    .get_item(&self.tables.environments, name_key(name), true)
                    .await?
                {
                    None => Err(Error::not_found("environment")),
                    Some(_) => Err(Error::stale_config()),
                }
            }
        }
    }

    async fn put_environment_settings(
        &self,
        name: &EnvironmentName,
        settings: &EnvironmentSettings,
    ) -> Result<()> {
        let result = self
            .client
            .update_item()
            .table_name(&self.tables.environments)
            .set_key(Some(name_key(name)))
            .update_expression("SET #settings = :settings")
            .condition_expression("attribute_exists(#name)")
            .set_expression_attribute_names(names(&["SET #settings", "#name"]))
            .expression_attribute_values(":settings", s(item::to_json(settings)?))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if condition_failed(&e) => Err(Error::not_found("environment")),
            Err(e) => Err(classify(BACKEND, "environment", e)),
        }
    }

    async fn delete_environment(&self, name: &EnvironmentName) -> Result<()> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.tables.environments)
            .set_key(Some(name_key(name)))
            .condition_expression("attribute_exists(#name)")
            .expression_attribute_names("#name", "name")
            .return_values(ReturnValue::AllOld)
            .send()
            .await;
        match result {
            Ok(output) => {
                if let Some(old) = output.attributes {
                    self.delete_overflow(&old).await;
                }
                Ok(())
            }
            Err(e) if condition_failed(&e) => Err(Error::not_found("environment")),
            Err(e) => Err(classify(BACKEND, "environment", e)),
        }
    }
}
