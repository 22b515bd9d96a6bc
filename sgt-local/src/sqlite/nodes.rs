//! Nodes: the `nodes` table, and the keys re-keys and deletes revoke.

use async_trait::async_trait;
use sgt_core::store::*;
use sgt_core::types::*;
use sgt_core::{Error, Result};
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

use super::{corrupt, db_error, json_text, parse_json, SqliteStore, BACKEND};

const NODE_COLUMNS: &str = "id, node_key, environment, host_identifier, hardware_uuid, platform_type, platform, host_details, enrolled_at, last_seen, pending";

/// What a read of nodes selects: their columns and their labels (a JSON array, by name).
const NODE_SELECT: &str = "id, node_key, environment, host_identifier, hardware_uuid, platform_type, platform, host_details, enrolled_at, last_seen, pending,
    (SELECT json_group_array(label) FROM
        (SELECT label FROM node_labels WHERE node_id = nodes.id ORDER BY label)) AS labels";

fn labels_from_text(text: &str) -> Result<Vec<LabelName>> {
    let names: Vec<String> = serde_json::from_str(text).map_err(|_| corrupt("node labels"))?;
    names
        .into_iter()
        .map(|name| LabelName::parse(name).map_err(|_| corrupt("label name")))
        .collect()
}

fn node_from_row(row: &SqliteRow) -> Result<Node> {
    let mut node = listed_node_from_row(row)?;
    node.host_details = parse_json(row.get::<&str, _>("host_details"))?;
    Ok(node)
}

/// A node as [`NodeStore::list_nodes`] returns it: host details summarized, not parsed whole.
fn listed_node_from_row(row: &SqliteRow) -> Result<Node> {
    Ok(Node {
        id: NodeId::parse(row.get::<String, _>("id")).map_err(|_| corrupt("node id"))?,
        key: NodeKey::parse(row.get::<String, _>("node_key")).map_err(|_| corrupt("node key"))?,
        environment: EnvironmentName::parse(row.get::<String, _>("environment"))
            .map_err(|_| corrupt("environment"))?,
        host_identifier: HostIdentifier::parse(row.get::<String, _>("host_identifier"))
            .map_err(|_| corrupt("host identifier"))?,
        hardware_uuid: row.get("hardware_uuid"),
        platform_type: row.get("platform_type"),
        platform: row.get("platform"),
        host_details: host_details_summary(row.get::<&str, _>("host_details"))?,
        enrolled_at: row.get("enrolled_at"),
        last_seen: row.get("last_seen"),
        pending: row.get("pending"),
        // Absent from an enroll's RETURNING: read apart.
        labels: match row.try_get::<String, _>("labels") {
            Ok(text) => labels_from_text(&text)?,
            Err(sqlx::Error::ColumnNotFound(_)) => Vec::new(),
            Err(_) => return Err(corrupt("node labels")),
        },
    })
}

