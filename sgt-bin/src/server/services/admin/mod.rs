//! The admin service: what each admin API call does, with who may do it and an audit record
//! of every change. Independent of HTTP.

mod auth;
mod carves;
mod environments;
mod expiry;
mod labels;
mod nodes;
mod online;
mod queries;
mod saved_queries;
mod users;

#[cfg(test)]
mod tests;

pub use crate::server::services::config_doc::validate_config;
pub use auth::{hash_password, SESSION_SECONDS};
pub use carves::ArchiveInfo;
pub use expiry::{ExpirySweep, SERVER_ACTOR};

use std::net::IpAddr;
use std::sync::Arc;

use crate::admin_types::{Caller, Page};
use crate::server::services::rate_limit::{KeyedRateLimit, RateLimit};
use crate::server::services::serving_cache::ServingCache;
use sgt_core::error::{Error, Result};
use sgt_core::store::{AuditEntry, AuditFilter, Role};
use sgt_core::types::{now_unix, random_hex};
use sgt_core::Backends;

impl Caller {
    /// `Forbidden` unless the caller's role is at least `role`.
    ///
    /// # Errors
    /// `Forbidden` naming the role needed.
    pub fn require(&self, role: Role) -> Result<()> {
        if self.role >= role {
            Ok(())
        } else {
            Err(Error::forbidden(format!(
                "this needs the {} role",
                role.as_str()
            )))
        }
    }
}

/// Handles admin API calls against the [`Backends`].
#[derive(Debug)]
pub struct AdminService {
    backends: Backends,
    serving_cache: Option<Arc<ServingCache>>,
    login_limit_per_user: KeyedRateLimit<(String, Option<IpAddr>)>,
    login_limit_per_address: KeyedRateLimit<IpAddr>,
    /// How late a node's stored last-seen time may be, in seconds: part of the online
    /// window.
    last_seen_lag: i64,
    /// The online window when fixed by the settings, in seconds.
    fixed_online_window: Option<i64>,
    online_statuses: online::OnlineStatuses,
}

/// Login attempts allowed per user name from one source address: 10 at once, then 6 a
/// minute, whether they succeed or not; enough for people and scripts, too few to guess a
/// password. Counted per address so that someone else's failures never lock the user out.
pub const LOGIN_LIMIT_PER_USER: RateLimit = RateLimit {
    burst: 10,
    per_minute: 6,
};
/// Login attempts allowed per source address, across user names: 30 at once, then 30 a
/// minute.
pub const LOGIN_LIMIT_PER_ADDRESS: RateLimit = RateLimit {
    burst: 30,
    per_minute: 30,
};

/// A duration in whole seconds, as a time difference.
fn seconds(duration: std::time::Duration) -> i64 {
    i64::try_from(duration.as_secs()).unwrap_or(i64::MAX / 4)
}

/// How late a stored last-seen time may be when each is written every `resolution`: that,
/// plus the wait for the next write.
fn last_seen_lag(resolution: std::time::Duration) -> i64 {
    seconds(resolution) + seconds(crate::server::services::agent::LAST_SEEN_FLUSH_INTERVAL)
}

impl AdminService {
    /// A service over `backends`.
    pub fn new(backends: Backends) -> Self {
        AdminService {
            backends,
            serving_cache: None,
            login_limit_per_user: KeyedRateLimit::new(LOGIN_LIMIT_PER_USER),
            login_limit_per_address: KeyedRateLimit::new(LOGIN_LIMIT_PER_ADDRESS),
            last_seen_lag: last_seen_lag(
                crate::server::services::agent::DEFAULT_LAST_SEEN_RESOLUTION,
            ),
            fixed_online_window: None,
            online_statuses: online::OnlineStatuses::default(),
        }
    }

    /// Counts a node online for `window` after it was last seen, or when `None` for its
    /// environment's window, knowing that stored last-seen times are written every
    /// `resolution` (the agent service's `last_seen_resolution`).
    pub fn with_online_window(
        mut self,
        resolution: std::time::Duration,
        window: Option<std::time::Duration>,
    ) -> Self {
        self.last_seen_lag = last_seen_lag(resolution);
        self.fixed_online_window = window.map(seconds);
        self
    }

