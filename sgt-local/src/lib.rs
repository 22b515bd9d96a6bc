//! sgt-local: the embedded default backends, all under one data directory.
//!
//! - [`SqliteStore`]: nodes, environments, queries and carves in one SQLite file (WAL).
//! - [`FileSecrets`]: enroll secrets in a JSON file readable only by its owner.
//! - [`FileLogSink`]: result and status lines as JSON Lines files, fsynced in group commits,
//!   rotated by size.
//! - [`StreamLogSink`]: the same records on standard output, for container log drivers.
//! - [`DirBlobStore`]: carve blocks and archives as files in a directory.

mod blobs;
mod fs_util;
mod log_sink;
mod secrets;
mod sqlite;
mod stream_log_sink;

pub use blobs::DirBlobStore;
pub use log_sink::{FileLogSink, FileLogSinkOptions};
pub use secrets::FileSecrets;
pub use sqlite::SqliteStore;
pub use stream_log_sink::StreamLogSink;
