//! Result and status lines as JSON Lines files, made durable by group commit.
//!
//! Appends from many requests queue to one writer thread. It takes the first, waits a short
//! gathering window for more, writes them all, fsyncs, and only then answers every waiting
//! append: one fsync serves every batch of the window.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use sgt_core::log_sink::{LogBatch, LogSink, LogType, SinkLimits};
use sgt_core::types::now_unix;
use sgt_core::{Error, Result};
use tokio::sync::{mpsc, oneshot};

use crate::fs_util::sync_dir;

const BACKEND: &str = "file-log-sink";
/// Appends written together under one fsync, at most.
const MAX_GROUP: usize = 1024;
/// Default gathering window; see [`FileLogSinkOptions::group_commit_window`].
const GROUP_COMMIT_WINDOW: Duration = Duration::from_millis(2);

/// What the sinks writing on this machine (files, standard output) take in one append: far
/// more than an agent's request holds, so no batch is ever split for them.
pub(crate) const LOCAL_SINK_LIMITS: SinkLimits = SinkLimits {
    max_batch_records: 100_000,
    max_batch_bytes: 256 * 1024 * 1024,
    max_record_bytes: 64 * 1024 * 1024,
    preserves_order: true,
};

/// Settings of a [`FileLogSink`].
#[derive(Debug, Clone)]
pub struct FileLogSinkOptions {
    /// Where `result.jsonl`, `status.jsonl` and rotated files live.
    pub dir: PathBuf,
    /// A file reaching this size is renamed to `<type>-<unix time>-<sequence>.jsonl` and a new
    /// one started. Rotated files are kept; removing old ones is the operator's choice.
    pub rotate_bytes: u64,
    /// After the first append of a group arrives, the writer waits this long for more before
    /// it writes and fsyncs. Each append waits at most this much longer; in exchange, under
    /// load one fsync serves many requests instead of one or two (fsyncs were a third of the
    /// server's CPU time at 1,000 log requests/s).
    pub group_commit_window: Duration,
}

impl FileLogSinkOptions {
    /// Defaults: rotate at 256 MiB, gather for 2 ms.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        FileLogSinkOptions {
            dir: dir.into(),
            rotate_bytes: 256 * 1024 * 1024,
            group_commit_window: GROUP_COMMIT_WINDOW,
        }
    }
}

struct Append {
    log_type: LogType,
    data: Vec<u8>,
    done: oneshot::Sender<Result<()>>,
}

/// A log sink writing JSON Lines files, one per log type.
#[derive(Debug)]
pub struct FileLogSink {
    queue: mpsc::Sender<Append>,
    dir: PathBuf,
}

impl FileLogSink {
    /// Opens the sink, creating the directory, and starts its writer thread.
    ///
    /// # Errors
    /// `Backend` when the directory or files cannot be created.
    pub fn open(options: FileLogSinkOptions) -> Result<Self> {
        std::fs::create_dir_all(&options.dir).map_err(|e| Error::backend(BACKEND, e))?;
        let mut writer = Writer {
            result: LogFile::open(&options.dir, LogType::Result)?,
            status: LogFile::open(&options.dir, LogType::Status)?,
            rotate_bytes: options.rotate_bytes,
            rotations: 0,
            dir: options.dir.clone(),
        };
        let (queue, mut incoming) = mpsc::channel::<Append>(4 * MAX_GROUP);
        let window = options.group_commit_window;
        std::thread::Builder::new()
            .name("sgt-log-writer".into())
            .spawn(move || {
                while let Some(first) = incoming.blocking_recv() {
                    if !window.is_zero() {
                        std::thread::sleep(window);
                    }
                    let mut group = vec![first];
                    while group.len() < MAX_GROUP {
                        match incoming.try_recv() {
                            Ok(next) => group.push(next),
                            Err(_) => break,
                        }
                    }
                    writer.commit(group);
                }
            })
            .map_err(|e| Error::backend(BACKEND, e))?;
        Ok(FileLogSink {
            queue,
            dir: options.dir,
        })
    }

    /// The directory holding the files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Every file of `log_type`, oldest first (rotated files, then the current one).
    ///
    /// # Errors
    /// `Backend` when the directory cannot be listed.
    pub fn files(&self, log_type: LogType) -> Result<Vec<PathBuf>> {
        let prefix = format!("{}-", log_type.as_str());
        let mut rotated: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .map_err(|e| Error::backend(BACKEND, e))?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(&prefix) && n.ends_with(".jsonl"))
            })
            .collect();
        rotated.sort();
        rotated.push(current_path(&self.dir, log_type));
        Ok(rotated)
    }
}

fn current_path(dir: &Path, log_type: LogType) -> PathBuf {
    dir.join(format!("{}.jsonl", log_type.as_str()))
}

