//! `POST /api/v1/osquery/distributed/read` and `/distributed/write`

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;
use warp::reply::Response;
use warp::{Filter, Rejection};

use crate::server::services::agent::AgentService;
use crate::server::transport::reply::{ok_empty, ok_json, respond};
use crate::server::transport::request::{agent_request, bounded_raw_object, AgentRequest};
use sgt_core::error::{Error, Result};
use sgt_core::store::QueryResult;
use sgt_core::types::{now_unix, QueryId};

const READ_BODY_LIMIT: u64 = 64 * 1024;
/// All results of one cycle come in one write, uncapped by the agent.
const WRITE_BODY_LIMIT: u64 = crate::server::transport::LARGEST_BODY_BYTES;

#[derive(Deserialize)]
struct ReadBody {
    #[serde(default)]
    node_key: Option<String>,
}

/// Most members of each of a write's objects (`queries`, `statuses`, `messages`, `stats`):
/// an agent answers the live queries it was sent, far fewer than this.
const MAX_QUERIES_PER_WRITE: usize = 10_000;

/// A write's answers, each member's value still raw JSON: rows are parsed into trees only
/// once their cost is charged to the body budget.
#[derive(Deserialize)]
struct WriteBody {
    #[serde(default)]
    node_key: Option<String>,
    #[serde(
        default,
        deserialize_with = "bounded_raw_object::<_, MAX_QUERIES_PER_WRITE>"
    )]
    queries: Vec<(String, Box<RawValue>)>,
    #[serde(
        default,
        deserialize_with = "bounded_raw_object::<_, MAX_QUERIES_PER_WRITE>"
    )]
    statuses: Vec<(String, Box<RawValue>)>,
    #[serde(
        default,
        deserialize_with = "bounded_raw_object::<_, MAX_QUERIES_PER_WRITE>"
    )]
    messages: Vec<(String, Box<RawValue>)>,
    #[serde(
        default,
        deserialize_with = "bounded_raw_object::<_, MAX_QUERIES_PER_WRITE>"
    )]
    stats: Vec<(String, Box<RawValue>)>,
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
    let results = parse_results(body, |bytes| request.charge(bytes))?;
    service.distributed_write(&node, results).await?;
    Ok(ok_empty())
}

/// One [`QueryResult`] per query id present in `queries` or `statuses`. Ids that cannot be
/// ours (invalid syntax) are skipped; malformed values refuse the whole write. `charge` is
/// called with what each parsed tree of rows or stats may cost, before it is built.
fn parse_results(
    body: WriteBody,
    charge: impl Fn(usize) -> Result<()>,
) -> Result<Vec<QueryResult>> {
    let received_at = now_unix();
    let (queries, statuses) = (by_id(&body.queries), by_id(&body.statuses));
    let (messages, stats) = (by_id(&body.messages), by_id(&body.stats));
    let ids: BTreeSet<&str> = queries.keys().chain(statuses.keys()).copied().collect();
    let mut results = Vec::with_capacity(ids.len());
    for id in ids {
        let Ok(query_id) = QueryId::parse(id) else {
            continue;
        };
        let rows = match queries.get(id).map(|raw| raw.get()) {
            None | Some("null") => Vec::new(),
            Some(raw) => {
                charge(value_tree_cost(raw))?;
                let rows: Vec<Value> = serde_json::from_str(raw).map_err(|_| {
                    Error::invalid_input(format!("queries[{query_id}] must be an array"))
                })?;
                if rows.iter().any(|r| !r.is_object()) {
                    return Err(Error::invalid_input(format!(
                        "queries[{query_id}] must be an array of objects"
                    )));
                }
                rows
            }
        };
        let status = match statuses.get(id).map(|raw| raw.get()) {
            None => 0,
            Some(raw) => {
                // A number, or (some osquery versions) a decimal string.
                let status: Option<i64> = match serde_json::from_str::<String>(raw) {
                    Ok(text) => text.trim().parse().ok(),
                    Err(_) => serde_json::from_str(raw).ok(),
                };
                status.ok_or_else(|| {
                    Error::invalid_input(format!("statuses[{query_id}] must be an integer"))
                })?
            }
        };
        let message = match messages.get(id).map(|raw| raw.get()) {
            None | Some("null") => None,
            Some(raw) => Some(serde_json::from_str::<String>(raw).map_err(|_| {
                Error::invalid_input(format!("messages[{query_id}] must be a string"))
            })?),
        };
        let stats = match stats.get(id).map(|raw| raw.get()) {
            None | Some("null") => None,
            Some(raw) => {
                charge(value_tree_cost(raw))?;
                Some(serde_json::from_str::<Value>(raw).map_err(|_| {
                    Error::invalid_input(format!("stats[{query_id}] is not valid JSON"))
                })?)
            }
        };
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

/// A write's members by query id (a later duplicate wins, as in a JSON object).
fn by_id(members: &[(String, Box<RawValue>)]) -> BTreeMap<&str, &RawValue> {
    members
        .iter()
        .map(|(id, value)| (id.as_str(), value.as_ref()))
        .collect()
}

/// An upper bound of the heap bytes a `serde_json::Value` tree parsed from `json` takes
/// (64-bit): its text, plus for each object a B-tree node (11 keys and values: about 630
/// bytes), for each member its share of further nodes, for each array element a 32-byte
/// slot that the array's growth may double, and for each string an allocation's minimum.
/// One pass over the bytes, no allocation.
fn value_tree_cost(json: &str) -> usize {
    const OBJECT: usize = 640;
    const MEMBER: usize = 160;
    const ELEMENT: usize = 64;
    const STRING: usize = 32;
    let structure: usize = crate::server::json_text::outside_strings(json)
        .map(|byte| match byte {
            b'{' => OBJECT + ELEMENT,
            b':' => MEMBER,
            b'[' | b',' => ELEMENT,
            b'"' => STRING,
            _ => 0,
        })
        .sum();
    json.len() + structure
}

#[cfg(test)]
mod tests {
    use super::value_tree_cost;

    #[test]
    fn a_tree_of_tiny_values_costs_many_times_its_text() {
        let zeros = format!("[{}0]", "0,".repeat(999));
        assert!(value_tree_cost(&zeros) >= 1000 * 64);
        let objects = format!("[{}{{}}]", "{},".repeat(999));
        assert!(value_tree_cost(&objects) >= 1000 * 640);
        // Brackets, commas and colons inside strings are text, not structure.
        let text = r#"[{"a":"[,{:}]\"{"}]"#;
        assert_eq!(
            value_tree_cost(text),
            text.len() + 64 + (640 + 64) + 160 + 2 * 32
        );
    }
}
