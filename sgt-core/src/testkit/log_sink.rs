//! Conformance cases for [`LogSink`](crate::log_sink::LogSink).

use async_trait::async_trait;
use serde_json::value::RawValue;

use crate::log_sink::{LogBatch, LogSink, LogType};
use crate::types::{EnvironmentName, NodeId};

/// A sink together with a way to read back what it made durable.
#[async_trait]
pub trait SinkUnderTest: Send + Sync {
    /// The sink.
    fn sink(&self) -> &dyn LogSink;
    /// Every record stored so far, in the order stored, as parsed JSON.
    async fn stored_records(&self) -> Vec<serde_json::Value>;
}

/// A batch of `n` result lines tagged with `tag`.
pub fn batch(tag: &str, n: usize) -> LogBatch {
    LogBatch {
        node_id: NodeId::parse("node-1").unwrap(),
        environment: EnvironmentName::parse("default").unwrap(),
        log_type: LogType::Result,
        received_at: 1000,
        lines: (0..n)
            .map(|i| {
                RawValue::from_string(format!(
                    r#"{{"name":"q","tag":"{tag}","i":{i},"columns":{{"v":"é\"x"}}}}"#
                ))
                .unwrap()
            })
            .collect(),
    }
}

/// Every appended line reads back as the wrapped record.
pub async fn appended_lines_are_readable(under_test: &dyn SinkUnderTest) {
    let b = batch("a", 3);
    under_test.sink().append(&b).await.unwrap();
    let stored = under_test.stored_records().await;
    assert_eq!(stored.len(), 3);
    for (i, record) in stored.iter().enumerate() {
        assert_eq!(record["node_id"], "node-1");
        assert_eq!(record["environment"], "default");
        assert_eq!(record["log_type"], "result");
        assert_eq!(record["line"]["i"], i);
        assert_eq!(record["line"]["columns"]["v"], "é\"x");
    }
}

/// An empty batch succeeds and stores nothing.
pub async fn empty_batch_is_accepted(under_test: &dyn SinkUnderTest) {
    under_test.sink().append(&batch("e", 0)).await.unwrap();
    assert!(under_test.stored_records().await.is_empty());
}

/// Batches appended one after another are all stored, and in that order when the sink
/// says it keeps order.
pub async fn batches_keep_their_order(under_test: &dyn SinkUnderTest) {
    for tag in ["1", "2", "3"] {
        under_test.sink().append(&batch(tag, 2)).await.unwrap();
    }
    let mut tags: Vec<String> = under_test
        .stored_records()
        .await
        .iter()
        .map(|r| r["line"]["tag"].as_str().unwrap().to_owned())
        .collect();
    if !under_test.sink().limits().preserves_order {
        tags.sort();
    }
    assert_eq!(tags, ["1", "1", "2", "2", "3", "3"]);
}

/// Many concurrent appends all land, each batch's lines contiguous or not, none lost.
pub async fn concurrent_appends_lose_nothing(under_test: &dyn SinkUnderTest) {
    let batches: Vec<LogBatch> = (0..20).map(|i| batch(&i.to_string(), 5)).collect();
    let appends = batches.iter().map(|b| under_test.sink().append(b));
    for result in futures_util::future::join_all(appends).await {
        result.unwrap();
    }
    let stored = under_test.stored_records().await;
    assert_eq!(stored.len(), 100);
    for i in 0..20 {
        let tag = i.to_string();
        let n = stored
            .iter()
            .filter(|r| r["line"]["tag"] == tag.as_str())
            .count();
        assert_eq!(n, 5, "batch {i}");
    }
}
