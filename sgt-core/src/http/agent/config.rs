//! `POST /api/v1/osquery/config`

use std::sync::Arc;

use http::StatusCode;
use serde::Deserialize;
use warp::reply::Response;
use warp::{Filter, Rejection};

use crate::agent::{AgentService, ConfigReply};
use crate::error::Result;
use crate::http::reply::{json_bytes, respond};
use crate::http::request::{agent_request, AgentRequest};

const BODY_LIMIT: u64 = 64 * 1024;

#[derive(Deserialize)]
struct ConfigBody {
    #[serde(default)]
    node_key: Option<String>,
    #[serde(default)]
    etag: Option<String>,
}

pub(crate) fn route(
    service: Arc<AgentService>,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("api" / "v1" / "osquery" / "config")
        .and(agent_request(BODY_LIMIT))
        .then(move |request: AgentRequest| {
            let service = Arc::clone(&service);
            async move { respond(handle(&service, request).await) }
        })
}

async fn handle(service: &AgentService, request: AgentRequest) -> Result<Response> {
    let body: ConfigBody = request.json()?;
    let node = service
        .authenticate(request.node_key(body.node_key.as_deref())?)
        .await?;
    Ok(match service.config(&node, body.etag.as_deref()).await? {
        ConfigReply::Full(bytes) => json_bytes(StatusCode::OK, bytes),
        ConfigReply::NotModified => json_bytes(StatusCode::OK, &b"{\"etag\":\"ok\"}"[..]),
    })
}
