//! Detail queries: every `detail_interval`, spread over the fleet by node id, a node's
//! distributed read also carries queries for its osquery version, system, OS and network
//! addresses; their answers replace those parts of the node's host details, so what the admin
//! API shows follows upgrades and renames without a re-enroll.

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::AgentService;
use crate::server::metrics::StoreCall;
use sgt_core::error::{ErrorKind, Result};
use sgt_core::store::{Node, PendingQuery, QueryResult};
use sgt_core::types::{NodeId, QueryId, UnixSeconds};

/// The id of every detail query starts with this; no campaign id can (campaign ids are hex).
pub const DETAIL_QUERY_PREFIX: &str = "sgt-details.";

/// Each detail query: the host-details key its answer replaces, and its SQL.
pub(super) const DETAIL_QUERIES: [(&str, &str); 4] = [
    ("osquery_info", "SELECT * FROM osquery_info;"),
    ("system_info", "SELECT * FROM system_info;"),
    ("os_version", "SELECT * FROM os_version;"),
    (
        "interface_addresses",
        "SELECT interface, address, mask FROM interface_addresses;",
    ),
];

/// Interface addresses kept per node at most.
const ADDRESSES_KEPT: usize = 64;
/// A row larger than this (as JSON) is not kept.
const LARGEST_ROW_BYTES: usize = 16 * 1024;
/// Host details larger than this (as JSON) after the answers are merged are not stored: the
/// most an enroll may report.
const LARGEST_DETAILS_BYTES: usize = 1024 * 1024;

/// When each node is next due for detail queries, and when its answers were last applied,
/// on this instance.
#[derive(Debug, Default)]
pub(super) struct DetailSchedule {
    times: std::sync::RwLock<HashMap<NodeId, DetailTimes>>,
}

#[derive(Debug, Clone, Copy)]
struct DetailTimes {
    due: UnixSeconds,
    applied: Option<UnixSeconds>,
}

/// Nodes scheduled at most; past it the schedule starts over.
const SCHEDULED_NODES: usize = 2_000_000;

/// Where in `interval` node `id` falls: its first detail queries come that long after this
/// instance first sees it, so a fleet's are spread over the interval.
fn phase(id: &NodeId, interval: i64) -> i64 {
    let hash = id.as_str().bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    (hash % interval.max(1) as u64) as i64
}

impl DetailSchedule {
    /// Whether `id` is due for detail queries at `now`; when it is, the next time is set one
    /// `interval` on.
    pub(super) fn take_due(&self, id: &NodeId, now: UnixSeconds, interval: i64) -> bool {
        let known = self
            .times
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .copied();
        if known.is_some_and(|t| now < t.due) {
            return false;
        }
        let mut times = self.write();
        match times.get_mut(id) {
            None => {
                let due = now.saturating_add(phase(id, interval));
                times.insert(id.clone(), DetailTimes { due, applied: None });
                false
            }
            Some(t) if now < t.due => false,
            Some(t) => {
                t.due = now.saturating_add(interval);
                true
            }
        }
    }

    /// Whether answers from `id` may be applied at `now`: at most once every half
    /// `interval`, so an agent sending them unasked cannot make the store write at its pace.
    /// Answers applied here also put the node's next detail queries one `interval` on.
    pub(super) fn may_apply(&self, id: &NodeId, now: UnixSeconds, interval: i64) -> bool {
        let mut times = self.write();
        let due = now.saturating_add(interval);
        let entry = times
            .entry(id.clone())
            .or_insert(DetailTimes { due, applied: None });
        if entry
            .applied
            .is_some_and(|t| now < t.saturating_add(interval / 2))
        {
            return false;
        }
        entry.applied = Some(now);
        entry.due = entry.due.max(due);
        true
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<NodeId, DetailTimes>> {
        let mut times = self.times.write().unwrap_or_else(|e| e.into_inner());
        if times.len() >= SCHEDULED_NODES {
            times.clear();
        }
        times
    }
}

/// The detail queries as a distributed read hands them out.
pub(super) fn detail_queries() -> impl Iterator<Item = PendingQuery> {
    DETAIL_QUERIES.iter().map(|(key, sql)| PendingQuery {
        id: QueryId::parse(format!("{DETAIL_QUERY_PREFIX}{key}")).expect("a valid query id"),
        sql: (*sql).to_owned(),
    })
}

/// Whether `result` answers a detail query.
pub(super) fn is_detail_answer(result: &QueryResult) -> bool {
    result.query_id.as_str().starts_with(DETAIL_QUERY_PREFIX)
}

/// `details` with the parts the successful detail answers in `answers` replace.
fn merged(details: &Value, answers: &[QueryResult]) -> Value {
    let mut merged = details.as_object().cloned().unwrap_or_else(Map::new);
    for answer in answers.iter().filter(|a| a.status == 0) {
        let Some(key) = answer.query_id.as_str().strip_prefix(DETAIL_QUERY_PREFIX) else {
            continue;
        };
        let rows = answer
            .rows
            .iter()
            .filter(|r| r.is_object() && r.to_string().len() <= LARGEST_ROW_BYTES);
        match key {
            "interface_addresses" => {
                let kept: Vec<Value> = rows.take(ADDRESSES_KEPT).cloned().collect();
                merged.insert(key.to_owned(), Value::Array(kept));
            }
            "osquery_info" | "system_info" | "os_version" => {
                if let Some(row) = rows.into_iter().next() {
                    merged.insert(key.to_owned(), row.clone());
                }
            }
            _ => {}
        }
    }
    Value::Object(merged)
}

impl AgentService {
    /// The detail queries for `node` when it is due for them.
    pub(super) fn detail_queries_due(&self, node: &Node, now: UnixSeconds) -> Vec<PendingQuery> {
        match self.detail_interval {
            Some(interval) if self.detail_schedule.take_due(&node.id, now, interval) => {
                detail_queries().collect()
            }
            _ => Vec::new(),
        }
    }

