//! The server: what `sgt serve` runs. Its folders follow a request's path:
//!
//! - [`transport`]: TCP and TLS, connection and request limits, the shared body budget, and the
//!   request decoding and reply helpers every endpoint uses.
//! - [`routes`]: every route in one filter: the agent API, the admin API, health and metrics.
//! - [`agent_api`]: one module per osquery endpoint (`/api/v1/osquery/...`): parse, call the
//!   agent service, answer in the shape osquery reads.
//! - [`admin_api`]: one module per admin resource (`/api/v1/...`), and the OpenAPI table.
//! - [`services`]: what each call does, on the backends, with no HTTP in it.
//! - [`metrics`] and [`paths`]: counters every layer records into, and the agent paths.
//! - [`App`]: the one assembly of services from backends and limits that `sgt serve`, the
//!   tests, the benches and the fuzz harness all use.

pub mod admin_api;
pub mod agent_api;
mod app;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
mod json_text;
pub mod metrics;
pub mod paths;
pub mod routes;
pub mod services;
pub mod transport;

pub use app::App;
pub use services::agent::ServiceLimits;
