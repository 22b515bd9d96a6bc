//! sgt-core: the contract of sgt, an osquery TLS server: its domain types, its error
//! vocabulary, the backend traits every store, secret store, log sink and blob store
//! implements, and the rules they share.
//!
//! - [`types`]: validated identifiers (node key, environment, query id, ...).
//! - [`error`]: the one [`Error`] with meaning-based kinds.
//! - [`store`], [`secrets`], [`log_sink`], [`blobs`]: the backend traits, with their
//!   `# Contract` sections; [`Backends`] bundles one of each.
//! - `testkit` (feature): the conformance suite every backend runs, an in-memory store that
//!   passes it, and test doubles.
//!
//! The server that runs on these backends lives in `sgt-bin`; nothing here knows HTTP, TLS or
//! passwords.
#![warn(missing_docs)]

pub mod blobs;
pub mod error;
pub mod log_routes;
pub mod log_sink;
pub mod secrets;
pub mod store;
pub mod types;

#[cfg(feature = "testkit")]
pub mod testkit;

use std::sync::Arc;

pub use error::{Error, ErrorKind, Result};

/// The four backends a server runs on, one of each concern, chosen independently (SQLite
/// storage with a Firehose sink is legal).
#[derive(Debug, Clone)]
pub struct Backends {
    /// Nodes, environments, queries, carves, users, audit.
    pub store: Arc<dyn store::Store>,
    /// Enroll secrets.
    pub secrets: Arc<dyn secrets::SecretStore>,
    /// Result and status log lines.
    pub log_sink: Arc<dyn log_sink::LogSink>,
    /// Carve blocks and archives.
    pub blobs: Arc<dyn blobs::BlobStore>,
}