    /// Applies `node`'s answers to detail queries to its host details, at most once every
    /// half detail interval per node; with detail queries off they are ignored.
    ///
    /// # Errors
    /// Backend errors; a node deleted meanwhile is skipped.
    pub(super) async fn record_details(&self, node: &Node, answers: &[QueryResult]) -> Result<()> {
        let Some(interval) = self.detail_interval else {
            return Ok(());
        };
        if answers.iter().all(|a| a.status != 0)
            || !self
                .detail_schedule
                .may_apply(&node.id, sgt_core::types::now_unix(), interval)
        {
            return Ok(());
        }
        self.metrics.store_call(StoreCall::UpdateHostDetails);
        let stored = match self.backends.store.node_by_id(&node.id).await {
            Ok(stored) => stored,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        let details = merged(&stored.host_details, answers);
        if details == stored.host_details || details.to_string().len() > LARGEST_DETAILS_BYTES {
            return Ok(());
        }
        match self
            .backends
            .store
            .update_host_details(&node.id, &details)
            .await
        {
            Err(e) if e.kind() != ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn answer(key: &str, status: i64, rows: Vec<Value>) -> QueryResult {
        QueryResult {
            query_id: QueryId::parse(format!("{DETAIL_QUERY_PREFIX}{key}")).unwrap(),
            status,
            rows,
            message: None,
            stats: None,
            received_at: 0,
        }
    }

    #[test]
    fn answers_replace_their_part_only() {
        let before =
            json!({"osquery_info": {"version": "5.1.0"}, "platform_info": {"vendor": "x"}});
        let after = merged(
            &before,
            &[
                answer("osquery_info", 0, vec![json!({"version": "5.23.1"})]),
                answer("os_version", 1, vec![json!({"name": "ignored"})]),
                answer(
                    "interface_addresses",
                    0,
                    vec![json!({"address": "10.0.0.2"}); 100],
                ),
                answer("system_info", 0, vec![json!("not an object")]),
            ],
        );
        assert_eq!(after["osquery_info"]["version"], "5.23.1");
        assert_eq!(after["platform_info"], before["platform_info"]);
        assert!(
            after.get("os_version").is_none(),
            "a failed answer changes nothing"
        );
        assert_eq!(after["interface_addresses"].as_array().unwrap().len(), 64);
        assert!(after.get("system_info").is_none());
    }

    #[test]
    fn answers_are_applied_at_most_every_half_interval() {
        let schedule = DetailSchedule::default();
        let id = NodeId::generate();
        assert!(schedule.may_apply(&id, 1000, 60));
        assert!(!schedule.may_apply(&id, 1029, 60), "unasked, too soon");
        assert!(!schedule.take_due(&id, 1059, 60), "just answered: not due");
        assert!(schedule.may_apply(&id, 1030, 60));
    }

    #[test]
    fn a_node_is_first_due_within_one_interval_then_every_interval() {
        let schedule = DetailSchedule::default();
        let id = NodeId::generate();
        assert!(!schedule.take_due(&id, 1000, 60), "first seen: scheduled");
        let first = (1000..1061)
            .find(|t| schedule.take_due(&id, *t, 60))
            .unwrap();
        assert!(!schedule.take_due(&id, first + 59, 60));
        assert!(schedule.take_due(&id, first + 60, 60));
        let spread: std::collections::BTreeSet<i64> =
            (0..50).map(|_| phase(&NodeId::generate(), 3600)).collect();
        assert!(spread.len() > 40, "phases are spread: {spread:?}");
    }
}
