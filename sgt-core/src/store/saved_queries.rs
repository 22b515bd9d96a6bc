use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::types::{SavedQueryName, UnixSeconds};

/// A query kept by name for reuse, e.g. a team's vetted questions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedQuery {
    /// Its name, unique.
    pub name: SavedQueryName,
    /// The SQL.
    pub sql: String,
    /// What it answers, for people (may be empty).
    pub description: String,
    /// When it was first saved.
    pub created_at: UnixSeconds,
    /// When it was last saved.
    pub updated_at: UnixSeconds,
    /// Who saved it last.
    pub updated_by: String,
}

/// Saved queries.
///
/// # Contract
/// - Names are unique. `put_saved_query` creates the query or replaces the one of that name
///   whole, atomically, except `created_at`, which stays the first put's.
/// - `list_saved_queries` returns every saved query ordered by name.
///
/// # Errors
/// `NotFound` for an unknown name (reading or deleting); `Unavailable` / `Backend` for
/// backend failures.
#[async_trait]
pub trait SavedQueryStore: Send + Sync + std::fmt::Debug + 'static {
    /// Creates or replaces `query`; returns it as stored.
    async fn put_saved_query(&self, query: &SavedQuery) -> Result<SavedQuery>;

    /// The saved query called `name`.
    async fn saved_query(&self, name: &SavedQueryName) -> Result<SavedQuery>;

    /// Every saved query, ordered by name.
    async fn list_saved_queries(&self) -> Result<Vec<SavedQuery>>;

    /// Deletes the saved query called `name`.
    async fn delete_saved_query(&self, name: &SavedQueryName) -> Result<()>;
}
