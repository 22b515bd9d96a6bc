//! Durable file writes shared by the file backends.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

use sgt_core::types::random_hex;
use sgt_core::Error;

/// `io::Error` to the core error: missing files are `NotFound`, the rest `Backend`.
pub(crate) fn io_error(backend: &'static str, what: &str, e: io::Error) -> Error {
    match e.kind() {
        io::ErrorKind::NotFound => Error::not_found(what),
        _ => Error::backend(backend, e),
    }
}

/// Fsyncs a directory so a rename or create inside it survives a crash.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// A temporary path beside `path`, named so it can never be a valid blob key.
pub(crate) fn temp_path_beside(path: &Path) -> std::path::PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!("~tmp~{name}~{}", random_hex(8)))
}

/// Writes `data` to `path` atomically and durably (temp file, fsync, rename, fsync dir),
/// with `mode` permissions on Unix.
pub(crate) fn write_atomic(path: &Path, data: &[u8], mode: u32) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    let temp = temp_path_beside(path);
    let result = (|| {
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(mode);
        }
        #[cfg(not(unix))]
        let _ = mode;
        let mut file = options.open(&temp)?;
        file.write_all(data)?;
        file.sync_all()?;
        fs::rename(&temp, path)?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result
}
