//! The `sgt` binary's library half: settings, backend wiring, first-start bootstrap, and
//! starting the server, shared by `main` and the end-to-end tests.

pub mod backends;
pub mod bootstrap;
pub mod cli;
pub mod loadtest;
pub mod osquery_flags;
pub mod provision;
pub mod serve;
pub mod settings;
pub mod tls_files;
