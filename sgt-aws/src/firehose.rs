//! Log lines through Kinesis Data Firehose.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_firehose::primitives::Blob;
use aws_sdk_firehose::types::Record;
use sgt_core::log_sink::{LogBatch, LogSink, SinkLimits};
use sgt_core::{Error, Result};

use crate::errors::classify;

const BACKEND: &str = "firehose";
/// PutRecordBatch takes at most 500 records …
const MAX_RECORDS: usize = 500;
/// … and 4 MiB.
const MAX_BATCH_BYTES: usize = 4 * 1024 * 1024;
/// A record is at most 1,000 KiB.
const MAX_RECORD_BYTES: usize = 1000 * 1024;
/// Attempts for records Firehose refused, with doubling waits from 100 ms.
const ATTEMPTS: u32 = 5;

/// Log lines as newline-terminated JSON records of one delivery stream.
#[derive(Debug, Clone)]
pub struct FirehoseSink {
    client: aws_sdk_firehose::Client,
    stream: String,
}

impl FirehoseSink {
    /// A sink writing to the delivery stream `stream`.
    pub fn new(client: aws_sdk_firehose::Client, stream: impl Into<String>) -> Self {
        FirehoseSink {
            client,
            stream: stream.into(),
        }
    }

    /// A sink built from the process's one SDK configuration.
    pub fn from_config(config: &aws_config::SdkConfig, stream: &str) -> Self {
        Self::new(aws_sdk_firehose::Client::new(config), stream)
    }

    /// Sends one chunk, resending the records Firehose refused, until all are accepted.
    async fn put_chunk(&self, mut records: Vec<Vec<u8>>) -> Result<()> {
        let mut wait = Duration::from_millis(100);
        for attempt in 1..=ATTEMPTS {
            let batch: Vec<Record> = records
                .iter()
                .map(|data| {
                    Record::builder()
                        .data(Blob::new(data.clone()))
                        .build()
                        .map_err(|e| Error::backend(BACKEND, e))
                })
                .collect::<Result<_>>()?;
            let outcome = self
                .client
                .put_record_batch()
                .delivery_stream_name(&self.stream)
                .set_records(Some(batch))
                .send()
                .await;
            match outcome {
                Ok(response) if response.failed_put_count() == 0 => return Ok(()),
                Ok(response) => {
                    // Keep exactly the records that came back with an error.
                    let failed: Vec<Vec<u8>> = response
                        .request_responses()
                        .iter()
                        .zip(records)
                        .filter(|(answer, _)| answer.error_code().is_some())
                        .map(|(_, record)| record)
                        .collect();
                    tracing::warn!(
                        failed = failed.len(),
                        attempt,
                        "firehose refused records; resending them"
                    );
                    records = failed;
                }
                Err(e) => {
                    let error = classify(BACKEND, "delivery stream", e);
                    if !error.is_retryable() || attempt == ATTEMPTS {
                        return Err(error);
                    }
                    tracing::warn!(error = %error, attempt, "firehose call failed; retrying");
                }
            }
            tokio::time::sleep(wait).await;
            wait *= 2;
        }
        Err(Error::unavailable(format!(
            "firehose refused {} records {ATTEMPTS} times",
            records.len()
        )))
    }
}

#[async_trait]
impl LogSink for FirehoseSink {
    async fn append(&self, batch: &LogBatch) -> Result<()> {
        let mut chunk: Vec<Vec<u8>> = Vec::new();
        let mut chunk_bytes = 0;
        for record in batch.records() {
            let mut data = record.into_bytes();
            data.push(b'\n');
            if data.len() > MAX_RECORD_BYTES {
                return Err(Error::invalid_input(format!(
                    "a log record of {} bytes is over Firehose's {MAX_RECORD_BYTES}",
                    data.len()
                )));
            }
            if chunk.len() == MAX_RECORDS || chunk_bytes + data.len() > MAX_BATCH_BYTES {
                self.put_chunk(std::mem::take(&mut chunk)).await?;
                chunk_bytes = 0;
            }
            chunk_bytes += data.len();
            chunk.push(data);
        }
        if !chunk.is_empty() {
            self.put_chunk(chunk).await?;
        }
        Ok(())
    }

    fn limits(&self) -> SinkLimits {
        SinkLimits {
            max_batch_records: MAX_RECORDS,
            max_batch_bytes: MAX_BATCH_BYTES,
            // The record wraps the line with node and environment fields.
            max_record_bytes: MAX_RECORD_BYTES - 1024,
            preserves_order: false,
        }
    }
}
