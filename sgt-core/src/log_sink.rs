//! Where osquery result and status lines go.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::error::Result;
use crate::types::{EnvironmentName, NodeId, UnixSeconds};

/// The two kinds of log lines osquery sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogType {
    /// Scheduled-query results (differential, batch or snapshot lines).
    Result,
    /// osquery's own status (glog) lines.
    Status,
}

impl LogType {
    /// `"result"` or `"status"`, as in osquery's `log_type`.
    pub fn as_str(self) -> &'static str {
        match self {
            LogType::Result => "result",
            LogType::Status => "status",
        }
    }
}

/// A batch of lines from one node's log request.
#[derive(Debug, Clone)]
pub struct LogBatch {
    /// The sending node.
    pub node_id: NodeId,
    /// Its environment.
    pub environment: EnvironmentName,
    /// Result or status.
    pub log_type: LogType,
    /// When the server received the batch.
    pub received_at: UnixSeconds,
    /// The lines exactly as the agent sent them; each is a JSON object.
    pub lines: Vec<Box<RawValue>>,
}

impl LogBatch {
    /// One line wrapped as the record every sink stores:
    /// `{"node_id":…,"environment":…,"log_type":…,"received_at":…,"line":{…the line…}}`,
    /// compact, without a trailing newline.
    pub fn record(&self, line: &RawValue) -> String {
        Self::wrap(&self.record_prefix(), line)
    }

    /// Every line as a [`LogBatch::record`]; the part shared by all lines is built once.
    pub fn records(&self) -> impl Iterator<Item = String> + '_ {
        let prefix = self.record_prefix();
        self.lines.iter().map(move |l| Self::wrap(&prefix, l))
    }

    /// Everything of a record before the line itself.
    fn record_prefix(&self) -> String {
        let mut out = String::with_capacity(128);
        out.push_str("{\"node_id\":");
        push_json_string(&mut out, self.node_id.as_str());
        out.push_str(",\"environment\":");
        push_json_string(&mut out, self.environment.as_str());
        out.push_str(",\"log_type\":\"");
        out.push_str(self.log_type.as_str());
        out.push_str("\",\"received_at\":");
        out.push_str(&self.received_at.to_string());
        out.push_str(",\"line\":");
        out
    }

    /// The record of one line. Raw line breaks are dropped from the line: in valid JSON they
    /// can only be whitespace between tokens (inside strings they must be escaped), so the
    /// line means the same, and the record stays one line of a JSON Lines file or Firehose
    /// record. Kept, they would let an agent write a line that reads as a second record
    /// claiming another node.
    fn wrap(prefix: &str, line: &RawValue) -> String {
        let text = line.get();
        let mut out = String::with_capacity(prefix.len() + text.len() + 1);
        out.push_str(prefix);
        if text.bytes().any(|b| b == b'\n' || b == b'\r') {
            out.extend(text.chars().filter(|&c| c != '\n' && c != '\r'));
        } else {
            out.push_str(text);
        }
        out.push('}');
        out
    }
}

fn push_json_string(out: &mut String, value: &str) {
    // serde_json's escaping of a &str cannot fail.
    out.push_str(&serde_json::to_string(value).unwrap_or_default());
}

/// What a sink can take in one [`LogSink::append`] call (callers split batches to fit), and
/// whether it keeps order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SinkLimits {
    /// Most records per call.
    pub max_batch_records: usize,
    /// Most bytes of records per call.
    pub max_batch_bytes: usize,
    /// Largest single record the sink stores whole. The agent service keeps larger lines in
    /// the blob store and hands the sink a small line naming the blob instead.
    pub max_record_bytes: usize,
    /// True when batches appended one after another are read back in that order. Delivery
    /// streams (Firehose) do not promise it.
    pub preserves_order: bool,
}

