//! The end-to-end tests, linked into one test binary: every module here starts real servers
//! over TLS. One binary instead of one per file keeps link time and disk use down, since each
//! binary links the whole server including the AWS SDK.

mod admin_api;
mod admin_client;
mod agent_lifecycle;
mod approval;
mod aws_backends;
mod backend_faults;
mod bad_admin_input;
mod bad_input;
mod faulty_sink_load;
mod labels;
mod limits;
mod log_routes;
mod mutual_tls;
mod transport;
mod two_instances;
