//! The osquery agent endpoints, one module each, under `/api/v1/osquery/`.

mod carve;
mod config;
mod distributed;
mod enroll;
mod log;

use std::sync::Arc;

use warp::reply::Response;
use warp::{Filter, Rejection};

use crate::server::services::agent::AgentService;

/// Every agent endpoint.
pub(super) fn routes(
    service: Arc<AgentService>,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    // The most frequent first: each request is matched against the routes in this order.
    distributed::read_route(Arc::clone(&service))
        .or(log::route(Arc::clone(&service)))
        .unify()
        .or(config::route(Arc::clone(&service)))
        .unify()
        .or(distributed::write_route(Arc::clone(&service)))
        .unify()
        .or(enroll::route(Arc::clone(&service)))
        .unify()
        .or(carve::start_route(Arc::clone(&service)))
        .unify()
        .or(carve::continue_route(service))
        .unify()
}