/// A destination for log lines.
///
/// # Contract
/// - `append` returns `Ok` only once every line of the batch is durable: osquery deletes its
///   buffered lines as soon as the server answers, so an `Ok` for lines not yet safe loses them.
/// - On `Err` nothing may be assumed stored; the caller answers the agent with an error so it
///   keeps the lines and sends them again (lines may then be stored twice: at-least-once).
/// - A batch within [`LogSink::limits`] is never partly refused for its size.
///
/// # Errors
/// `Unavailable` when the destination is slow, throttled or down (retry later); `InvalidInput`
/// for a batch over the limits; `Backend` otherwise.
#[async_trait]
pub trait LogSink: Send + Sync + std::fmt::Debug + 'static {
    /// Stores the batch durably.
    async fn append(&self, batch: &LogBatch) -> Result<()>;

    /// The sink's size limits.
    fn limits(&self) -> SinkLimits;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_wraps_the_line_untouched() {
        let batch = LogBatch {
            node_id: NodeId::parse("n1").unwrap(),
            environment: EnvironmentName::parse("prod").unwrap(),
            log_type: LogType::Status,
            received_at: 7,
            lines: vec![RawValue::from_string(r#"{"a":"\"x"}"#.into()).unwrap()],
        };
        let rec: Vec<String> = batch.records().collect();
        assert_eq!(
            rec[0],
            r#"{"node_id":"n1","environment":"prod","log_type":"status","received_at":7,"line":{"a":"\"x"}}"#
        );
        let parsed: serde_json::Value = serde_json::from_str(&rec[0]).unwrap();
        assert_eq!(parsed["line"]["a"], "\"x");
    }

    #[test]
    fn a_line_with_raw_line_breaks_stays_one_record_of_its_own_node() {
        // Between tokens, a line break is valid JSON whitespace; written as sent, the middle
        // of this line would read as a record of node VICTIM in environment prod.
        let forged = "{\"a\":\r\n{\"node_id\":\"VICTIM\",\"environment\":\"prod\",\"log_type\":\"result\",\"received_at\":1,\"line\":{}}\n,\"b\":\"x\\ny\"}";
        let batch = LogBatch {
            node_id: NodeId::parse("sender").unwrap(),
            environment: EnvironmentName::parse("dev").unwrap(),
            log_type: LogType::Result,
            received_at: 7,
            lines: vec![RawValue::from_string(forged.into()).unwrap()],
        };
        let record = batch.records().next().unwrap();
        assert_eq!(record.lines().count(), 1, "{record}");
        let parsed: serde_json::Value = serde_json::from_str(&record).unwrap();
        assert_eq!(parsed["node_id"], "sender");
        assert_eq!(parsed["environment"], "dev");
        assert_eq!(parsed["line"]["a"]["node_id"], "VICTIM");
        // An escaped line break inside a string is the line's content and is kept.
        assert_eq!(parsed["line"]["b"], "x\ny");
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;
    use serde_json::Value;

    /// Any JSON value, nested a few levels, with strings that need escaping.
    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            "\\PC{0,12}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                proptest::collection::btree_map("\\PC{0,8}", inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// Every record is one valid JSON object carrying the node, environment, type, time
        /// and the line itself unchanged, whatever the line holds.
        #[test]
        fn records_carry_every_line_unchanged(
            lines in proptest::collection::vec(
                proptest::collection::btree_map("\\PC{0,8}", json_value(), 0..5),
                1..8,
            ),
            received_at in 0i64..4_000_000_000,
            pretty in any::<bool>(),
        ) {
            let values: Vec<Value> =
                lines.into_iter().map(|m| Value::Object(m.into_iter().collect())).collect();
            let batch = LogBatch {
                node_id: NodeId::generate(),
                environment: EnvironmentName::default_name(),
                log_type: LogType::Status,
                received_at,
                lines: values
                    .iter()
                    .map(|v| {
                        // Pretty-printed lines hold raw line breaks between tokens.
                        let text = if pretty {
                            serde_json::to_string_pretty(v).unwrap().replace('\n', "\r\n")
                        } else {
                            v.to_string()
                        };
                        RawValue::from_string(text).unwrap()
                    })
                    .collect(),
            };
            let records: Vec<String> = batch.records().collect();
            prop_assert_eq!(records.len(), values.len());
            for (record, line) in records.iter().zip(&values) {
                prop_assert!(!record.contains('\n') && !record.contains('\r'));
                let record: Value = serde_json::from_str(record).unwrap();
                prop_assert_eq!(&record["line"], line);
                prop_assert_eq!(record["node_id"].as_str(), Some(batch.node_id.as_str()));
                prop_assert_eq!(record["environment"].as_str(), Some("default"));
                prop_assert_eq!(record["log_type"].as_str(), Some("status"));
                prop_assert_eq!(record["received_at"].as_i64(), Some(received_at));
            }
        }
    }
}
