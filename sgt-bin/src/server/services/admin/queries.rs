//! Live queries (campaigns): create with targets, follow per node, read results, cancel.

use super::nodes::NodePages;
use super::saved_queries::checked_sql;
use super::AdminService;
use crate::admin_types::{Caller, NewCampaign, Page, QueryView, ResultView};
use sgt_core::error::{Error, ErrorKind, Result};
use sgt_core::store::{
    DeliveryState, DistributedQuery, ListNodes, NewQuery, NodeRef, QueryTarget, QueryTargets, Role,
};
use sgt_core::types::{now_unix, NodeId, QueryId};

/// Default time a campaign stays deliverable.
const DEFAULT_EXPIRY_SECONDS: u64 = 24 * 3600;
/// Longest time a campaign stays deliverable.
const MAX_EXPIRY_SECONDS: u64 = 30 * 24 * 3600;
pub(super) const PLATFORMS: [&str; 4] = ["linux", "darwin", "windows", "freebsd"];

fn query_id(id: &str) -> Result<QueryId> {
    QueryId::parse(id).map_err(|_| Error::not_found("query"))
}

impl AdminService {
    /// Creates a campaign (operators and admins): every node its targets match now is made
    /// pending, and matching nodes that enroll before it expires get it too. Returns it with
    /// counts.
    ///
    /// # Errors
    /// `Forbidden`; `InvalidInput` for empty SQL or targets, SQL and a saved query both or an
    /// unknown saved query, an unknown platform or
    /// environment, a listed node that does not exist, or a bad expiry.
    pub async fn create_campaign(
        &self,
        caller: &Caller,
        campaign: NewCampaign,
    ) -> Result<QueryView> {
        caller.require(Role::Operator)?;
        let sql = match &campaign.saved_query {
            None => checked_sql(&campaign.sql)?,
            Some(_) if !campaign.sql.trim().is_empty() => {
                return Err(Error::invalid_input(
                    "give either sql or saved_query, not both",
                ))
            }
            Some(name) => match self.backends.store.saved_query(name).await {
                Ok(saved) => saved.sql,
                Err(e) if e.kind() == ErrorKind::NotFound => {
                    return Err(Error::invalid_input(format!("unknown saved query {name}")))
                }
                Err(e) => return Err(e),
            },
        };
        let targets = campaign.targets;
        if targets.is_empty() {
            return Err(Error::invalid_input(
                "targets must select something: all, environments, platforms, labels or node_ids",
            ));
        }
        if let Some(p) = targets
            .platforms
            .iter()
            .find(|p| !PLATFORMS.contains(&p.as_str()))
        {
            return Err(Error::invalid_input(format!(
                "unknown platform {p:?} (known: {})",
                PLATFORMS.join(", ")
            )));
        }
        for environment in &targets.environments {
            self.require_environment(environment).await?;
        }
        for label in &targets.labels {
            match self.backends.store.label(label).await {
                Err(e) if e.kind() == ErrorKind::NotFound => {
                    return Err(Error::invalid_input(format!("unknown label {label}")))
                }
                result => result.map(|_| ())?,
            }
        }
        let expires_in = campaign
            .expires_in_seconds
            .unwrap_or(DEFAULT_EXPIRY_SECONDS);
        if expires_in == 0 || expires_in > MAX_EXPIRY_SECONDS {
            return Err(Error::invalid_input(format!(
                "expires_in_seconds must be 1 to {MAX_EXPIRY_SECONDS}"
            )));
        }
        let mut node_ids = Vec::new();
        for id in &targets.node_ids {
            match self.backends.store.node_by_id(id).await {
                Ok(_) => node_ids.push(id.clone()),
                Err(e) if e.kind() == ErrorKind::NotFound => {
                    return Err(Error::invalid_input(format!("unknown node {id}")))
                }
                Err(e) => return Err(e),
            }
        }
        if targets.is_broad() {
            node_ids.extend(self.matching_nodes(&targets).await?);
        }
        node_ids.sort();
        node_ids.dedup();
        let now = now_unix();
        let query = NewQuery {
            id: QueryId::generate(),
            sql,
            targets,
            node_ids,
            created_by: caller.username.to_string(),
            created_at: now,
            expires_at: Some(now + expires_in as i64),
        };
        self.backends.store.create_query(&query).await?;
        self.forget_live_queries();
        self.audit(
            caller,
            "query.create",
            query.id.as_str(),
            serde_json::json!({
                "sql": query.sql,
                "saved_query": campaign.saved_query,
                "targets": query.targets,
                "targeted": query.node_ids.len(),
            }),
        )
        .await;
        self.campaign(caller, query.id.as_str()).await
    }

