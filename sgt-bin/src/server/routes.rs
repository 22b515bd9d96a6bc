//! Every route the server answers in one filter, and the rejection mapping.
//!
//! Every agent endpoint is `POST /api/v1/osquery/<name>` with a JSON body; every answer,
//! errors included, is a JSON object (never an empty body, never a non-object root).

use std::convert::Infallible;
use std::sync::Arc;

use http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection};

use crate::server::services::admin::AdminService;
use crate::server::services::agent::AgentService;
use crate::server::transport::{client_address, reply};
use crate::server::{admin_api, agent_api};

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
    let agent = agent_api::routes(service);
    // warp tries a filter's alternative by copying it into every request's future: the
    // agent routes, the busiest, come first, and everything else is one boxed filter behind
    // them, so that an agent request copies a pointer rather than the admin API's routes.
    let everything_else = health
        .or(metrics)
        .unify()
        .or(admin_api::routes(admin))
        .unify()
        .boxed();
    agent
        .or(everything_else)
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
