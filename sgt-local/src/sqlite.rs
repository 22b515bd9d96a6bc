//! The store in one SQLite file, through sqlx: WAL journal, embedded migrations.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sgt_core::store::*;
use sgt_core::types::*;
use sgt_core::{Error, Result};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Row, SqlitePool};

const BACKEND: &str = "sqlite";

/// The store in a single SQLite database file.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

/// sqlx's error to the core error, by meaning; `what` names the row in `NotFound` and
/// `AlreadyExists` errors.
fn db_error(what: &'static str) -> impl Fn(sqlx::Error) -> Error {
    move |e| match &e {
        sqlx::Error::RowNotFound => Error::not_found(what),
        sqlx::Error::PoolTimedOut => Error::unavailable("sqlite pool timed out"),
        sqlx::Error::Database(db) => {
            if db.is_unique_violation() {
                return Error::already_exists(what);
            }
            // SQLITE_BUSY (5) and SQLITE_LOCKED (6), with their extended codes.
            let code: i64 = db.code().and_then(|c| c.parse().ok()).unwrap_or(0);
            if matches!(code & 0xff, 5 | 6) {
                Error::unavailable("sqlite database is busy")
            } else {
                Error::backend(BACKEND, e)
            }
        }
        _ => Error::backend(BACKEND, e),
    }
}

fn json_text(value: &serde_json::Value) -> String {
    value.to_string()
}

fn parse_json(text: &str) -> Result<serde_json::Value> {
    serde_json::from_str(text).map_err(|e| Error::backend(BACKEND, e))
}

fn corrupt(what: &str) -> Error {
    Error::backend(BACKEND, format!("stored {what} is invalid"))
}

impl SqliteStore {
    /// Opens (creating if missing) the database file at `path` and applies migrations.
    ///
    /// # Errors
    /// `Backend` when the file cannot be opened or migrated.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self> {
        if let Some(dir) = path.as_ref().parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::backend(BACKEND, e))?;
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: an answer that promises durability (an enroll's node key, a carve's
            // completion, a config change) must survive power loss; NORMAL in WAL mode can
            // roll back the last commits.
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        Self::connect(options, 4).await
    }

    /// A private in-memory database, for tests.
    ///
    /// # Errors
    /// `Backend` when SQLite cannot start.
    pub async fn in_memory() -> Result<Self> {
        let options = SqliteConnectOptions::from_str("sqlite::memory:")
            .map_err(db_error("database"))?
            .foreign_keys(true);
        // One connection: every connection to :memory: is a separate database.
        Self::connect(options, 1).await
    }

    async fn connect(options: SqliteConnectOptions, connections: u32) -> Result<Self> {
        let pool = SqlitePoolOptions::new()
            .max_connections(connections)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await
            .map_err(db_error("database"))?;
        sqlx::migrate!("./migrations")
            .run(&pool)
            .await
            .map_err(|e| Error::backend(BACKEND, e))?;
        Ok(SqliteStore { pool })
    }
}

const NODE_COLUMNS: &str = "id, node_key, environment, host_identifier, hardware_uuid, platform_type, platform, host_details, enrolled_at, last_seen";

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
    })
}

