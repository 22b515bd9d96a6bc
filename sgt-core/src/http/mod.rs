//! The HTTP API: one module per osquery endpoint, the TLS server, and the rejection mapping.
//!
//! Every agent endpoint is `POST /api/v1/osquery/<name>` with a JSON body; every answer,
//! errors included, is a JSON object (never an empty body, never a non-object root).

mod admin;
mod agent;
mod body_budget;
pub(crate) mod reply;
pub(crate) mod request;
mod server;

use std::convert::Infallible;
use std::sync::Arc;

use http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection};

pub use server::{serve, tls_listener, ClientCertificates, ConnectionLimits, Listener};

/// The largest request body any route takes (`log` and `distributed/write`), both as sent and
/// inflated from gzip. Longer bodies are refused by their `Content-Length`, unread.
pub const LARGEST_BODY_BYTES: u64 = 64 * 1024 * 1024;

/// The admin routes' documentation: (method, path, role, summary) of every admin route, the
/// source of `GET /api/v1/openapi.json`.
pub fn admin_routes() -> &'static [(&'static str, &'static str, &'static str, &'static str)] {
    admin::openapi::ROUTES
}

use crate::admin::AdminService;
use crate::agent::AgentService;

/// The address a request came from: the TCP peer, or behind a TLS-terminating balancer the
/// last `X-Forwarded-For` entry (the one the balancer added). Set by the server on every
/// request; used for per-address rate limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ClientAddress(pub(crate) std::net::IpAddr);

/// The request's [`ClientAddress`], when the server set one.
pub(crate) fn client_address(
) -> impl Filter<Extract = (Option<std::net::IpAddr>,), Error = Infallible> + Clone {
    warp::ext::optional::<ClientAddress>().map(|a: Option<ClientAddress>| a.map(|a| a.0))
}

/// Paths of the agent endpoints, for flag files and clients.
pub mod paths {
    /// Enroll.
    pub const ENROLL: &str = "/api/v1/osquery/enroll";
    /// Config.
    pub const CONFIG: &str = "/api/v1/osquery/config";
    /// Result and status logs.
    pub const LOG: &str = "/api/v1/osquery/log";
    /// Distributed read.
    pub const DISTRIBUTED_READ: &str = "/api/v1/osquery/distributed/read";
    /// Distributed write.
    pub const DISTRIBUTED_WRITE: &str = "/api/v1/osquery/distributed/write";
    /// Carve start.
    pub const CARVE_START: &str = "/api/v1/osquery/carve/start";
    /// Carve continue.
    pub const CARVE_CONTINUE: &str = "/api/v1/osquery/carve/continue";
    /// Every agent endpoint.
    pub const ALL: [&str; 7] = [
        ENROLL,
        CONFIG,
        LOG,
        DISTRIBUTED_READ,
        DISTRIBUTED_WRITE,
        CARVE_START,
        CARVE_CONTINUE,
    ];
}

/// Every route the server answers: the agent API, the admin API, `GET /healthz` and
/// `GET /metrics` (Prometheus text, without a token, to the addresses
/// [`AgentService::with_metrics_readers`] allows), with
/// every rejection (unknown path, wrong method, body too large) turned into a JSON error.
pub fn routes(
    service: Arc<AgentService>,
    admin: Arc<AdminService>,
) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone + Send + Sync + 'static {
    let health = warp::path!("healthz")
        .and(warp::get())
        .map(|| reply::json_bytes(StatusCode::OK, &br#"{"status":"ok"}"#[..]));
    let metrics = warp::path!("metrics")
        .and(warp::get())
        .and(client_address())
        .map({
            let service = Arc::clone(&service);
            move |caller: Option<std::net::IpAddr>| {
                if service.may_read_metrics(caller) {
                    reply::prometheus_text(service.metrics().render())
                } else {
                    reply::error_body(
                        StatusCode::FORBIDDEN,
                        "metrics are served only to the addresses in metrics_allow",
                    )
                }
            }
        });
    let agent = agent::routes(service);
    health
        .or(metrics)
        .unify()
        .or(agent)
        .unify()
        .or(admin::routes(admin))
        .unify()
        .recover(rejection_response)
        .unify()
}

async fn rejection_response(rejection: Rejection) -> Result<Response, Infallible> {
    let (status, message) = if rejection.is_not_found() {
        (StatusCode::NOT_FOUND, "no such endpoint")
    } else if rejection.find::<warp::reject::PayloadTooLarge>().is_some() {
        (StatusCode::PAYLOAD_TOO_LARGE, "request body is too large")
    } else if rejection.find::<warp::reject::LengthRequired>().is_some() {
        (StatusCode::LENGTH_REQUIRED, "content-length is required")
    } else if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
        (StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
    } else {
        (StatusCode::BAD_REQUEST, "bad request")
    };
    Ok(reply::error_body(status, message))
}