    /// Whether a login attempt for `username` from `source` may go ahead now. Every attempt
    /// counts, successful or not.
    pub(crate) fn admit_login(&self, username: &str, source: Option<IpAddr>) -> Result<()> {
        let refused = || Error::rate_limited("too many login attempts, retry in a minute");
        if let Some(address) = source {
            if !self.login_limit_per_address.allow(&address) {
                return Err(refused());
            }
        }
        // Bounded, case-folded, so variants of one name share an allowance.
        let user: String = username.chars().take(64).collect::<String>().to_lowercase();
        if !self.login_limit_per_user.allow(&(user, source)) {
            return Err(refused());
        }
        Ok(())
    }

    /// Makes this instance's node deletions and config changes take effect at once in the
    /// agent service owning `cache` (other instances see them within their refresh interval).
    pub fn with_serving_cache(mut self, cache: Arc<ServingCache>) -> Self {
        self.serving_cache = Some(cache);
        self
    }

    /// Tells the agent service's cache that a node is gone.
    fn forget_node(&self, id: &sgt_core::types::NodeId) {
        if let Some(cache) = &self.serving_cache {
            cache.forget_node(id);
        }
    }

    /// Tells the agent service's cache that a campaign was created or cancelled here.
    fn forget_live_queries(&self) {
        if let Some(cache) = &self.serving_cache {
            cache.invalidate_live_queries();
        }
    }

    /// `InvalidInput` unless `environment` exists: for requests that name one as a target or
    /// scope.
    async fn require_environment(
        &self,
        environment: &sgt_core::types::EnvironmentName,
    ) -> Result<()> {
        match self.backends.store.environment(environment).await {
            Err(e) if e.kind() == sgt_core::error::ErrorKind::NotFound => Err(
                Error::invalid_input(format!("unknown environment {environment}")),
            ),
            result => result.map(|_| ()),
        }
    }

    /// Tells the agent service's cache that a label was put or deleted here.
    fn forget_labels(&self) {
        if let Some(cache) = &self.serving_cache {
            cache.invalidate_labels();
        }
    }

    /// Tells the agent service's cache that an environment's config changed.
    fn forget_environment(&self, name: &sgt_core::types::EnvironmentName) {
        if let Some(cache) = &self.serving_cache {
            cache.forget_environment(name);
        }
    }

    /// Records a change. A change that happened is not undone if recording fails; the
    /// failure is logged instead, loudly.
    async fn audit(&self, caller: &Caller, action: &str, target: &str, detail: serde_json::Value) {
        self.audit_as(caller.username.as_str(), action, target, detail)
            .await;
    }

    /// [`AdminService::audit`] with `actor` as who made the change.
    async fn audit_as(&self, actor: &str, action: &str, target: &str, detail: serde_json::Value) {
        let at = now_unix();
        let millis = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        let entry = AuditEntry {
            id: format!("{millis:015}-{}", random_hex(4)),
            at,
            actor: actor.to_owned(),
            action: action.to_owned(),
            target: target.to_owned(),
            detail,
        };
        if let Err(e) = self.backends.store.append_audit(&entry).await {
            tracing::error!(error = %e, action, target, actor, "audit entry not recorded");
        }
    }

    /// The audit log entries passing `filter`, newest first, a page at a time (cursor: the
    /// last entry's id).
    ///
    /// # Errors
    /// `InvalidInput` for a cursor that is not an entry id or an oversize filter; backend
    /// errors.
    pub async fn audit_log(
        &self,
        caller: &Caller,
        filter: &AuditFilter,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<AuditEntry>> {
        caller.require(Role::Viewer)?;
        // Entry ids are `<15 digits of milliseconds>-<8 hex digits>`.
        let is_entry_id = |c: &str| {
            c.len() == 24
                && c.as_bytes()[15] == b'-'
                && c[..15].bytes().all(|b| b.is_ascii_digit())
                && c[16..].bytes().all(|b| b.is_ascii_hexdigit())
        };
        if cursor.is_some_and(|c| !is_entry_id(c)) {
            return Err(Error::invalid_input("bad cursor"));
        }
        let texts = [&filter.actor, &filter.action_prefix, &filter.target];
        if texts
            .iter()
            .any(|t| t.as_ref().is_some_and(|t| t.len() > 1024))
        {
            return Err(Error::invalid_input("audit filters are at most 1024 bytes"));
        }
        let items = self
            .backends
            .store
            .list_audit(filter, cursor, limit)
            .await?;
        Ok(Page::new(items, limit, |e| e.id.clone()))
    }
}
