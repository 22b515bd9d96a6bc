//! `POST /api/v1/osquery/enroll`

use std::sync::Arc;

use serde::Deserialize;
use warp::reply::Response;
use warp::{Filter, Rejection};

use crate::server::services::agent::{AgentService, EnrollRequest};
use crate::server::transport::reply::{ok_json, respond};
use crate::server::transport::request::{agent_request, lenient_string, AgentRequest};
use sgt_core::error::{Error, Result};
use sgt_core::types::HostIdentifier;

const BODY_LIMIT: u64 = 1024 * 1024;

#[derive(Deserialize)]
struct EnrollBody {
    #[serde(default)]
    enroll_secret: String,
    host_identifier: String,
    #[serde(default, deserialize_with = "lenient_string")]
    platform_type: String,
    #[serde(default)]
    host_details: Option<Box<serde_json::value::RawValue>>,
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
    let host_details = match &body.host_details {
        Some(raw) => host_details(raw)?,
        None => serde_json::Value::Object(Default::default()),
    };
    let key = service
        .enroll(EnrollRequest {
            enroll_secret: body.enroll_secret,
            host_identifier: HostIdentifier::parse(body.host_identifier)?,
            platform_type: body.platform_type,
            host_details,
            source: request.source,
        })
        .await?;
    Ok(ok_json(&serde_json::json!({
        "node_key": key.as_str(),
        "node_invalid": false,
    })))
}

/// Largest `host_details` accepted, as sent. osquery sends the first row of four tables,
/// every value a string: about 2 KiB.
pub(crate) const MAX_HOST_DETAILS_BYTES: usize = 16 * 1024;

/// The tables osquery puts in `host_details` (`osquery/remote/enroll/enroll.cpp`).
const HOST_DETAILS_TABLES: [&str; 4] =
    ["os_version", "osquery_info", "platform_info", "system_info"];

/// The host details kept for a node: the tables osquery sends, each an object, and nothing
/// else (other members are dropped). `null` is an empty object.
///
/// # Errors
/// `InvalidInput` when the details are larger than [`MAX_HOST_DETAILS_BYTES`], are not an
/// object, or a kept table is not an object.
fn host_details(raw: &serde_json::value::RawValue) -> Result<serde_json::Value> {
    let text = raw.get();
    if text.len() > MAX_HOST_DETAILS_BYTES {
        return Err(Error::invalid_input(format!(
            "host_details is larger than {MAX_HOST_DETAILS_BYTES} bytes (osquery sends about 2 KiB)"
        )));
    }
    let tables: Option<serde_json::Map<String, serde_json::Value>> = serde_json::from_str(text)
        .map_err(|_| Error::invalid_input("host_details must be an object"))?;
    let mut kept = serde_json::Map::new();
    for (name, table) in tables.unwrap_or_default() {
        if !HOST_DETAILS_TABLES.contains(&name.as_str()) {
            continue;
        }
        if !table.is_object() {
            return Err(Error::invalid_input(format!(
                "host_details.{name} must be an object"
            )));
        }
        kept.insert(name, table);
    }
    Ok(serde_json::Value::Object(kept))
}
