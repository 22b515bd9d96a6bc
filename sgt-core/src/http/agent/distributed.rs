//! `POST /api/v1/osquery/distributed/read` and `/distributed/write`

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Map, Value};
use warp::reply::Response;
use warp::{Filter, Rejection};

use crate::agent::AgentService;
use crate::error::{Error, Result};
use crate::http::reply::{ok_empty, ok_json, respond};
use crate::http::request::{agent_request, AgentRequest};
use crate::store::QueryResult;
use crate::types::{now_unix, QueryId};

const READ_BODY_LIMIT: u64 = 64 * 1024;
/// All results of one cycle come in one write, uncapped by the agent.
const WRITE_BODY_LIMIT: u64 = crate::http::LARGEST_BODY_BYTES;

#[derive(Deserialize)]
struct ReadBody {
    #[serde(default)]
    node_key: Option<String>,
}

#[derive(Deserialize)]
struct WriteBody {
    #[serde(default)]
    node_key: Option<String>,
    #[serde(default)]
    queries: Map<String, Value>,
    #[serde(default)]
    statuses: Map<String, Value>,
    #[serde(default)]
    messages: Map<String, Value>,
    #[serde(default)]
    stats: Map<String, Value>,
}

pub(crate) fn read_route(
    service: Arc<AgentService>,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("api" / "v1" / "osquery" / "distributed" / "read")
        .and(agent_request(READ_BODY_LIMIT))
        .then(move |request: AgentRequest| {
            let service = Arc::clone(&service);
            async move { respond(read(&service, request).await) }
        })
}

pub(crate) fn write_route(
    service: Arc<AgentService>,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("api" / "v1" / "osquery" / "distributed" / "write")
        .and(agent_request(WRITE_BODY_LIMIT))
        .then(move |request: AgentRequest| {
            let service = Arc::clone(&service);
            async move { respond(write(&service, request).await) }
        })
}

async fn read(service: &AgentService, request: AgentRequest) -> Result<Response> {
    let body: ReadBody = request.json()?;
    let node = service
        .authenticate(request.node_key(body.node_key.as_deref())?)
        .await?;
    let queries: BTreeMap<String, String> = service
        .distributed_read(&node)
        .await?
        .into_iter()
        .map(|q| (q.id.as_str().to_owned(), q.sql))
        .collect();
    Ok(ok_json(&serde_json::json!({ "queries": queries })))
}

async fn write(service: &AgentService, request: AgentRequest) -> Result<Response> {
    let body: WriteBody = request.json()?;
    let node = service
        .authenticate(request.node_key(body.node_key.as_deref())?)
        .await?;
    let results = parse_results(body)?;
    service.distributed_write(&node, results).await?;
    Ok(ok_empty())
}

/// One [`QueryResult`] per query id present in `queries` or `statuses`. Ids that cannot be
/// ours (invalid syntax) are skipped; malformed values refuse the whole write.
fn parse_results(body: WriteBody) -> Result<Vec<QueryResult>> {
    let received_at = now_unix();
    let mut ids: Vec<&String> = body.queries.keys().chain(body.statuses.keys()).collect();
    ids.sort();
    ids.dedup();
    let mut results = Vec::with_capacity(ids.len());
    for id in ids {
        let Ok(query_id) = QueryId::parse(id.as_str()) else {
            continue;
        };
        let rows = match body.queries.get(id) {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(rows)) => {
                if rows.iter().any(|r| !r.is_object()) {
                    return Err(Error::invalid_input(format!(
                        "queries[{query_id}] must be an array of objects"
                    )));
                }
                rows.clone()
            }
            Some(_) => {
                return Err(Error::invalid_input(format!(
                    "queries[{query_id}] must be an array"
                )))
            }
        };
        let status = match body.statuses.get(id) {
            None => 0,
            Some(Value::Number(n)) => n.as_i64().ok_or_else(|| {
                Error::invalid_input(format!("statuses[{query_id}] must be an integer"))
            })?,
            Some(Value::String(s)) => s.trim().parse().map_err(|_| {
                Error::invalid_input(format!("statuses[{query_id}] must be an integer"))
            })?,
            Some(_) => {
                return Err(Error::invalid_input(format!(
                    "statuses[{query_id}] must be an integer"
                )))
            }
        };
        let message = match body.messages.get(id) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                return Err(Error::invalid_input(format!(
                    "messages[{query_id}] must be a string"
                )))
            }
        };
        let stats = body.stats.get(id).filter(|s| !s.is_null()).cloned();
        results.push(QueryResult {
            query_id,
            status,
            rows,
            message,
            stats,
            received_at,
        });
    }
    Ok(results)
}
