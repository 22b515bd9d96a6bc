//! Dynamic labels: every `label_interval`, spread over the fleet by node id, a node's
//! distributed read also carries the query of each dynamic label that covers it. A node is a
//! member while its answer has at least one row; an answer with an error changes nothing.
//! Membership is written only when it changes, so a fleet whose answers stay the same costs
//! no store writes.

use super::AgentService;
use crate::server::metrics::StoreCall;
use sgt_core::error::{ErrorKind, Result};
use sgt_core::store::{Node, PendingQuery, QueryResult};
use sgt_core::types::{now_unix, LabelName, QueryId, UnixSeconds};

/// The id of every label query starts with this, followed by the label's name; no campaign
/// id can (campaign ids are hex).
pub const LABEL_QUERY_PREFIX: &str = "sgt-label.";

/// Whether `result` answers a label query.
pub(super) fn is_label_answer(result: &QueryResult) -> bool {
    result.query_id.as_str().starts_with(LABEL_QUERY_PREFIX)
}

impl AgentService {
    /// The queries of the dynamic labels covering `node` when it is due for them (none before
    /// this instance first read the labels).
    pub(super) fn label_queries_due(&self, node: &Node, now: UnixSeconds) -> Vec<PendingQuery> {
        let Some(interval) = self.label_interval else {
            return Vec::new();
        };
        let labels = self.cache.dynamic_labels();
        let mut covering = labels
            .iter()
            .filter(|l| l.covers(&node.environment, &node.platform))
            .peekable();
        if covering.peek().is_none() || !self.label_schedule.take_due(&node.id, now, interval) {
            return Vec::new();
        }
        covering
            .filter_map(|label| {
                Some(PendingQuery {
                    id: QueryId::parse(format!("{LABEL_QUERY_PREFIX}{}", label.name)).ok()?,
                    sql: label.query.clone()?,
                })
            })
            .collect()
    }

    /// Applies `node`'s answers to label queries: each answer without an error makes it a
    /// member (rows) or not (no rows) of a dynamic label that covers it. Answers are taken at
    /// most once every half label interval per node; with label queries off they are ignored.
    ///
    /// # Errors
    /// Backend errors; a node or label deleted meanwhile is skipped.
    pub(super) async fn record_label_answers(
        &self,
        node: &Node,
        answers: &[QueryResult],
    ) -> Result<()> {
        let Some(interval) = self.label_interval else {
            return Ok(());
        };
        if answers.iter().all(|a| a.status != 0)
            || !self
                .label_schedule
                .may_apply(&node.id, now_unix(), interval)
        {
            return Ok(());
        }
        let labels = self.cache.dynamic_labels();
        let mut changed = false;
        for answer in answers.iter().filter(|a| a.status == 0) {
            let Some(name) = answer
                .query_id
                .as_str()
                .strip_prefix(LABEL_QUERY_PREFIX)
                .and_then(|n| LabelName::parse(n).ok())
            else {
                continue;
            };
            let covers = labels
                .iter()
                .any(|l| l.name == name && l.covers(&node.environment, &node.platform));
            let member = !answer.rows.is_empty();
            if !covers || node.labels.contains(&name) == member {
                continue;
            }
            self.metrics.store_call(StoreCall::LabelMembership);
            match self
                .backends
                .store
                .set_label_member(&name, &node.id, member)
                .await
            {
                Ok(c) => changed |= c,
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        if changed {
            // Its next request reads it again, with its labels.
            self.cache.forget_node(&node.id);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_query_ids_are_query_ids() {
        let name = LabelName::parse("Debian.12_x-1").unwrap();
        assert!(QueryId::parse(format!("{LABEL_QUERY_PREFIX}{name}")).is_ok());
    }
}