#[async_trait]
impl NodeStore for SqliteStore {
    async fn enroll_node(&self, node: NewNode) -> Result<Node> {
        let sql = format!(
            "INSERT INTO nodes ({NODE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
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
            .fetch_one(&self.pool)
            .await
            .map_err(db_error("node"))?;
        node_from_row(&row)
    }

    async fn node_by_key(&self, key: &NodeKey) -> Result<Node> {
        let sql = format!("SELECT {NODE_COLUMNS} FROM nodes WHERE node_key = ?");
        let row = sqlx::query(&sql)
            .bind(key.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error("node"))?
            .ok_or_else(|| Error::not_found("node"))?;
        node_from_row(&row)
    }

    async fn node_by_id(&self, id: &NodeId) -> Result<Node> {
        let sql = format!("SELECT {NODE_COLUMNS} FROM nodes WHERE id = ?");
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
            "SELECT {NODE_COLUMNS} FROM nodes
             WHERE (?1 IS NULL OR environment = ?1) AND (?2 IS NULL OR id > ?2)
               AND (?3 IS NULL OR platform = ?3)
               AND (?4 IS NULL OR lower(host_identifier) LIKE ?4
                    OR lower(json_extract(host_details, '$.system_info.hostname')) LIKE ?4)
               AND (?5 IS NULL OR last_seen >= ?5)
             ORDER BY id LIMIT ?6"
        );
        let rows = sqlx::query(&sql)
            .bind(request.environment.as_ref().map(|e| e.as_str()))
            .bind(request.after.as_ref().map(|a| a.as_str()))
            .bind(request.platform.as_deref())
            .bind(search)
            .bind(request.seen_since)
            .bind(limit as i64)
            .fetch_all(&self.pool)
            .await
            .map_err(db_error("node"))?;
        rows.iter().map(listed_node_from_row).collect()
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

    async fn revoked_keys_since(&self, since_ms: i64) -> Result<Vec<RevokedKey>> {
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
                Ok(RevokedKey {
                    key: NodeKey::parse(row.get::<String, _>("node_key"))
                        .map_err(|_| corrupt("node key"))?,
                    revoked_at_ms: row.get("revoked_at_ms"),
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

/// A config version as SQLite stores it.
fn sql_version(version: u64) -> Result<i64> {
    i64::try_from(version).map_err(|_| Error::invalid_input("config version out of range"))
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
    })
}

#[async_trait]
impl EnvironmentStore for SqliteStore {
    async fn create_environment(&self, environment: &Environment) -> Result<()> {
        sqlx::query(
            "INSERT INTO environments (name, config, created_at, config_updated_at, config_version) \
             VALUES (?, ?, ?, ?, ?)",
        )
        .bind(environment.name.as_str())
        .bind(json_text(&environment.config))
        .bind(environment.created_at)
        .bind(environment.config_updated_at)
        .bind(sql_version(environment.config_version)?)
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
                Err(Error::conflict(
                    "the config was changed since it was read; read it again",
                ))
            }
        }
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
            if targets.matches(node.id, node.environment, node.platform) {
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

/// The refusal of a change that would leave no admin.
fn last_admin() -> Error {
    Error::conflict("the last admin cannot be removed or demoted")
}

fn user_from_row(row: &SqliteRow) -> Result<User> {
    Ok(User {
        id: row.get("id"),
        username: Username::parse(row.get::<String, _>("username"))
            .map_err(|_| corrupt("user name"))?,
        role: Role::parse(row.get::<&str, _>("role")).ok_or_else(|| corrupt("role"))?,
        password_hash: row.get("password_hash"),
        created_at: row.get("created_at"),
    })
}

fn token_from_row(row: &SqliteRow) -> Result<ApiToken> {
    Ok(ApiToken {
        id: row.get("id"),
        username: Username::parse(row.get::<String, _>("username"))
            .map_err(|_| corrupt("user name"))?,
        user_id: row.get("user_id"),
        kind: TokenKind::parse(row.get::<&str, _>("kind")).ok_or_else(|| corrupt("token kind"))?,
        name: row.get("name"),
        token_hash: row.get("token_hash"),
        created_at: row.get("created_at"),
        expires_at: row.get("expires_at"),
    })
}

#[async_trait]
impl UserStore for SqliteStore {
    async fn create_user(&self, user: &User) -> Result<()> {
        sqlx::query(
            "INSERT INTO users (username, role, password_hash, created_at, id) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(user.username.as_str())
        .bind(user.role.as_str())
        .bind(&user.password_hash)
        .bind(user.created_at)
        .bind(&user.id)
        .execute(&self.pool)
        .await
        .map_err(db_error("user"))?;
        Ok(())
    }

    async fn user(&self, username: &Username) -> Result<User> {
        let row = sqlx::query("SELECT * FROM users WHERE username = ?")
            .bind(username.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error("user"))?
            .ok_or_else(|| Error::not_found("user"))?;
        user_from_row(&row)
    }

    async fn list_users(&self) -> Result<Vec<User>> {
        let rows = sqlx::query("SELECT * FROM users ORDER BY username")
            .fetch_all(&self.pool)
            .await
            .map_err(db_error("user"))?;
        rows.iter().map(user_from_row).collect()
    }

    async fn update_user(&self, user: &User) -> Result<()> {
        // One statement, so the last-admin check and the write are atomic (SQLite takes the
        // write lock before the statement reads).
        let updated = sqlx::query(
            "UPDATE users SET role = ?1, password_hash = ?2 \
             WHERE username = ?3 AND id = ?4 \
             AND (?1 = 'admin' OR role != 'admin' \
                  OR EXISTS (SELECT 1 FROM users WHERE role = 'admin' AND username != ?3))",
        )
        .bind(user.role.as_str())
        .bind(&user.password_hash)
        .bind(user.username.as_str())
        .bind(&user.id)
        .execute(&self.pool)
        .await
        .map_err(db_error("user"))?;
        if updated.rows_affected() == 0 {
            let stored = self.user(&user.username).await?;
            if stored.id != user.id {
                return Err(Error::not_found("user"));
            }
            return Err(last_admin());
        }
        Ok(())
    }

    async fn delete_user(&self, username: &Username) -> Result<()> {
        let deleted = sqlx::query(
            "DELETE FROM users WHERE username = ?1 \
             AND (role != 'admin' \
                  OR EXISTS (SELECT 1 FROM users WHERE role = 'admin' AND username != ?1))",
        )
        .bind(username.as_str())
        .execute(&self.pool)
        .await
        .map_err(db_error("user"))?;
        if deleted.rows_affected() == 0 {
            self.user(username).await?;
            return Err(last_admin());
        }
        Ok(())
    }

    async fn create_token(&self, token: &ApiToken) -> Result<()> {
        sqlx::query(
            "INSERT INTO tokens (id, username, kind, name, token_hash, created_at, expires_at, user_id)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&token.id)
        .bind(token.username.as_str())
        .bind(token.kind.as_str())
        .bind(&token.name)
        .bind(&token.token_hash)
        .bind(token.created_at)
        .bind(token.expires_at)
        .bind(&token.user_id)
        .execute(&self.pool)
        .await
        .map_err(db_error("token"))?;
        Ok(())
    }

    async fn token_by_hash(&self, token_hash: &str) -> Result<ApiToken> {
        let row = sqlx::query("SELECT * FROM tokens WHERE token_hash = ?")
            .bind(token_hash)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error("token"))?
            .ok_or_else(|| Error::not_found("token"))?;
        token_from_row(&row)
    }

    async fn list_tokens(&self, username: Option<&Username>) -> Result<Vec<ApiToken>> {
        let rows = sqlx::query(
            "SELECT * FROM tokens WHERE ?1 IS NULL OR username = ?1 ORDER BY created_at, id",
        )
        .bind(username.map(|u| u.as_str()))
        .fetch_all(&self.pool)
        .await
        .map_err(db_error("token"))?;
        rows.iter().map(token_from_row).collect()
    }

    async fn delete_token(&self, id: &str) -> Result<()> {
        let deleted = sqlx::query("DELETE FROM tokens WHERE id = ?")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(db_error("token"))?;
        if deleted.rows_affected() == 0 {
            return Err(Error::not_found("token"));
        }
        Ok(())
    }
}

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

    async fn list_audit(&self, before: Option<&str>, limit: usize) -> Result<Vec<AuditEntry>> {
        let limit = page_size(limit);
        let rows = sqlx::query(
            "SELECT * FROM audit_log WHERE ?1 IS NULL OR id < ?1 ORDER BY id DESC LIMIT ?2",
        )
        .bind(before)
        .bind(limit as i64)
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
