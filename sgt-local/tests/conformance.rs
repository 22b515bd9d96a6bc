//! The sgt-core conformance suite, run against every sgt-local backend on real files.

use std::sync::Arc;

use async_trait::async_trait;
use sgt_core::log_sink::{LogSink, LogType};
use sgt_core::testkit::log_sink::SinkUnderTest;
use sgt_local::{DirBlobStore, FileLogSink, FileLogSinkOptions, FileSecrets, SqliteStore};
use tempfile::TempDir;

/// A backend together with the temporary directory it lives in.
struct InTempDir<T> {
    backend: T,
    _dir: TempDir,
}

impl<T> std::ops::Deref for InTempDir<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.backend
    }
}

mod sqlite_file {
    use super::*;
    async fn make() -> InTempDir<SqliteStore> {
        let dir = TempDir::new().unwrap();
        let backend = SqliteStore::open(dir.path().join("sgt.db")).await.unwrap();
        InTempDir { backend, _dir: dir }
    }
    sgt_core::store_conformance_tests!(make());
}

mod sqlite_memory {
    use super::*;
    async fn make() -> Arc<SqliteStore> {
        Arc::new(SqliteStore::in_memory().await.unwrap())
    }
    sgt_core::store_conformance_tests!(make());
}

mod file_secrets {
    use super::*;
    async fn make() -> InTempDir<FileSecrets> {
        let dir = TempDir::new().unwrap();
        let backend = FileSecrets::open(dir.path().join("enroll_secrets.json")).unwrap();
        InTempDir { backend, _dir: dir }
    }
    sgt_core::secret_store_conformance_tests!(make());
}

mod dir_blobs {
    use super::*;
    async fn make() -> InTempDir<DirBlobStore> {
        let dir = TempDir::new().unwrap();
        let backend = DirBlobStore::open(dir.path().join("blobs")).unwrap();
        InTempDir { backend, _dir: dir }
    }
    sgt_core::blob_store_conformance_tests!(make());
}

/// The file sink read back from its files.
struct FileSinkUnderTest {
    sink: FileLogSink,
}

#[async_trait]
impl SinkUnderTest for FileSinkUnderTest {
    fn sink(&self) -> &dyn LogSink {
        &self.sink
    }

    async fn stored_records(&self) -> Vec<serde_json::Value> {
        let mut records = Vec::new();
        for log_type in [LogType::Result, LogType::Status] {
            for file in self.sink.files(log_type).unwrap() {
                let text = std::fs::read_to_string(file).unwrap_or_default();
                records.extend(text.lines().map(|l| serde_json::from_str(l).unwrap()));
            }
        }
        records
    }
}

mod file_log_sink {
    use super::*;
    async fn make() -> InTempDir<FileSinkUnderTest> {
        let dir = TempDir::new().unwrap();
        let backend = FileSinkUnderTest {
            sink: FileLogSink::open(FileLogSinkOptions::new(dir.path().join("logs"))).unwrap(),
        };
        InTempDir { backend, _dir: dir }
    }
    sgt_core::log_sink_conformance_tests!(make());
}

mod file_log_sink_rotating {
    use super::*;
    /// Rotates after nearly every batch, so reading back spans many files.
    async fn make() -> InTempDir<FileSinkUnderTest> {
        let dir = TempDir::new().unwrap();
        let mut options = FileLogSinkOptions::new(dir.path().join("logs"));
        options.rotate_bytes = 200;
        let backend = FileSinkUnderTest {
            sink: FileLogSink::open(options).unwrap(),
        };
        InTempDir { backend, _dir: dir }
    }
    sgt_core::log_sink_conformance_tests!(make());
}

mod stream_log_sink {
    use std::sync::{Arc, Mutex};

    use async_trait::async_trait;
    use sgt_core::log_sink::LogSink;
    use sgt_core::testkit::log_sink::SinkUnderTest;
    use sgt_local::StreamLogSink;

    /// What the stream's reader saw.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    struct StreamUnderTest {
        sink: StreamLogSink,
        captured: Captured,
    }

    #[async_trait]
    impl SinkUnderTest for StreamUnderTest {
        fn sink(&self) -> &dyn LogSink {
            &self.sink
        }
        async fn stored_records(&self) -> Vec<serde_json::Value> {
            let text = String::from_utf8(self.captured.0.lock().unwrap().clone()).unwrap();
            text.lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect()
        }
    }

    async fn make() -> Arc<StreamUnderTest> {
        let captured = Captured::default();
        Arc::new(StreamUnderTest {
            sink: StreamLogSink::new(captured.clone()),
            captured,
        })
    }
    sgt_core::log_sink_conformance_tests!(make());
}
