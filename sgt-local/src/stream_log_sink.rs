//! Records as JSON Lines on a stream: the process's standard output, for containers whose log
//! driver ships stdout.

use std::io::Write;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use sgt_core::log_sink::{LogBatch, LogSink, SinkLimits};
use sgt_core::{Error, Result};

const BACKEND: &str = "stream-log-sink";

/// A log sink writing one record per line to a stream, flushed before `append` returns.
/// Once flushed, the records are the reader's (the container runtime's log driver): that is
/// as durable as this sink can make them.
#[derive(Clone)]
pub struct StreamLogSink {
    out: Arc<Mutex<Box<dyn Write + Send>>>,
}

impl std::fmt::Debug for StreamLogSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StreamLogSink")
    }
}

impl StreamLogSink {
    /// A sink writing to the process's standard output.
    pub fn stdout() -> Self {
        Self::new(std::io::stdout())
    }

    /// A sink writing to `out`.
    pub fn new(out: impl Write + Send + 'static) -> Self {
        StreamLogSink {
            out: Arc::new(Mutex::new(Box::new(out))),
        }
    }
}

#[async_trait]
impl LogSink for StreamLogSink {
    async fn append(&self, batch: &LogBatch) -> Result<()> {
        if batch.lines.is_empty() {
            return Ok(());
        }
        let mut data = Vec::new();
        for record in batch.records() {
            data.extend_from_slice(record.as_bytes());
            data.push(b'\n');
        }
        let out = Arc::clone(&self.out);
        // A slow reader blocks the write: keep it off the async workers.
        tokio::task::spawn_blocking(move || {
            let mut out = out.lock().unwrap_or_else(|e| e.into_inner());
            out.write_all(&data)?;
            out.flush()
        })
        .await
        .map_err(|e| Error::backend(BACKEND, e))?
        .map_err(|e| Error::unavailable(format!("{BACKEND}: {e}")))
    }

    fn limits(&self) -> SinkLimits {
        crate::log_sink::LOCAL_SINK_LIMITS
    }
}
