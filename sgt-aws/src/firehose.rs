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

/// How log lines become Firehose records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RecordLayout {
    /// Consecutive newline-terminated lines packed into records of up to 1,000 KiB. Firehose
    /// bills each record as at least 5 KB and limits records per second, so this is the
    /// cheap layout; an S3 destination sees exactly the same bytes as one line per record.
    #[default]
    Packed,
    /// One newline-terminated line per record: what a destination that indexes each record
    /// as one document (OpenSearch) needs.
    LinePerRecord,
}

/// Log lines as newline-terminated JSON lines in the records of one delivery stream.
#[derive(Debug, Clone)]
pub struct FirehoseSink {
    client: aws_sdk_firehose::Client,
    stream: String,
    layout: RecordLayout,
}

impl FirehoseSink {
    /// A sink writing to the delivery stream `stream`.
    pub fn new(client: aws_sdk_firehose::Client, stream: impl Into<String>) -> Self {
        FirehoseSink {
            client,
            stream: stream.into(),
            layout: RecordLayout::default(),
        }
    }

    /// The same sink with lines laid out in records as `layout` says.
    pub fn with_layout(mut self, layout: RecordLayout) -> Self {
        self.layout = layout;
        self
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

/// The batch's lines, newline-terminated, as Firehose records laid out as `layout` says.
fn records_of(batch: &LogBatch, layout: RecordLayout) -> Result<Vec<Vec<u8>>> {
    let mut records: Vec<Vec<u8>> = Vec::new();
    let mut packed: Vec<u8> = Vec::new();
    for record in batch.records() {
        let mut line = record.into_bytes();
        line.push(b'\n');
        if line.len() > MAX_RECORD_BYTES {
            return Err(Error::invalid_input(format!(
                "a log record of {} bytes is over Firehose's {MAX_RECORD_BYTES}",
                line.len()
            )));
        }
        match layout {
            RecordLayout::LinePerRecord => records.push(line),
            RecordLayout::Packed => {
                if packed.len() + line.len() > MAX_RECORD_BYTES {
                    records.push(std::mem::take(&mut packed));
                }
                packed.extend_from_slice(&line);
            }
        }
    }
    if !packed.is_empty() {
        records.push(packed);
    }
    Ok(records)
}

#[async_trait]
impl LogSink for FirehoseSink {
    async fn append(&self, batch: &LogBatch) -> Result<()> {
        // Lines into records (one each, or packed up to the record limit) …
        let records = records_of(batch, self.layout)?;
        // … and records into PutRecordBatch calls within Firehose's limits.
        let mut chunk: Vec<Vec<u8>> = Vec::new();
        let mut chunk_bytes = 0;
        for data in records {
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

#[cfg(test)]
mod tests {
    use super::*;
    use sgt_core::types::{EnvironmentName, NodeId};

    fn batch(lines: usize, line_bytes: usize) -> LogBatch {
        let filler = "x".repeat(line_bytes);
        LogBatch {
            node_id: NodeId::parse("n1").unwrap(),
            environment: EnvironmentName::parse("prod").unwrap(),
            log_type: sgt_core::log_sink::LogType::Result,
            received_at: 1,
            lines: (0..lines)
                .map(|i| {
                    serde_json::value::RawValue::from_string(format!(
                        "{{\"i\":{i},\"f\":\"{filler}\"}}"
                    ))
                    .unwrap()
                })
                .collect(),
        }
    }

    #[test]
    fn packed_records_hold_the_same_bytes_in_fewer_records() {
        let batch = batch(1234, 100);
        let per_line = records_of(&batch, RecordLayout::LinePerRecord).unwrap();
        let packed = records_of(&batch, RecordLayout::Packed).unwrap();
        assert_eq!(per_line.len(), 1234);
        assert_eq!(packed.len(), 1);
        assert_eq!(packed.concat(), per_line.concat());
        assert!(per_line.iter().all(|r| r.ends_with(b"\n")));
    }

    #[test]
    fn packed_records_stay_under_the_record_limit_and_split_between_lines() {
        let batch = batch(50, 100_000);
        let packed = records_of(&batch, RecordLayout::Packed).unwrap();
        assert!(packed.len() > 1);
        assert!(packed.iter().all(|r| r.len() <= MAX_RECORD_BYTES));
        assert!(packed.iter().all(|r| r.ends_with(b"\n")));
        let lines: usize = packed
            .iter()
            .map(|r| r.iter().filter(|&&b| b == b'\n').count())
            .sum();
        assert_eq!(lines, 50);
    }

    #[test]
    fn a_line_over_the_record_limit_is_refused() {
        let batch = batch(1, MAX_RECORD_BYTES);
        for layout in [RecordLayout::Packed, RecordLayout::LinePerRecord] {
            let err = records_of(&batch, layout).unwrap_err();
            assert_eq!(err.kind(), sgt_core::ErrorKind::InvalidInput);
        }
    }
}
