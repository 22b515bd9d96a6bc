//! The store in one SQLite file, through sqlx: WAL journal, embedded migrations.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sgt_core::{Error, Result};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;

mod audit;
mod carves;
mod environments;
mod labels;
mod nodes;
mod queries;
mod saved_queries;
mod users;

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
