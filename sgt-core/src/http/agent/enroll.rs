//! `POST /api/v1/osquery/enroll`

use std::sync::Arc;

use serde::Deserialize;
use warp::reply::Response;
use warp::{Filter, Rejection};

use crate::agent::{AgentService, EnrollRequest};
use crate::error::Result;
use crate::http::reply::{ok_json, respond};
use crate::http::request::{agent_request, AgentRequest};
use crate::types::HostIdentifier;

const BODY_LIMIT: u64 = 1024 * 1024;

#[derive(Deserialize)]
struct EnrollBody {
    #[serde(default)]
    enroll_secret: String,
    host_identifier: String,
    #[serde(default)]
    platform_type: Option<serde_json::Value>,
    #[serde(default)]
    host_details: Option<serde_json::Value>,
}

pub(crate) fn route(
    service: Arc<AgentService>,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("api" / "v1" / "osquery" / "enroll")
        .and(agent_request(BODY_LIMIT))
        .then(move |request: AgentRequest| {
            let service = Arc::clone(&service);
            async move { respond(handle(&service, request).await) }
        })
}

async fn handle(service: &AgentService, request: AgentRequest) -> Result<Response> {
    let body: EnrollBody = request.json()?;
    let platform_type = match body.platform_type {
        None | Some(serde_json::Value::Null) => String::new(),
        Some(serde_json::Value::String(s)) => s,
        Some(serde_json::Value::Number(n)) => n.to_string(),
        Some(_) => {
            return Err(crate::error::Error::invalid_input(
                "platform_type must be a string",
            ))
        }
    };
    let key = service
        .enroll(EnrollRequest {
            enroll_secret: body.enroll_secret,
            host_identifier: HostIdentifier::parse(body.host_identifier)?,
            platform_type,
            host_details: body
                .host_details
                .unwrap_or_else(|| serde_json::Value::Object(Default::default())),
            source: request.source,
        })
        .await?;
    Ok(ok_json(&serde_json::json!({
        "node_key": key.as_str(),
        "node_invalid": false,
    })))
}
