//! The audit log.

use serde::{Deserialize, Serialize};

use sgt_core::store::AuditFilter;
use sgt_core::types::UnixSeconds;

/// `GET /audit?…`: filters and paging; absent filters match every entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditListParams {
    /// Only changes by this user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// Only actions starting with this (`query.`, `environment.create`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// Only changes to this target (an environment's name, a query's id, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Only changes at or after this time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<UnixSeconds>,
    /// The previous page's `next_cursor`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// Page size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
}

impl AuditListParams {
    /// The filters, empty ones dropped (`?actor=` matches everyone).
    pub fn filter(&self) -> AuditFilter {
        let given = |v: &Option<String>| v.clone().filter(|v| !v.is_empty());
        AuditFilter {
            actor: given(&self.actor),
            action_prefix: given(&self.action),
            target: given(&self.target),
            since: self.since,
        }
    }
}