#[async_trait]
impl NodeStore for SqliteStore {
    async fn enroll_node(&self, node: NewNode) -> Result<Node> {
        let sql = format!(
            "INSERT INTO nodes ({NODE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT (environment, host_identifier, hardware_uuid) DO UPDATE SET
                 node_key = excluded.node_key,
                 platform_type = excluded.platform_type,
                 platform = excluded.platform,
                 host_details = excluded.host_details,
                 last_seen = MAX(nodes.last_seen, excluded.last_seen)
             RETURNING {NODE_COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(node.id.as_str())
            .bind(node.key.as_str())
            .bind(node.environment.as_str())
            .bind(node.host_identifier.as_str())
            .bind(&node.hardware_uuid)
            .bind(&node.platform_type)
            .bind(&node.platform)
            .bind(json_text(&node.host_details))
            .bind(node.now)
            .bind(node.now)
            .bind(node.pending)
            .fetch_one(&self.pool)
            .await
            .map_err(db_error("node"))?;
        let mut enrolled = node_from_row(&row)?;
        // A re-keyed node keeps its labels.
        let labels: Vec<String> =
            sqlx::query_scalar("SELECT label FROM node_labels WHERE node_id = ? ORDER BY label")
                .bind(enrolled.id.as_str())
                .fetch_all(&self.pool)
                .await
                .map_err(db_error("node"))?;
        enrolled.labels = labels
            .into_iter()
            .map(|name| LabelName::parse(name).map_err(|_| corrupt("label name")))
            .collect::<Result<_>>()?;
        Ok(enrolled)
    }

    async fn node_by_key(&self, key: &NodeKey) -> Result<Node> {
        let sql = format!("SELECT {NODE_SELECT} FROM nodes WHERE node_key = ?");
        let row = sqlx::query(&sql)
            .bind(key.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error("node"))?
            .ok_or_else(|| Error::not_found("node"))?;
        node_from_row(&row)
    }

    async fn node_by_id(&self, id: &NodeId) -> Result<Node> {
        let sql = format!("SELECT {NODE_SELECT} FROM nodes WHERE id = ?");
        let row = sqlx::query(&sql)
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error("node"))?
            .ok_or_else(|| Error::not_found("node"))?;
        node_from_row(&row)
    }

    async fn list_nodes(&self, request: &ListNodes) -> Result<Vec<Node>> {
        let limit = page_size(request.limit);
        let search = request
            .search
            .as_ref()
            .map(|s| format!("%{}%", s.to_lowercase().replace(['%', '_'], "")));
        let sql = format!(
            "SELECT {NODE_SELECT} FROM nodes
             WHERE (?1 IS NULL OR environment = ?1) AND (?2 IS NULL OR id > ?2)
               AND (?3 IS NULL OR platform = ?3)
               AND (?4 IS NULL OR lower(host_identifier) LIKE ?4
                    OR lower(json_extract(host_details, '$.system_info.hostname')) LIKE ?4)
               AND (?5 IS NULL OR last_seen >= ?5)
               AND (?7 IS NULL OR id = ?7 OR host_identifier = ?7
                    OR json_extract(host_details, '$.system_info.hostname') = ?7
                    OR (hardware_uuid != '' AND lower(hardware_uuid) = lower(?7))
                    OR json_extract(host_details, '$.system_info.hardware_serial') = ?7)
               AND (?8 IS NULL OR id IN (SELECT node_id FROM node_labels WHERE label = ?8))
               AND (?9 IS NULL OR pending = ?9)
             ORDER BY id LIMIT ?6"
        );
        let rows = sqlx::query(&sql)
            .bind(request.environment.as_ref().map(|e| e.as_str()))
            .bind(request.after.as_ref().map(|a| a.as_str()))
            .bind(request.platform.as_deref())
            .bind(search)
            .bind(request.seen_since)
            .bind(limit as i64)
            .bind(request.named.as_deref())
            .bind(request.label.as_ref().map(LabelName::as_str))
            .bind(request.pending)
            .fetch_all(&self.pool)
            .await
            .map_err(db_error("node"))?;
        rows.iter().map(listed_node_from_row).collect()
    }

    async fn nodes_by_ids(&self, ids: &[NodeId]) -> Result<Vec<Node>> {
        if ids.len() > MAX_NODES_BY_IDS {
            return Err(Error::invalid_input("too many node ids in one call"));
        }
        let ids: Vec<&str> = ids.iter().map(NodeId::as_str).collect();
        let sql = format!(
            "SELECT {NODE_SELECT} FROM nodes
             WHERE id IN (SELECT value FROM json_each(?1)) ORDER BY id"
        );
        let rows = sqlx::query(&sql)
            .bind(serde_json::to_string(&ids).map_err(|e| Error::backend("sqlite", e))?)
            .fetch_all(&self.pool)
            .await
            .map_err(db_error("node"))?;
        rows.iter().map(listed_node_from_row).collect()
    }

    async fn update_host_details(&self, id: &NodeId, details: &serde_json::Value) -> Result<()> {
        let updated = sqlx::query("UPDATE nodes SET host_details = ? WHERE id = ?")
            .bind(details.to_string())
            .bind(id.as_str())
            .execute(&self.pool)
            .await
            .map_err(db_error("node"))?;
        if updated.rows_affected() == 0 {
            return Err(Error::not_found("node"));
        }
        Ok(())
    }

    async fn approve_node(&self, id: &NodeId) -> Result<bool> {
        let approved = sqlx::query("UPDATE nodes SET pending = 0 WHERE id = ? AND pending = 1")
            .bind(id.as_str())
            .execute(&self.pool)
            .await
            .map_err(db_error("node"))?
            .rows_affected();
        if approved == 1 {
            return Ok(true);
        }
        self.node_by_id(id).await.map(|_| false)
    }

    async fn delete_node(&self, id: &NodeId) -> Result<()> {
        let mut tx = self.pool.begin().await.map_err(db_error("node"))?;
        let deleted = sqlx::query("DELETE FROM nodes WHERE id = ?")
            .bind(id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db_error("node"))?;
        if deleted.rows_affected() == 0 {
            return Err(Error::not_found("node"));
        }
        // Answers already given stay as history; deliveries not yet made are dropped.
        sqlx::query("DELETE FROM query_targets WHERE node_id = ? AND state = 'pending'")
            .bind(id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db_error("node"))?;
        tx.commit().await.map_err(db_error("node"))
    }

    async fn changed_keys_since(&self, since_ms: i64) -> Result<Vec<ChangedKey>> {
        let rows = sqlx::query(
            "SELECT node_key, revoked_at_ms FROM revoked_keys WHERE revoked_at_ms >= ?
             ORDER BY revoked_at_ms, rowid",
        )
        .bind(since_ms)
        .fetch_all(&self.pool)
        .await
        .map_err(db_error("node"))?;
        rows.iter()
            .map(|row| {
                Ok(ChangedKey {
                    key: NodeKey::parse(row.get::<String, _>("node_key"))
                        .map_err(|_| corrupt("node key"))?,
                    changed_at_ms: row.get("revoked_at_ms"),
                })
            })
            .collect()
    }

    async fn record_last_seen(&self, seen: &[(NodeId, UnixSeconds)]) -> Result<()> {
        if seen.is_empty() {
            return Ok(());
        }
        // One statement per chunk, not one per node: each statement is a round trip to
        // sqlx's worker thread, and the write lock is held until the last one.
        let mut tx = self.pool.begin().await.map_err(db_error("node"))?;
        for chunk in seen.chunks(10_000) {
            let pairs: Vec<(&str, UnixSeconds)> =
                chunk.iter().map(|(id, at)| (id.as_str(), *at)).collect();
            let pairs = serde_json::to_string(&pairs).map_err(|e| Error::backend(BACKEND, e))?;
            sqlx::query(
                "UPDATE nodes SET last_seen = MAX(nodes.last_seen, seen.at) \
                 FROM (SELECT json_extract(value, '$[0]') AS id, \
                              json_extract(value, '$[1]') AS at \
                       FROM json_each(?)) AS seen \
                 WHERE nodes.id = seen.id",
            )
            .bind(pairs)
            .execute(&mut *tx)
            .await
            .map_err(db_error("node"))?;
        }
        tx.commit().await.map_err(db_error("node"))
    }
}
