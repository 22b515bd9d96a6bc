//! The transport: TLS listener and connections, the shared body budget, and the request and
//! reply helpers every endpoint uses. Knows nothing of what the endpoints do.

pub(crate) mod body_budget;
mod connection;
pub mod listener;
pub(crate) mod reply;
pub(crate) mod request;

use std::convert::Infallible;

use warp::Filter;

/// The largest request body any route takes (`log` and `distributed/write`), both as sent and
/// inflated from gzip. Longer bodies are refused by their `Content-Length`, unread.
pub const LARGEST_BODY_BYTES: u64 = 64 * 1024 * 1024;

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
