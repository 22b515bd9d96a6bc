use bytes::Bytes;
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

use sgt_core::blobs::BlobKey;
use sgt_core::error::{Error, Result};
use sgt_core::log_sink::{LogBatch, LogType};
use sgt_core::store::Node;
use sgt_core::types::{now_unix, EnvironmentName};

use super::{awaiting_approval, AgentService};

/// Deepest nesting of objects and arrays accepted in a log line. osquery's lines nest four or
/// five levels; the limit keeps lines that would break a consumer's parser out of the sink.
pub(super) const MAX_LINE_DEPTH: usize = 32;

/// Whether `json` nests objects and arrays deeper than [`MAX_LINE_DEPTH`]. Counting opening
/// brackets first (a loop the compiler vectorises) settles the usual line, which has a few,
/// without walking it byte by byte.
fn nests_too_deep(json: &str) -> bool {
    let openings = json.bytes().filter(|b| matches!(b, b'{' | b'[')).count();
    openings > MAX_LINE_DEPTH && nesting_depth(json) > MAX_LINE_DEPTH
}

/// The deepest nesting of objects and arrays in a JSON text (brackets inside strings do not
/// count).
fn nesting_depth(json: &str) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    for byte in crate::server::json_text::outside_strings(json) {
        match byte {
            b'{' | b'[' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// The blob-store folder of log lines too large for the log sink.
pub const OVERSIZE_LINE_PREFIX: &str = "log-lines";

/// Where a log line too large for the log sink is kept: `log-lines/<environment>/<sha256 of
/// the line>.json`. The same line sent again lands on the same key.
pub fn oversize_line_key(environment: &EnvironmentName, sha256_hex: &str) -> Result<BlobKey> {
    BlobKey::parse(format!(
        "{OVERSIZE_LINE_PREFIX}/{}/{sha256_hex}.json",
        environment.as_str()
    ))
}

impl AgentService {
    /// Keeps `line` whole in the blob store and returns the small line that stands for it in
    /// the sink: `{"sgt_oversize_line":{"blob":KEY,"bytes":N,"sha256":HEX}}`.
    async fn set_aside(&self, node: &Node, line: &RawValue) -> Result<Box<RawValue>> {
        let text = line.get();
        let sha256 = hex::encode(Sha256::digest(text.as_bytes()));
        let key = oversize_line_key(&node.environment, &sha256)?;
        self.backends
            .blobs
            .put(&key, Bytes::copy_from_slice(text.as_bytes()))
            .await?;
        tracing::info!(
            node = %node.id.as_str(),
            bytes = text.len(),
            blob = %key,
            "a log line too large for the log sink was kept in the blob store"
        );
        let pointer = serde_json::json!({"sgt_oversize_line": {
            "blob": key.as_str(),
            "bytes": text.len(),
            "sha256": sha256,
        }});
        serde_json::value::to_raw_value(&pointer).map_err(|e| Error::backend("log lines", e))
    }

    /// Stores a node's log lines; returns once every line is durable in the sink.
    ///
    /// Every line must be a JSON object (osquery never sends anything else). Batches larger
    /// than the sink takes at once are split; if a later part fails, earlier parts stay
    /// stored and the agent's resend stores them again (at-least-once).
    ///
    /// # Errors
    /// `Forbidden` for a node awaiting approval (the agent keeps its lines and sends them
    /// again once approved); `InvalidInput` when a line is not an object or nests too deep;
    /// the blob store's or the
    /// sink's error otherwise (the caller must then answer with an error so the agent keeps
    /// the lines).
    pub async fn ingest_logs(
        &self,
        node: &Node,
        log_type: LogType,
        mut lines: Vec<Box<RawValue>>,
    ) -> Result<usize> {
        if node.pending {
            return Err(awaiting_approval());
        }
        let sink = &self.backends.log_sink;
        let limits = sink.limits();
        for (i, line) in lines.iter().enumerate() {
            if !line.get().trim_start().starts_with('{') {
                return Err(Error::invalid_input(format!(
                    "log line {i} is not a JSON object"
                )));
            }
            if nests_too_deep(line.get()) {
                return Err(Error::invalid_input(format!(
                    "log line {i} nests deeper than {MAX_LINE_DEPTH} levels"
                )));
            }
        }
        // A line the sink cannot store whole (Firehose: 1,000 KiB a record; osquery sends up
        // to 1 MiB) is kept in the blob store, and the sink gets a line saying where. Refusing
        // it would make the agent resend the same batch for ever.
        for line in &mut lines {
            if line.get().len() > limits.max_record_bytes {
                *line = self.set_aside(node, line).await?;
            }
        }
        let count = lines.len();
        let received_at = now_unix();
        let mut chunk: Vec<Box<RawValue>> = Vec::new();
        let mut chunk_bytes = 0usize;
        let mut pending = lines.into_iter().peekable();
        while let Some(line) = pending.next() {
            chunk_bytes += line.get().len() + 128;
            chunk.push(line);
            let full = match pending.peek() {
                None => true,
                Some(next) => {
                    chunk.len() >= limits.max_batch_records
                        || chunk_bytes + next.get().len() + 128 > limits.max_batch_bytes
                }
            };
            if full {
                let batch = LogBatch {
                    node_id: node.id.clone(),
                    environment: node.environment.clone(),
                    log_type,
                    received_at,
                    lines: std::mem::take(&mut chunk),
                };
                let lines = batch.lines.len() as u64;
                sink.append(&batch).await?;
                self.metrics.log_lines(lines, 1);
                chunk_bytes = 0;
            }
        }
        Ok(count)
    }
}

#[cfg(test)]
mod tests {
    use super::{nesting_depth, nests_too_deep, MAX_LINE_DEPTH};

    #[test]
    fn nesting_counts_brackets_outside_strings() {
        assert_eq!(nesting_depth(r#"{"a":1}"#), 1);
        assert_eq!(nesting_depth(r#"{"a":{"b":[1,[2]]}}"#), 4);
        assert_eq!(nesting_depth(r#"{"a":"[[[{{{"}"#), 1);
        assert_eq!(nesting_depth(r#"{"a":"\"[[["}"#), 1);
        assert_eq!(
            nesting_depth(&format!("{}{}", "[".repeat(50), "]".repeat(50))),
            50
        );
        let deep = format!(
            "{}{}",
            "[".repeat(MAX_LINE_DEPTH + 1),
            "]".repeat(MAX_LINE_DEPTH + 1)
        );
        assert!(nests_too_deep(&deep));
        let wide = format!("[{}]", "[],".repeat(100) + "[]");
        assert!(!nests_too_deep(&wide), "many brackets, shallow");
        assert!(!nests_too_deep(r#"{"a":{"b":1}}"#));
    }
}
