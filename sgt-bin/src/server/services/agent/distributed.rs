use crate::server::metrics::StoreCall;
use sgt_core::error::{ErrorKind, Result};
use sgt_core::store::{Node, NodeRef, PendingQuery, QueryResult};
use sgt_core::types::{now_unix, UnixSeconds};

use super::AgentService;

impl AgentService {
    /// The live queries for `node` (listed for it, or broad ones its environment and platform
    /// match); each is handed out once.
    ///
    /// # Errors
    /// Backend errors as they come.
    pub async fn distributed_read(&self, node: &Node) -> Result<Vec<PendingQuery>> {
        if node.pending {
            // Nothing until approved: no campaigns, no detail or label queries.
            return Ok(Vec::new());
        }
        let now = now_unix();
        let mut pending = self.live_queries_for(node, now).await?;
        pending.extend(self.detail_queries_due(node, now));
        pending.extend(self.label_queries_due(node, now));
        Ok(pending)
    }

    /// The campaigns' queries for `node`, each handed out once.
    async fn live_queries_for(&self, node: &Node, now: UnixSeconds) -> Result<Vec<PendingQuery>> {
        let work = self.cache.work_for(NodeRef::of(node));
        if work.as_ref().is_some_and(Vec::is_empty) {
            // No live query targets this node, or it was asked about all of them already.
            return Ok(Vec::new());
        }
        self.metrics.store_call(StoreCall::TakePendingQueries);
        let pending = self
            .backends
            .store
            .take_pending_queries(NodeRef::of(node), now)
            .await?;
        if let Some(asked) = work {
            self.cache.mark_checked(&node.id, &asked, now);
        }
        Ok(pending)
    }

    /// Stores `node`'s answers; answers to detail queries update its host details instead,
    /// and answers to label queries its labels.
    /// Answers to queries that do not target this node are dropped (and counted in the
    /// return value's second half) rather than failing the whole write.
    ///
    /// # Errors
    /// Backend errors as they come; answers stored before the failure stay stored, and the
    /// agent's resend overwrites them.
    pub async fn distributed_write(
        &self,
        node: &Node,
        results: Vec<QueryResult>,
    ) -> Result<(usize, usize)> {
        if node.pending {
            // Asked nothing, so nothing to store.
            return Ok((0, results.len()));
        }
        let (details, results): (Vec<QueryResult>, Vec<QueryResult>) = results
            .into_iter()
            .partition(super::details::is_detail_answer);
        let (labels, results): (Vec<QueryResult>, Vec<QueryResult>) = results
            .into_iter()
            .partition(super::labels::is_label_answer);
        let mut stored = details.len() + labels.len();
        if !details.is_empty() {
            self.record_details(node, &details).await?;
        }
        if !labels.is_empty() {
            self.record_label_answers(node, &labels).await?;
        }
        let mut ignored = 0;
        for result in &results {
            self.metrics.store_call(StoreCall::RecordResult);
            match self.backends.store.record_result(&node.id, result).await {
                Ok(()) => stored += 1,
                Err(e) if e.kind() == ErrorKind::NotFound => {
                    tracing::warn!(node_id = %node.id, query_id = %result.query_id, "answer to a query not targeting this node ignored");
                    ignored += 1;
                }
                Err(e) => return Err(e),
            }
        }
        Ok((stored, ignored))
    }
}
