//! `POST /api/v1/osquery/carve/start` and `/carve/continue`, also under Fleet's names
//! `/carve/begin` and `/carve/block`.

use std::sync::Arc;

use base64::Engine;
use serde::Deserialize;
use warp::reply::Response;
use warp::{Filter, Rejection};

use crate::server::services::agent::{AgentService, CarveStart, CARVE_MAX_BLOCK_SIZE};
use crate::server::transport::reply::{ok_empty, ok_json, respond};
use crate::server::transport::request::{agent_request, lenient_u64, AgentRequest};
use sgt_core::error::{Error, Result};
use sgt_core::types::CarveSessionId;

const START_BODY_LIMIT: u64 = 64 * 1024;
/// A block is base64 (4/3 of its size) plus a little JSON.
const CONTINUE_BODY_LIMIT: u64 = CARVE_MAX_BLOCK_SIZE / 3 * 4 + 64 * 1024;

#[derive(Deserialize)]
struct StartBody {
    #[serde(default)]
    node_key: Option<String>,
    #[serde(deserialize_with = "lenient_u64")]
    block_count: u64,
    #[serde(deserialize_with = "lenient_u64")]
    block_size: u64,
    #[serde(deserialize_with = "lenient_u64")]
    carve_size: u64,
    #[serde(default)]
    carve_id: String,
    #[serde(default)]
    request_id: String,
}

#[derive(Deserialize)]
struct ContinueBody {
    #[serde(default)]
    node_key: Option<String>,
    #[serde(deserialize_with = "lenient_u64")]
    block_id: u64,
    session_id: String,
    data: String,
}

/// `/api/v1/osquery/carve/<name>` or `/api/v1/osquery/carve/<fleet_name>`.
fn carve_path(
    name: &'static str,
    fleet_name: &'static str,
) -> impl Filter<Extract = (), Error = Rejection> + Clone {
    warp::path!("api" / "v1" / "osquery" / "carve" / ..)
        .and(warp::path(name).or(warp::path(fleet_name)).unify())
        .and(warp::path::end())
}

pub(crate) fn start_route(
    service: Arc<AgentService>,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    carve_path("start", "begin")
        .and(agent_request(START_BODY_LIMIT))
        .then(move |request: AgentRequest| {
            let service = Arc::clone(&service);
            async move { respond(start(&service, request).await) }
        })
}

pub(crate) fn continue_route(
    service: Arc<AgentService>,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    carve_path("continue", "block")
        .and(agent_request(CONTINUE_BODY_LIMIT))
        .then(move |request: AgentRequest| {
            let service = Arc::clone(&service);
            async move { respond(carve_continue(&service, request).await) }
        })
}

async fn start(service: &AgentService, request: AgentRequest) -> Result<Response> {
    let body: StartBody = request.json()?;
    let node = service
        .authenticate(request.node_key(body.node_key.as_deref())?)
        .await?;
    let session_id = service
        .carve_start(
            &node,
            CarveStart {
                block_count: body.block_count,
                block_size: body.block_size,
                carve_size: body.carve_size,
                carve_guid: body.carve_id,
                request_id: body.request_id,
            },
        )
        .await?;
    Ok(ok_json(
        &serde_json::json!({ "session_id": session_id.as_str() }),
    ))
}

/// Authorized by the session id: agents before 5.23 send no node key here. A request that
/// carries a node key (osquery 5.23+, in the `Authorization` header) must come from the
/// carve's node.
async fn carve_continue(service: &AgentService, request: AgentRequest) -> Result<Response> {
    let body: ContinueBody = request.json()?;
    let sender = match request.node_key(body.node_key.as_deref()) {
        Ok(key) => Some(service.authenticate(key).await?),
        Err(_) => None,
    };
    let session_id =
        CarveSessionId::parse(body.session_id).map_err(|_| Error::not_found("carve session"))?;
    let data = base64::engine::general_purpose::STANDARD
        .decode(body.data.as_bytes())
        .map_err(|_| Error::invalid_input("data must be standard base64"))?;
    service
        .carve_continue(&session_id, sender.as_deref(), body.block_id, data.into())
        .await?;
    Ok(ok_empty())
}
