//! Labels: the `labels` table, and memberships in `node_labels` (which triggers list in
//! `revoked_keys`, so caches re-read the node).

use async_trait::async_trait;
use sgt_core::store::{Label, LabelStore};
use sgt_core::types::{EnvironmentName, LabelName, NodeId};
use sgt_core::{Error, Result};
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

use super::{corrupt, db_error, SqliteStore};

fn label_from_row(row: &SqliteRow) -> Result<Label> {
    Ok(Label {
        name: LabelName::parse(row.get::<String, _>("name")).map_err(|_| corrupt("label name"))?,
        environment: row
            .get::<Option<String>, _>("environment")
            .map(EnvironmentName::parse)
            .transpose()
            .map_err(|_| corrupt("label environment"))?,
        query: row.get("query"),
        platform: row.get("platform"),
        description: row.get("description"),
        created_at: row.get("created_at"),
        updated_at: row.get("updated_at"),
        updated_by: row.get("updated_by"),
    })
}

/// Whether `error` is a constraint's refusal (here: a foreign key naming no row).
fn is_constraint_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(e) if e.is_foreign_key_violation() || e.code().as_deref() == Some("787"))
}

#[async_trait]
impl LabelStore for SqliteStore {
    async fn put_label(&self, label: &Label) -> Result<Label> {
        let row = sqlx::query(
            "INSERT INTO labels (name, environment, query, platform, description, created_at, \
                                 updated_at, updated_by) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT (name) DO UPDATE SET environment = excluded.environment, \
             query = excluded.query, platform = excluded.platform, \
             description = excluded.description, updated_at = excluded.updated_at, \
             updated_by = excluded.updated_by \
             RETURNING *",
        )
        .bind(label.name.as_str())
        .bind(label.environment.as_ref().map(EnvironmentName::as_str))
        .bind(label.query.as_deref())
        .bind(label.platform.as_deref())
        .bind(&label.description)
        .bind(label.created_at)
        .bind(label.updated_at)
        .bind(&label.updated_by)
        .fetch_one(&self.pool)
        .await
        .map_err(db_error("label"))?;
        label_from_row(&row)
    }

    async fn label(&self, name: &LabelName) -> Result<Label> {
        let row = sqlx::query("SELECT * FROM labels WHERE name = ?")
            .bind(name.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error("label"))?
            .ok_or_else(|| Error::not_found("label"))?;
        label_from_row(&row)
    }

    async fn list_labels(&self) -> Result<Vec<Label>> {
        let rows = sqlx::query("SELECT * FROM labels ORDER BY name")
            .fetch_all(&self.pool)
            .await
            .map_err(db_error("label"))?;
        rows.iter().map(label_from_row).collect()
    }

    async fn delete_label(&self, name: &LabelName) -> Result<()> {
        // Memberships go by cascade, each listing its node's key as changed.
        let deleted = sqlx::query("DELETE FROM labels WHERE name = ?")
            .bind(name.as_str())
            .execute(&self.pool)
            .await
            .map_err(db_error("label"))?;
        if deleted.rows_affected() == 0 {
            return Err(Error::not_found("label"));
        }
        Ok(())
    }

    async fn set_label_member(
        &self,
        label: &LabelName,
        node: &NodeId,
        member: bool,
    ) -> Result<bool> {
        // One statement each way, so the write lock is taken (and waited for) at once; a
        // read first, in a transaction, could not be upgraded while another write commits.
        let sql = if member {
            "INSERT INTO node_labels (label, node_id) VALUES (?, ?) ON CONFLICT DO NOTHING"
        } else {
            "DELETE FROM node_labels WHERE label = ? AND node_id = ?"
        };
        let written = sqlx::query(sql)
            .bind(label.as_str())
            .bind(node.as_str())
            .execute(&self.pool)
            .await;
        let changed = match written {
            Ok(done) => done.rows_affected() > 0,
            // A foreign key naming a label or node that does not exist: which one, below.
            Err(e) if !member || !is_constraint_violation(&e) => return Err(db_error("label")(e)),
            Err(_) => false,
        };
        if !changed {
            let found: (i64, i64) = sqlx::query_as(
                "SELECT (SELECT COUNT(*) FROM labels WHERE name = ?1),
                        (SELECT COUNT(*) FROM nodes WHERE id = ?2)",
            )
            .bind(label.as_str())
            .bind(node.as_str())
            .fetch_one(&self.pool)
            .await
            .map_err(db_error("label"))?;
            match found {
                (0, _) => return Err(Error::not_found("label")),
                (_, 0) => return Err(Error::not_found("node")),
                _ => {}
            }
        }
        Ok(changed)
    }
}
