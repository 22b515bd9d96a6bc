//! Carve sessions and the blocks received.

use async_trait::async_trait;
use sgt_core::store::*;
use sgt_core::types::*;
use sgt_core::{Error, Result};
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

use super::{corrupt, db_error, SqliteStore};

const CARVE_COLUMNS: &str = "session_id, node_id, carve_guid, request_id, block_count, block_size, carve_size, created_at, status, sha256, finished_at,
    (SELECT COUNT(*) FROM carve_blocks WHERE carve_blocks.session_id = carves.session_id) AS blocks_received";

fn carve_from_row(row: &SqliteRow) -> Result<CarveSession> {
    Ok(CarveSession {
        carve: NewCarve {
            session_id: CarveSessionId::parse(row.get::<String, _>("session_id"))
                .map_err(|_| corrupt("carve session id"))?,
            node_id: NodeId::parse(row.get::<String, _>("node_id"))
                .map_err(|_| corrupt("node id"))?,
            carve_guid: row.get("carve_guid"),
            request_id: row.get("request_id"),
            block_count: row.get::<i64, _>("block_count") as u64,
            block_size: row.get::<i64, _>("block_size") as u64,
            carve_size: row.get::<i64, _>("carve_size") as u64,
            created_at: row.get("created_at"),
        },
        status: CarveStatus::parse(row.get::<&str, _>("status"))
            .ok_or_else(|| corrupt("carve status"))?,
        blocks_received: row.get::<i64, _>("blocks_received") as u64,
        sha256: row.get("sha256"),
        finished_at: row.get("finished_at"),
    })
}

#[async_trait]
impl CarveStore for SqliteStore {
    async fn create_carve(&self, carve: &NewCarve) -> Result<()> {
        sqlx::query(
            "INSERT INTO carves (session_id, node_id, carve_guid, request_id, block_count, block_size, carve_size, created_at, status)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'receiving')",
        )
        .bind(carve.session_id.as_str())
        .bind(carve.node_id.as_str())
        .bind(&carve.carve_guid)
        .bind(&carve.request_id)
        .bind(carve.block_count as i64)
        .bind(carve.block_size as i64)
        .bind(carve.carve_size as i64)
        .bind(carve.created_at)
        .execute(&self.pool)
        .await
        .map_err(db_error("carve session"))?;
        Ok(())
    }

    async fn carve(&self, id: &CarveSessionId) -> Result<CarveSession> {
        let sql = format!("SELECT {CARVE_COLUMNS} FROM carves WHERE session_id = ?");
        let row = sqlx::query(&sql)
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error("carve session"))?
            .ok_or_else(|| Error::not_found("carve session"))?;
        carve_from_row(&row)
    }

    async fn record_carve_block(
        &self,
        id: &CarveSessionId,
        block_id: u64,
    ) -> Result<BlockRecorded> {
        let mut tx = self.pool.begin().await.map_err(db_error("carve session"))?;
        let inserted = sqlx::query(
            "INSERT OR IGNORE INTO carve_blocks (session_id, block_id)
             SELECT session_id, ? FROM carves WHERE session_id = ?",
        )
        .bind(block_id as i64)
        .bind(id.as_str())
        .execute(&mut *tx)
        .await
        .map_err(db_error("carve session"))?;
        let row = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM carves WHERE session_id = ?1) AS sessions,
                    (SELECT COUNT(*) FROM carve_blocks WHERE session_id = ?1) AS blocks",
        )
        .bind(id.as_str())
        .fetch_one(&mut *tx)
        .await
        .map_err(db_error("carve session"))?;
        tx.commit().await.map_err(db_error("carve session"))?;
        if row.get::<i64, _>("sessions") == 0 {
            return Err(Error::not_found("carve session"));
        }
        Ok(BlockRecorded {
            newly_recorded: inserted.rows_affected() == 1,
            blocks_received: row.get::<i64, _>("blocks") as u64,
        })
    }

    async fn finish_carve(
        &self,
        id: &CarveSessionId,
        status: CarveStatus,
        sha256: Option<&str>,
        now: UnixSeconds,
    ) -> Result<()> {
        let updated = sqlx::query(
            "UPDATE carves SET status = ?, sha256 = ?, finished_at = ? WHERE session_id = ?",
        )
        .bind(status.as_str())
        .bind(sha256)
        .bind(now)
        .bind(id.as_str())
        .execute(&self.pool)
        .await
        .map_err(db_error("carve session"))?;
        if updated.rows_affected() == 0 {
            return Err(Error::not_found("carve session"));
        }
        Ok(())
    }

    async fn list_carves(&self, node: Option<&NodeId>) -> Result<Vec<CarveSession>> {
        let sql = format!(
            "SELECT {CARVE_COLUMNS} FROM carves WHERE (?1 IS NULL OR node_id = ?1)
             ORDER BY created_at DESC, session_id"
        );
        let rows = sqlx::query(&sql)
            .bind(node.map(|n| n.as_str()))
            .fetch_all(&self.pool)
            .await
            .map_err(db_error("carve session"))?;
        rows.iter().map(carve_from_row).collect()
    }
}
