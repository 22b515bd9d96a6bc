//! The audit log and enroll-secret usage.

use async_trait::async_trait;
use sgt_core::store::*;
use sgt_core::types::*;
use sgt_core::Result;
use sqlx::Row;

use super::{db_error, json_text, parse_json, SqliteStore};

#[async_trait]
impl AuditStore for SqliteStore {
    async fn append_audit(&self, entry: &AuditEntry) -> Result<()> {
        sqlx::query(
            "INSERT INTO audit_log (id, at, actor, action, target, detail) VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(&entry.id)
        .bind(entry.at)
        .bind(&entry.actor)
        .bind(&entry.action)
        .bind(&entry.target)
        .bind(json_text(&entry.detail))
        .execute(&self.pool)
        .await
        .map_err(db_error("audit entry"))?;
        Ok(())
    }

    async fn list_audit(
        &self,
        filter: &AuditFilter,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<AuditEntry>> {
        let limit = page_size(limit);
        let rows = sqlx::query(
            "SELECT * FROM audit_log WHERE (?1 IS NULL OR id < ?1) \
             AND (?3 IS NULL OR actor = ?3) \
             AND (?4 IS NULL OR substr(action, 1, length(?4)) = ?4) \
             AND (?5 IS NULL OR target = ?5) \
             AND (?6 IS NULL OR at >= ?6) \
             ORDER BY id DESC LIMIT ?2",
        )
        .bind(before)
        .bind(limit as i64)
        .bind(filter.actor.as_deref())
        .bind(filter.action_prefix.as_deref())
        .bind(filter.target.as_deref())
        .bind(filter.since)
        .fetch_all(&self.pool)
        .await
        .map_err(db_error("audit entry"))?;
        rows.iter()
            .map(|row| {
                Ok(AuditEntry {
                    id: row.get("id"),
                    at: row.get("at"),
                    actor: row.get("actor"),
                    action: row.get("action"),
                    target: row.get("target"),
                    detail: parse_json(row.get::<&str, _>("detail"))?,
                })
            })
            .collect()
    }

    async fn record_secret_use(&self, secret_id: &str, now: UnixSeconds) -> Result<()> {
        sqlx::query(
            "INSERT INTO secret_usage (secret_id, use_count, last_used_at) VALUES (?1, 1, ?2)
             ON CONFLICT (secret_id) DO UPDATE SET use_count = use_count + 1,
                 last_used_at = MAX(last_used_at, excluded.last_used_at)",
        )
        .bind(secret_id)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(db_error("secret usage"))?;
        Ok(())
    }

    async fn secret_usage(&self) -> Result<Vec<SecretUsage>> {
        let rows = sqlx::query("SELECT * FROM secret_usage ORDER BY secret_id")
            .fetch_all(&self.pool)
            .await
            .map_err(db_error("secret usage"))?;
        Ok(rows
            .iter()
            .map(|row| SecretUsage {
                secret_id: row.get("secret_id"),
                use_count: row.get::<i64, _>("use_count") as u64,
                last_used_at: row.get("last_used_at"),
            })
            .collect())
    }
}
