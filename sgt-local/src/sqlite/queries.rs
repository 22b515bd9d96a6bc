//! Live queries, their per-node deliveries and answers.

use async_trait::async_trait;
use sgt_core::store::*;
use sgt_core::types::*;
use sgt_core::{Error, Result};
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

use super::{corrupt, db_error, json_text, parse_json, SqliteStore, BACKEND};

const QUERY_COLUMNS: &str = "id, sql, targets, created_by, created_at, expires_at, cancelled_at";

fn query_from_row(row: &SqliteRow) -> Result<DistributedQuery> {
    Ok(DistributedQuery {
        id: QueryId::parse(row.get::<String, _>("id")).map_err(|_| corrupt("query id"))?,
        sql: row.get("sql"),
        targets: serde_json::from_str(row.get::<&str, _>("targets"))
            .map_err(|_| corrupt("query targets"))?,
        created_by: row.get("created_by"),
        created_at: row.get("created_at"),
        expires_at: row.get("expires_at"),
        cancelled_at: row.get("cancelled_at"),
    })
}

#[async_trait]
impl QueryStore for SqliteStore {
    async fn create_query(&self, query: &NewQuery) -> Result<()> {
        let targets =
            serde_json::to_string(&query.targets).map_err(|e| Error::backend(BACKEND, e))?;
        let mut tx = self.pool.begin().await.map_err(db_error("query"))?;
        sqlx::query(
            "INSERT INTO queries (id, sql, targets, broad, created_by, created_at, expires_at)
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(query.id.as_str())
        .bind(&query.sql)
        .bind(targets)
        .bind(query.targets.is_broad())
        .bind(&query.created_by)
        .bind(query.created_at)
        .bind(query.expires_at)
        .execute(&mut *tx)
        .await
        .map_err(db_error("query"))?;
        for node in &query.node_ids {
            sqlx::query(
                "INSERT OR IGNORE INTO query_targets (query_id, node_id, state, updated_at) VALUES (?, ?, 'pending', ?)",
            )
            .bind(query.id.as_str())
            .bind(node.as_str())
            .bind(query.created_at)
            .execute(&mut *tx)
            .await
            .map_err(db_error("query"))?;
        }
        tx.commit().await.map_err(db_error("query"))
    }

    async fn query(&self, id: &QueryId) -> Result<DistributedQuery> {
        let sql = format!("SELECT {QUERY_COLUMNS} FROM queries WHERE id = ?");
        let row = sqlx::query(&sql)
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error("query"))?
            .ok_or_else(|| Error::not_found("query"))?;
        query_from_row(&row)
    }

    async fn list_queries(
        &self,
        before: Option<&QueryId>,
        limit: usize,
    ) -> Result<Vec<DistributedQuery>> {
        let limit = page_size(limit);
        let sql = format!(
            "SELECT {QUERY_COLUMNS} FROM queries
             WHERE ?1 IS NULL OR (created_at, id) < (SELECT created_at, id FROM queries WHERE id = ?1)
             ORDER BY created_at DESC, id DESC LIMIT ?2"
        );
        let rows = sqlx::query(&sql)
            .bind(before.map(|b| b.as_str()))
            .bind(limit as i64)
            .fetch_all(&self.pool)
            .await
            .map_err(db_error("query"))?;
        rows.iter().map(query_from_row).collect()
    }

    async fn cancel_query(&self, id: &QueryId, now: UnixSeconds) -> Result<()> {
        let updated =
            sqlx::query("UPDATE queries SET cancelled_at = COALESCE(cancelled_at, ?) WHERE id = ?")
                .bind(now)
                .bind(id.as_str())
                .execute(&self.pool)
                .await
                .map_err(db_error("query"))?;
        if updated.rows_affected() == 0 {
            return Err(Error::not_found("query"));
        }
        Ok(())
    }

