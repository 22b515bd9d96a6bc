//! Saved queries: a library of named SQL that campaigns can run by name.

use super::AdminService;
use crate::admin_types::{Caller, SavedQueryBody};
use sgt_core::error::{Error, Result};
use sgt_core::store::{Role, SavedQuery};
use sgt_core::types::{now_unix, SavedQueryName};

/// Longest SQL accepted, here and in campaigns.
pub(super) const MAX_SQL_BYTES: usize = 64 * 1024;
/// Longest description accepted.
const MAX_DESCRIPTION_BYTES: usize = 4 * 1024;

fn saved_query_name(name: &str) -> Result<SavedQueryName> {
    SavedQueryName::parse(name)
}

/// The SQL trimmed, or `InvalidInput` when it is empty or too long.
pub(super) fn checked_sql(sql: &str) -> Result<String> {
    let sql = sql.trim();
    if sql.is_empty() || sql.len() > MAX_SQL_BYTES {
        return Err(Error::invalid_input(format!(
            "sql must be 1 to {MAX_SQL_BYTES} bytes"
        )));
    }
    Ok(sql.to_owned())
}

/// The description trimmed, or `InvalidInput` when it is too long or not one line.
pub(super) fn checked_description(description: &str) -> Result<String> {
    let description = description.trim();
    if description.len() > MAX_DESCRIPTION_BYTES || description.chars().any(char::is_control) {
        return Err(Error::invalid_input(format!(
            "description must be at most {MAX_DESCRIPTION_BYTES} bytes on one line"
        )));
    }
    Ok(description.to_owned())
}

impl AdminService {
    /// Every saved query, by name.
    ///
    /// # Errors
    /// Backend errors.
    pub async fn list_saved_queries(&self, caller: &Caller) -> Result<Vec<SavedQuery>> {
        caller.require(Role::Viewer)?;
        self.backends.store.list_saved_queries().await
    }

    /// One saved query.
    ///
    /// # Errors
    /// `NotFound`; `InvalidInput` for a name that cannot exist.
    pub async fn saved_query(&self, caller: &Caller, name: &str) -> Result<SavedQuery> {
        caller.require(Role::Viewer)?;
        self.backends
            .store
            .saved_query(&saved_query_name(name)?)
            .await
    }

    /// Saves a query under `name` (operators and admins), replacing one of that name.
    ///
    /// # Errors
    /// `Forbidden`; `InvalidInput` for a bad name, empty or oversize SQL, or an oversize
    /// description.
    pub async fn put_saved_query(
        &self,
        caller: &Caller,
        name: &str,
        body: SavedQueryBody,
    ) -> Result<SavedQuery> {
        caller.require(Role::Operator)?;
        let name = saved_query_name(name)?;
        let sql = checked_sql(&body.sql)?;
        let description = checked_description(&body.description)?;
        let now = now_unix();
        let saved = self
            .backends
            .store
            .put_saved_query(&SavedQuery {
                name,
                sql,
                description,
                created_at: now,
                updated_at: now,
                updated_by: caller.username.to_string(),
            })
            .await?;
        self.audit(
            caller,
            "saved_query.put",
            saved.name.as_str(),
            serde_json::json!({"sql": saved.sql, "description": saved.description}),
        )
        .await;
        Ok(saved)
    }

    /// Deletes a saved query (operators and admins). Campaigns it started are kept.
    ///
    /// # Errors
    /// `Forbidden`; `NotFound`.
    pub async fn delete_saved_query(&self, caller: &Caller, name: &str) -> Result<()> {
        caller.require(Role::Operator)?;
        let name = saved_query_name(name)?;
        self.backends.store.delete_saved_query(&name).await?;
        self.audit(
            caller,
            "saved_query.delete",
            name.as_str(),
            serde_json::Value::Null,
        )
        .await;
        Ok(())
    }
}
