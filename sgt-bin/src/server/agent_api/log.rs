//! `POST /api/v1/osquery/log`

use std::sync::Arc;

use serde::Deserialize;
use serde_json::value::RawValue;
use warp::reply::Response;
use warp::{Filter, Rejection};

use crate::server::services::agent::AgentService;
use crate::server::transport::reply::{ok_empty, respond};
use crate::server::transport::request::{agent_request, bounded_array, AgentRequest};
use sgt_core::error::{Error, Result};
use sgt_core::log_sink::LogType;

/// Log batches are the largest agent bodies: 1024 lines per batch by default.
const BODY_LIMIT: u64 = crate::server::transport::LARGEST_BODY_BYTES;

/// Most lines in one batch. osquery sends at most `--logger_tls_max_lines` (1,024 by
/// default); each line costs a heap entry beyond its text, so the count is what bounds a
/// batch of tiny lines.
pub(crate) const MAX_LINES_PER_BATCH: usize = 65_536;

#[derive(Deserialize)]
struct LogBody {
    #[serde(default)]
    node_key: Option<String>,
    log_type: String,
    #[serde(deserialize_with = "bounded_array::<_, _, MAX_LINES_PER_BATCH>")]
    data: Vec<Box<RawValue>>,
}

pub(crate) fn route(
    service: Arc<AgentService>,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("api" / "v1" / "osquery" / "log")
        .and(agent_request(BODY_LIMIT))
        .then(move |request: AgentRequest| {
            let service = Arc::clone(&service);
            async move { respond(handle(&service, request).await) }
        })
}

async fn handle(service: &AgentService, request: AgentRequest) -> Result<Response> {
    let body: LogBody = request.json()?;
    let node = service
        .authenticate(request.node_key(body.node_key.as_deref())?)
        .await?;
    let log_type = match body.log_type.as_str() {
        "result" => LogType::Result,
        "status" => LogType::Status,
        _ => {
            return Err(Error::invalid_input(
                "log_type must be \"result\" or \"status\"",
            ))
        }
    };
    service.ingest_logs(&node, log_type, body.data).await?;
    Ok(ok_empty())
}
