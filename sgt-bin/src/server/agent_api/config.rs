//! `POST /api/v1/osquery/config`

use std::sync::Arc;

use http::StatusCode;
use serde::Deserialize;
use warp::reply::Response;
use warp::{Filter, Rejection};

use crate::server::services::agent::{AgentService, ConfigReply};
use crate::server::transport::reply::{json_bytes, respond};
use crate::server::transport::request::{agent_request, AgentRequest};
use sgt_core::error::Result;

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
        .and(warp::header::optional::<String>("accept-encoding"))
        .and(agent_request(BODY_LIMIT))
        .then(
            move |accept_encoding: Option<String>, request: AgentRequest| {
                let service = Arc::clone(&service);
                let accepts_gzip = accept_encoding.as_deref().is_some_and(accepts_gzip);
                async move { respond(handle(&service, request, accepts_gzip).await) }
            },
        )
}

/// Whether an `Accept-Encoding` value accepts gzip (osquery's `--tls_accept_gzip` sends
/// exactly `gzip`; `gzip;q=0` refuses it).
fn accepts_gzip(accept_encoding: &str) -> bool {
    accept_encoding.split(',').any(|coding| {
        let mut parts = coding.split(';').map(str::trim);
        let name = parts.next().unwrap_or_default();
        let refused = parts.any(|p| {
            p.strip_prefix("q=")
                .and_then(|q| q.parse::<f32>().ok())
                .is_some_and(|q| q == 0.0)
        });
        name.eq_ignore_ascii_case("gzip") && !refused
    })
}

async fn handle(service: &AgentService, request: AgentRequest, gzip: bool) -> Result<Response> {
    let body: ConfigBody = request.json()?;
    let node = service
        .authenticate(request.node_key(body.node_key.as_deref())?)
        .await?;
    Ok(
        match service.config(&node, body.etag.as_deref(), gzip).await? {
            ConfigReply::Full(bytes) => json_bytes(StatusCode::OK, bytes),
            ConfigReply::FullGzip(bytes) => {
                let mut response = json_bytes(StatusCode::OK, bytes);
                response.headers_mut().insert(
                    http::header::CONTENT_ENCODING,
                    http::HeaderValue::from_static("gzip"),
                );
                response
            }
            ConfigReply::NotModified => json_bytes(StatusCode::OK, &b"{\"etag\":\"ok\"}"[..]),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::accepts_gzip;

    #[test]
    fn gzip_is_accepted_unless_refused() {
        for yes in ["gzip", "GZIP", "deflate, gzip", "gzip;q=0.5", " gzip ; q=1"] {
            assert!(accepts_gzip(yes), "{yes}");
        }
        for no in [
            "",
            "identity",
            "deflate",
            "gzip;q=0",
            "gzip; q=0.0",
            "x-gzipped",
        ] {
            assert!(!accepts_gzip(no), "{no}");
        }
    }
}