struct LogFile {
    log_type: LogType,
    path: PathBuf,
    file: File,
    len: u64,
}

impl LogFile {
    fn open(dir: &Path, log_type: LogType) -> Result<Self> {
        let path = current_path(dir, log_type);
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| Error::backend(BACKEND, e))?;
        let len = file
            .metadata()
            .map_err(|e| Error::backend(BACKEND, e))?
            .len();
        Ok(LogFile {
            log_type,
            path,
            file,
            len,
        })
    }

    /// Appends `data` unless it is empty; returns the bytes written.
    fn append_if_any(&mut self, data: &[u8]) -> std::io::Result<u64> {
        if data.is_empty() {
            return Ok(0);
        }
        self.append(data)?;
        Ok(data.len() as u64)
    }

    /// Appends without syncing; on failure cuts the file back so no partial line remains.
    fn append(&mut self, data: &[u8]) -> std::io::Result<()> {
        if let Err(e) = self.file.write_all(data) {
            let _ = self.file.set_len(self.len);
            return Err(e);
        }
        Ok(())
    }

    /// Makes the appended `written` bytes durable; on failure cuts them off again.
    fn sync(&mut self, written: u64) -> std::io::Result<()> {
        if let Err(e) = self.file.sync_data() {
            let _ = self.file.set_len(self.len);
            return Err(e);
        }
        self.len += written;
        Ok(())
    }
}

struct Writer {
    result: LogFile,
    status: LogFile,
    rotate_bytes: u64,
    rotations: u64,
    dir: PathBuf,
}

impl Writer {
    fn commit(&mut self, group: Vec<Append>) {
        let mut result_data = Vec::new();
        let mut status_data = Vec::new();
        for append in &group {
            match append.log_type {
                LogType::Result => result_data.extend_from_slice(&append.data),
                LogType::Status => status_data.extend_from_slice(&append.data),
            }
        }
        // Both files are written before either is synced, so the first sync's journal commit
        // carries both and the second has little left to do.
        let result_written = self.result.append_if_any(&result_data);
        let status_written = self.status.append_if_any(&status_data);
        let result_outcome = self.finish(LogType::Result, result_written);
        let status_outcome = self.finish(LogType::Status, status_written);
        for append in group {
            let outcome = match append.log_type {
                LogType::Result => &result_outcome,
                LogType::Status => &status_outcome,
            };
            let reply = outcome
                .as_ref()
                .map(|_| ())
                .map_err(|e| Error::unavailable(format!("log file write failed: {e}")));
            let _ = append.done.send(reply);
        }
    }

    /// Syncs what [`LogFile::append_if_any`] wrote, then rotates the file if it is full.
    fn finish(&mut self, log_type: LogType, written: std::io::Result<u64>) -> std::io::Result<()> {
        let written = written?;
        if written == 0 {
            return Ok(());
        }
        let file = match log_type {
            LogType::Result => &mut self.result,
            LogType::Status => &mut self.status,
        };
        file.sync(written)?;
        if file.len >= self.rotate_bytes {
            self.rotations += 1;
            if let Err(e) = self.rotate(log_type) {
                // The lines are durable in the current file; rotation is retried next time.
                tracing::warn!(error = %e, "log file rotation failed");
            }
        }
        Ok(())
    }

    fn rotate(&mut self, log_type: LogType) -> std::io::Result<()> {
        let file = match log_type {
            LogType::Result => &mut self.result,
            LogType::Status => &mut self.status,
        };
        let rotated = self.dir.join(format!(
            "{}-{:012}-{:06}.jsonl",
            log_type.as_str(),
            now_unix(),
            self.rotations
        ));
        std::fs::rename(&file.path, &rotated)?;
        sync_dir(&self.dir)?;
        *file = LogFile::open(&self.dir, file.log_type).map_err(std::io::Error::other)?;
        Ok(())
    }
}

#[async_trait]
impl LogSink for FileLogSink {
    async fn append(&self, batch: &LogBatch) -> Result<()> {
        if batch.lines.is_empty() {
            return Ok(());
        }
        let mut data = Vec::with_capacity(batch.lines.iter().map(|l| l.get().len() + 160).sum());
        for record in batch.records() {
            data.extend_from_slice(record.as_bytes());
            data.push(b'\n');
        }
        let (done, finished) = oneshot::channel();
        self.queue
            .send(Append {
                log_type: batch.log_type,
                data,
                done,
            })
            .await
            .map_err(|_| Error::unavailable("log writer stopped"))?;
        finished
            .await
            .map_err(|_| Error::unavailable("log writer stopped"))?
    }

    fn limits(&self) -> SinkLimits {
        LOCAL_SINK_LIMITS
    }
}
