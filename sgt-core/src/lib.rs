//! sgt-core: the domain types, backend traits, agent service and HTTP API of sgt, an osquery
//! TLS server.
//!
//! - [`types`]: validated identifiers (node key, environment, query id, ...).
//! - [`error`]: the one [`Error`] with meaning-based kinds.
//! - [`store`], [`secrets`], [`log_sink`], [`blobs`]: the backend traits.
//! - [`agent`]: what each osquery endpoint does, on `Arc<dyn …>` backends.
//! - [`admin`]: what each admin API call does, with roles and an audit record.
//! - [`config_doc`]: the osquery config document: validation and per-platform rendering.
//! - [`http`]: the warp routes and the TLS server.
//! - `testkit` (feature): the conformance suite every backend runs, and test doubles.
#![warn(missing_docs)]

pub mod admin;
pub mod agent;
pub mod blobs;
pub mod config_doc;
pub mod error;
pub mod http;
mod json_text;
pub mod log_sink;
pub mod metrics;
pub mod rate_limit;
pub mod secrets;
pub mod store;
pub mod types;

#[cfg(feature = "testkit")]
pub mod testkit;

pub use error::{Error, ErrorKind, Result};
