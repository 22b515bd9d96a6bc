//! The `sgt` program's library: the [`server`] (services, agent and admin HTTP API, TLS),
//! the admin API's wire types ([`admin_types`]) that the server and the admin CLI share,
//! settings and backend wiring, first-start bootstrap, loadtest and deploy; shared by
//! `main`, the end-to-end tests, the benches and the fuzz harness.

// The warp filter chain of the whole API, instantiated here, nests deeper than the default
// limit of 128 when the release profile evaluates it.
#![recursion_limit = "256"]

pub mod admin_types;
pub mod backends;
pub mod bootstrap;
pub mod cli;
pub mod deploy;
pub mod loadtest;
pub mod open_files;
pub mod osquery_flags;
pub mod provision;
pub mod serve;
pub mod server;
pub mod settings;
pub mod tls_files;
