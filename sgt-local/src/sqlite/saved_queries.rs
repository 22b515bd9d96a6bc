//! Saved queries.

use async_trait::async_trait;
use sgt_core::store::{SavedQuery, SavedQueryStore};
use sgt_core::types::SavedQueryName;
use sgt_core::{Error, Result};
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

use super::{corrupt, db_error, SqliteStore};

fn saved_query_from_row(row: &SqliteRow) -> Result<SavedQuery> {
    Ok(SavedQuery {
        name: SavedQueryName::parse(row.get::<String, _>("name"))
            .map_err(|_| corrupt("saved query name"))?,
        sql: row.get("sql"),
        description: row.get("description"),
        created_at: row.get("created_at"),
        updated_at: row.get("updated_at"),
        updated_by: row.get("updated_by"),
    })
}

#[async_trait]
impl SavedQueryStore for SqliteStore {
    async fn put_saved_query(&self, query: &SavedQuery) -> Result<SavedQuery> {
        let row = sqlx::query(
            "INSERT INTO saved_queries (name, sql, description, created_at, updated_at, updated_by) \
             VALUES (?, ?, ?, ?, ?, ?) \
             ON CONFLICT (name) DO UPDATE SET sql = excluded.sql, \
             description = excluded.description, updated_at = excluded.updated_at, \
             updated_by = excluded.updated_by \
             RETURNING *",
        )
        .bind(query.name.as_str())
        .bind(&query.sql)
        .bind(&query.description)
        .bind(query.created_at)
        .bind(query.updated_at)
        .bind(&query.updated_by)
        .fetch_one(&self.pool)
        .await
        .map_err(db_error("saved query"))?;
        saved_query_from_row(&row)
    }

    async fn saved_query(&self, name: &SavedQueryName) -> Result<SavedQuery> {
        let row = sqlx::query("SELECT * FROM saved_queries WHERE name = ?")
            .bind(name.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error("saved query"))?
            .ok_or_else(|| Error::not_found("saved query"))?;
        saved_query_from_row(&row)
    }

    async fn list_saved_queries(&self) -> Result<Vec<SavedQuery>> {
        let rows = sqlx::query("SELECT * FROM saved_queries ORDER BY name")
            .fetch_all(&self.pool)
            .await
            .map_err(db_error("saved query"))?;
        rows.iter().map(saved_query_from_row).collect()
    }

    async fn delete_saved_query(&self, name: &SavedQueryName) -> Result<()> {
        let deleted = sqlx::query("DELETE FROM saved_queries WHERE name = ?")
            .bind(name.as_str())
            .execute(&self.pool)
            .await
            .map_err(db_error("saved query"))?;
        if deleted.rows_affected() == 0 {
            return Err(Error::not_found("saved query"));
        }
        Ok(())
    }
}
