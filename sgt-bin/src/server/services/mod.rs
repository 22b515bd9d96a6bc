//! What the server does, independent of HTTP: the agent service (one method per osquery
//! endpoint) and the admin service (one method per admin call, with roles and an audit
//! record), on [`sgt_core::Backends`].
//!
//! - [`agent`] and [`admin`]: the two services.
//! - [`serving_cache`]: what the agent service keeps in memory; the admin service tells it
//!   of its own changes.
//! - [`config_doc`]: the osquery config document: validation and per-platform rendering.
//! - [`rate_limit`]: the keyed rate limits both services keep.

pub mod admin;
pub mod agent;
pub mod config_doc;
pub mod rate_limit;
pub mod serving_cache;