    /// Nodes a broad target matches now, found a page at a time: each label's members, or
    /// each environment's nodes, or all.
    async fn matching_nodes(&self, targets: &QueryTargets) -> Result<Vec<NodeId>> {
        let filters: Vec<ListNodes> = if !targets.labels.is_empty() {
            targets
                .labels
                .iter()
                .map(|label| ListNodes {
                    label: Some(label.clone()),
                    ..ListNodes::default()
                })
                .collect()
        } else if !targets.environments.is_empty() {
            targets
                .environments
                .iter()
                .map(|environment| ListNodes {
                    environment: Some(environment.clone()),
                    ..ListNodes::default()
                })
                .collect()
        } else {
            vec![ListNodes::default()]
        };
        let mut matched = Vec::new();
        for filter in filters {
            let mut pages = NodePages::new(&*self.backends.store, filter);
            while let Some(page) = pages.next().await? {
                matched.extend(
                    page.iter()
                        .filter(|n| targets.matches(NodeRef::of(n)))
                        .map(|n| n.id.clone()),
                );
            }
        }
        Ok(matched)
    }

    /// One campaign with counts.
    ///
    /// # Errors
    /// `NotFound`.
    pub async fn campaign(&self, caller: &Caller, id: &str) -> Result<QueryView> {
        caller.require(Role::Viewer)?;
        let id = query_id(id)?;
        let query = self.backends.store.query(&id).await?;
        let targets = self.backends.store.query_targets(&id).await?;
        let count = |state| targets.iter().filter(|t| t.state == state).count();
        let waiting: Vec<NodeId> = targets
            .iter()
            .filter(|t| matches!(t.state, DeliveryState::Pending | DeliveryState::Delivered))
            .map(|t| t.node_id.clone())
            .collect();
        let answered = targets.len() - waiting.len();
        Ok(QueryView {
            targeted: targets.len(),
            online: answered + self.count_online(&waiting).await?,
            pending: count(DeliveryState::Pending),
            delivered: count(DeliveryState::Delivered),
            succeeded: count(DeliveryState::Succeeded),
            failed: count(DeliveryState::Failed),
            query,
        })
    }

    /// Campaigns newest first (cursor: the last query id).
    ///
    /// # Errors
    /// `InvalidInput` for a malformed cursor; backend errors.
    pub async fn list_campaigns(
        &self,
        caller: &Caller,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<DistributedQuery>> {
        caller.require(Role::Viewer)?;
        let cursor = cursor
            .map(|c| QueryId::parse(c).map_err(|_| Error::invalid_input("bad cursor")))
            .transpose()?;
        let items = self
            .backends
            .store
            .list_queries(cursor.as_ref(), limit)
            .await?;
        Ok(Page::new(items, limit, |q| q.id.to_string()))
    }

    /// Every targeted node's state.
    ///
    /// # Errors
    /// `NotFound`.
    pub async fn campaign_targets(&self, caller: &Caller, id: &str) -> Result<Vec<QueryTarget>> {
        caller.require(Role::Viewer)?;
        self.backends.store.query_targets(&query_id(id)?).await
    }

    /// Answers, one page at a time (cursor: the last node id), with each node's identifier.
    ///
    /// # Errors
    /// `NotFound`.
    pub async fn campaign_results(
        &self,
        caller: &Caller,
        id: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<ResultView>> {
        caller.require(Role::Viewer)?;
        let id = query_id(id)?;
        let after = cursor
            .map(|c| NodeId::parse(c).map_err(|_| Error::invalid_input("bad cursor")))
            .transpose()?;
        let results = self
            .backends
            .store
            .query_results(&id, after.as_ref(), limit)
            .await?;
        let mut items = Vec::with_capacity(results.len());
        for r in results {
            let host_identifier = match self.backends.store.node_by_id(&r.node_id).await {
                Ok(node) => Some(node.host_identifier),
                Err(e) if e.kind() == ErrorKind::NotFound => None,
                Err(e) => return Err(e),
            };
            items.push(ResultView {
                node_id: r.node_id,
                host_identifier,
                status: r.result.status,
                rows: r.result.rows,
                message: r.result.message,
                received_at: r.result.received_at,
            });
        }
        Ok(Page::new(items, limit, |r| r.node_id.to_string()))
    }

    /// Stops delivering a campaign (operators and admins).
    ///
    /// # Errors
    /// `Forbidden`; `NotFound`.
    pub async fn cancel_campaign(&self, caller: &Caller, id: &str) -> Result<QueryView> {
        caller.require(Role::Operator)?;
        let qid = query_id(id)?;
        self.backends.store.cancel_query(&qid, now_unix()).await?;
        self.forget_live_queries();
        self.audit(
            caller,
            "query.cancel",
            qid.as_str(),
            serde_json::Value::Null,
        )
        .await;
        self.campaign(caller, id).await
    }
}
