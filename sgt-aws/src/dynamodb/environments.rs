//! Environments and their config documents: the `environments` table.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::ReturnValue;
use sgt_core::store::{Environment, EnvironmentStore};
use sgt_core::types::{EnvironmentName, UnixSeconds};
use sgt_core::{Error, Result};

use super::item::{self, n, s, Item};
use super::{attrs, blob_field, classify, condition_failed, names, DynamoStore, BACKEND};

fn name_key(name: &EnvironmentName) -> Item {
    attrs([("name", s(name.as_str()))])
}

impl DynamoStore {
    async fn environment_from_item(&self, stored: &Item) -> Result<Environment> {
        Ok(Environment {
            name: item::parsed(stored, "name", EnvironmentName::parse)?,
            config: item::json(&self.get_text(stored, "config").await?, "config")?,
            created_at: item::number(stored, "created_at")?,
            config_updated_at: item::number(stored, "config_updated_at")?,
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
    ) -> Result<()> {
        let mut new = Item::new();
        self.put_text(&mut new, "config", item::to_json(config)?)
            .await?;
        let (set, remove) = match new.get("config") {
            Some(_) => ("config", blob_field("config")),
            None => ("config_blob", "config".to_owned()),
        };
        let value = new.get(set).cloned().unwrap_or_else(|| s(""));
        let result = self
            .client
            .update_item()
            .table_name(&self.tables.environments)
            .set_key(Some(name_key(name)))
            .update_expression(format!(
                "SET #{set} = :value, #config_updated_at = :now REMOVE #{remove}"
            ))
            .condition_expression("attribute_exists(#name)")
            .set_expression_attribute_names(names(&[
                &format!("#{set} #{remove}"),
                "#config_updated_at #name",
            ]))
            .expression_attribute_values(":value", value)
            .expression_attribute_values(":now", n(now))
            .return_values(ReturnValue::AllOld)
            .send()
            .await;
        match result {
            Ok(output) => {
                if let Some(old) = output.attributes {
                    if old.get("config_blob") != new.get("config_blob") {
                        self.delete_overflow(&old).await;
                    }
                }
                Ok(())
            }
            Err(e) => {
                self.delete_overflow(&new).await;
                if condition_failed(&e) {
                    Err(Error::not_found("environment"))
                } else {
                    Err(classify(BACKEND, "environment", e))
                }
            }
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
