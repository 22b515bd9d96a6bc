//! Environments and their versioned config documents.

use async_trait::async_trait;
use sgt_core::store::*;
use sgt_core::types::*;
use sgt_core::{Error, Result};
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

use super::{corrupt, db_error, json_text, parse_json, SqliteStore};

/// A config version as SQLite stores it.
fn sql_version(version: u64) -> Result<i64> {
    i64::try_from(version).map_err(|_| Error::invalid_input("config version out of range"))
}

fn settings_text(settings: &EnvironmentSettings) -> Result<String> {
    serde_json::to_string(settings).map_err(|e| Error::backend("sqlite", e))
}

fn environment_from_row(row: &SqliteRow) -> Result<Environment> {
    Ok(Environment {
        name: EnvironmentName::parse(row.get::<String, _>("name"))
            .map_err(|_| corrupt("environment name"))?,
        config: parse_json(row.get::<&str, _>("config"))?,
        created_at: row.get("created_at"),
        config_updated_at: row.get("config_updated_at"),
        config_version: u64::try_from(row.get::<i64, _>("config_version"))
            .map_err(|_| corrupt("config version"))?,
        settings: serde_json::from_str(row.get::<&str, _>("settings"))
            .map_err(|_| corrupt("environment settings"))?,
    })
}

#[async_trait]
impl EnvironmentStore for SqliteStore {
    async fn create_environment(&self, environment: &Environment) -> Result<()> {
        sqlx::query(
            "INSERT INTO environments \
             (name, config, created_at, config_updated_at, config_version, settings) \
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(environment.name.as_str())
        .bind(json_text(&environment.config))
        .bind(environment.created_at)
        .bind(environment.config_updated_at)
        .bind(sql_version(environment.config_version)?)
        .bind(settings_text(&environment.settings)?)
        .execute(&self.pool)
        .await
        .map_err(db_error("environment"))?;
        Ok(())
    }

    async fn environment(&self, name: &EnvironmentName) -> Result<Environment> {
        let row = sqlx::query("SELECT * FROM environments WHERE name = ?")
            .bind(name.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error("environment"))?
            .ok_or_else(|| Error::not_found("environment"))?;
        environment_from_row(&row)
    }

    async fn list_environments(&self) -> Result<Vec<Environment>> {
        let rows = sqlx::query("SELECT * FROM environments ORDER BY name")
            .fetch_all(&self.pool)
            .await
            .map_err(db_error("environment"))?;
        rows.iter().map(environment_from_row).collect()
    }

    async fn put_config(
        &self,
        name: &EnvironmentName,
        config: &serde_json::Value,
        now: UnixSeconds,
        expected_version: Option<u64>,
    ) -> Result<u64> {
        let expected = expected_version.map(sql_version).transpose()?;
        let updated: Option<i64> = sqlx::query_scalar(
            "UPDATE environments \
             SET config = ?1, config_updated_at = ?2, config_version = config_version + 1 \
             WHERE name = ?3 AND (?4 IS NULL OR config_version = ?4) \
             RETURNING config_version",
        )
        .bind(json_text(config))
        .bind(now)
        .bind(name.as_str())
        .bind(expected)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error("environment"))?;
        match updated {
            Some(version) => u64::try_from(version).map_err(|_| corrupt("config version")),
            None => {
                // Either no such environment, or another writer replaced the config first.
                self.environment(name).await?;
                Err(Error::stale_config())
            }
        }
    }

    async fn put_environment_settings(
        &self,
        name: &EnvironmentName,
        settings: &EnvironmentSettings,
    ) -> Result<()> {
        let updated = sqlx::query("UPDATE environments SET settings = ? WHERE name = ?")
            .bind(settings_text(settings)?)
            .bind(name.as_str())
            .execute(&self.pool)
            .await
            .map_err(db_error("environment"))?;
        if updated.rows_affected() == 0 {
            return Err(Error::not_found("environment"));
        }
        Ok(())
    }

    async fn delete_environment(&self, name: &EnvironmentName) -> Result<()> {
        let deleted = sqlx::query("DELETE FROM environments WHERE name = ?")
            .bind(name.as_str())
            .execute(&self.pool)
            .await
            .map_err(db_error("environment"))?;
        if deleted.rows_affected() == 0 {
            return Err(Error::not_found("environment"));
        }
        Ok(())
    }
}
