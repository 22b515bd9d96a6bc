use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::types::UnixSeconds;

/// One change made through the admin API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Sortable by time: `<unix millis, 15 digits>-<random>`.
    pub id: String,
    /// When.
    pub at: UnixSeconds,
    /// Who: the user name.
    pub actor: String,
    /// What, e.g. `environment.create`.
    pub action: String,
    /// On what, e.g. the environment's name.
    pub target: String,
    /// Details (never secrets).
    pub detail: serde_json::Value,
}

/// Which audit entries a listing returns; every field given must match.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditFilter {
    /// Made by this user.
    pub actor: Option<String>,
    /// Whose action starts with this, e.g. `query.` or `environment.create`.
    pub action_prefix: Option<String>,
    /// On this target.
    pub target: Option<String>,
    /// At or after this time.
    pub since: Option<UnixSeconds>,
}

impl AuditFilter {
    /// Whether `entry` passes.
    pub fn matches(&self, entry: &AuditEntry) -> bool {
        self.actor.as_ref().is_none_or(|a| *a == entry.actor)
            && self
                .action_prefix
                .as_ref()
                .is_none_or(|p| entry.action.starts_with(p.as_str()))
            && self.target.as_ref().is_none_or(|t| *t == entry.target)
            && self.since.is_none_or(|since| entry.at >= since)
    }
}

/// How often and when an enroll secret last enrolled a host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretUsage {
    /// The secret's id.
    pub secret_id: String,
    /// Enrolls made with it.
    pub use_count: u64,
    /// The last one.
    pub last_used_at: UnixSeconds,
}

/// The audit log, and the enroll-secret usage record.
///
/// # Contract
/// - Entries are never changed or deleted through this trait.
/// - Usage counts every `record_secret_use` call.
///
/// # Errors
/// `AlreadyExists` for a duplicate entry id; `Unavailable` / `Backend` for backend failures.
#[async_trait]
pub trait AuditStore: Send + Sync + std::fmt::Debug + 'static {
    /// Appends an entry.
    async fn append_audit(&self, entry: &AuditEntry) -> Result<()>;

    /// Entries newest first that pass `filter`: those with ids before `before` (the previous
    /// page's cursor), at most `limit` (0: 100).
    async fn list_audit(
        &self,
        filter: &AuditFilter,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<AuditEntry>>;

    /// Counts one enroll made with secret `secret_id` at `now`.
    async fn record_secret_use(&self, secret_id: &str, now: UnixSeconds) -> Result<()>;

    /// Usage of every secret used at least once.
    async fn secret_usage(&self) -> Result<Vec<SecretUsage>>;
}
