//! The `sgt` binary's library half: settings, backend wiring, first-start bootstrap, and
//! starting the server, shared by `main` and the end-to-end tests.

// The warp filter chain of the whole API, instantiated here, nests deeper than the default
// limit of 128 when the release profile evaluates it.
#![recursion_limit = "256"]

pub mod backends;
pub mod bootstrap;
pub mod cli;
pub mod deploy;
pub mod loadtest;
pub mod osquery_flags;
pub mod provision;
pub mod serve;
pub mod settings;
pub mod tls_files;