    async fn take_pending_queries(
        &self,
        node: NodeRef<'_>,
        now: UnixSeconds,
    ) -> Result<Vec<PendingQuery>> {
        // Broad live queries this node has no entry for yet (it enrolled after they were made).
        let broad = sqlx::query(
            "SELECT id, targets FROM queries
             WHERE broad = 1 AND cancelled_at IS NULL AND (expires_at IS NULL OR expires_at > ?1)
               AND NOT EXISTS (SELECT 1 FROM query_targets t WHERE t.query_id = queries.id AND t.node_id = ?2)",
        )
        .bind(now)
        .bind(node.id.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(db_error("query"))?;
        for row in &broad {
            let targets: QueryTargets = serde_json::from_str(row.get::<&str, _>("targets"))
                .map_err(|_| corrupt("query targets"))?;
            if targets.matches(node) {
                sqlx::query(
                    "INSERT OR IGNORE INTO query_targets (query_id, node_id, state, updated_at) VALUES (?, ?, 'pending', ?)",
                )
                .bind(row.get::<&str, _>("id"))
                .bind(node.id.as_str())
                .bind(now)
                .execute(&self.pool)
                .await
                .map_err(db_error("query"))?;
            }
        }
        // One statement: concurrent readers cannot both take the same delivery.
        let rows = sqlx::query(
            "UPDATE query_targets SET state = 'delivered', updated_at = ?1
             WHERE node_id = ?2 AND state = 'pending'
               AND query_id IN (SELECT id FROM queries WHERE cancelled_at IS NULL
                                AND (expires_at IS NULL OR expires_at > ?1))
             RETURNING query_id, (SELECT sql FROM queries WHERE queries.id = query_id) AS sql",
        )
        .bind(now)
        .bind(node.id.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(db_error("query"))?;
        let mut pending = rows
            .iter()
            .map(|row| {
                Ok(PendingQuery {
                    id: QueryId::parse(row.get::<String, _>("query_id"))
                        .map_err(|_| corrupt("query id"))?,
                    sql: row.get("sql"),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        pending.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(pending)
    }

    async fn live_queries(&self, now: UnixSeconds) -> Result<Vec<DistributedQuery>> {
        let sql = format!(
            "SELECT {QUERY_COLUMNS} FROM queries
             WHERE cancelled_at IS NULL AND (expires_at IS NULL OR expires_at > ?)
             ORDER BY id"
        );
        let rows = sqlx::query(&sql)
            .bind(now)
            .fetch_all(&self.pool)
            .await
            .map_err(db_error("query"))?;
        rows.iter().map(query_from_row).collect()
    }

    async fn record_result(&self, node: &NodeId, result: &QueryResult) -> Result<()> {
        let state = if result.status == 0 {
            DeliveryState::Succeeded
        } else {
            DeliveryState::Failed
        };
        let rows = serde_json::to_string(&result.rows).map_err(|e| Error::backend(BACKEND, e))?;
        let updated = sqlx::query(
            "UPDATE query_targets
             SET state = ?, updated_at = ?, status = ?, rows = ?, message = ?, stats = ?, received_at = ?
             WHERE query_id = ? AND node_id = ?",
        )
        .bind(state.as_str())
        .bind(result.received_at)
        .bind(result.status)
        .bind(rows)
        .bind(&result.message)
        .bind(result.stats.as_ref().map(json_text))
        .bind(result.received_at)
        .bind(result.query_id.as_str())
        .bind(node.as_str())
        .execute(&self.pool)
        .await
        .map_err(db_error("query"))?;
        if updated.rows_affected() == 0 {
            return Err(Error::not_found("query target"));
        }
        Ok(())
    }

    async fn query_targets(&self, id: &QueryId) -> Result<Vec<QueryTarget>> {
        self.query(id).await?;
        let rows = sqlx::query(
            "SELECT node_id, state, updated_at, message FROM query_targets WHERE query_id = ? ORDER BY node_id",
        )
        .bind(id.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(db_error("query"))?;
        rows.iter()
            .map(|row| {
                let state = DeliveryState::parse(row.get::<&str, _>("state"))
                    .ok_or_else(|| corrupt("delivery state"))?;
                Ok(QueryTarget {
                    node_id: NodeId::parse(row.get::<String, _>("node_id"))
                        .map_err(|_| corrupt("node id"))?,
                    state,
                    updated_at: row.get("updated_at"),
                    message: if state == DeliveryState::Failed {
                        row.get("message")
                    } else {
                        None
                    },
                })
            })
            .collect()
    }

    async fn query_results(
        &self,
        id: &QueryId,
        after: Option<&NodeId>,
        limit: usize,
    ) -> Result<Vec<NodeQueryResult>> {
        self.query(id).await?;
        let limit = page_size(limit);
        let rows = sqlx::query(
            "SELECT node_id, status, rows, message, stats, received_at FROM query_targets
             WHERE query_id = ?1 AND status IS NOT NULL AND (?2 IS NULL OR node_id > ?2)
             ORDER BY node_id LIMIT ?3",
        )
        .bind(id.as_str())
        .bind(after.map(|a| a.as_str()))
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(db_error("query"))?;
        rows.iter()
            .map(|row| {
                let rows: Vec<serde_json::Value> = serde_json::from_str(row.get::<&str, _>("rows"))
                    .map_err(|e| Error::backend(BACKEND, e))?;
                Ok(NodeQueryResult {
                    node_id: NodeId::parse(row.get::<String, _>("node_id"))
                        .map_err(|_| corrupt("node id"))?,
                    result: QueryResult {
                        query_id: id.clone(),
                        status: row.get("status"),
                        rows,
                        message: row.get("message"),
                        stats: row
                            .get::<Option<&str>, _>("stats")
                            .map(parse_json)
                            .transpose()?,
                        received_at: row.get("received_at"),
                    },
                })
            })
            .collect()
    }
}
