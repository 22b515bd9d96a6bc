//! Several log sinks at once, each taking the kinds of record it is routed.

use std::sync::Arc;

use async_trait::async_trait;

use crate::error::{Error, Result};
use crate::log_sink::{LogBatch, LogSink, LogType, SinkLimits};

/// One destination and the kinds of record it takes.
#[derive(Debug, Clone)]
pub struct LogRoute {
    /// The destination.
    pub sink: Arc<dyn LogSink>,
    /// The kinds it takes.
    pub kinds: Vec<LogType>,
}

/// A [`LogSink`] that hands each batch to every route taking its kind.
///
/// # Contract
/// - `append` returns `Ok` once every route taking the batch's kind stored it; on `Err` the
///   routes that succeeded keep their copy, so the agent's resend stores the batch there a
///   second time (at-least-once per route).
/// - Every kind is taken by at least one route: nothing acknowledged is stored nowhere.
/// - Its limits are the tightest of its routes', so a batch fits every route whole.
#[derive(Debug)]
pub struct RoutedLogSink {
    routes: Vec<LogRoute>,
    limits: SinkLimits,
}

impl RoutedLogSink {
    /// A sink over `routes`.
    ///
    /// # Errors
    /// `InvalidInput` when there is no route, or a kind that no route takes.
    pub fn new(routes: Vec<LogRoute>) -> Result<Self> {
        for kind in [LogType::Result, LogType::Status] {
            if !routes.iter().any(|r| r.kinds.contains(&kind)) {
                return Err(Error::invalid_input(format!(
                    "no log route takes {} records: they would be acknowledged and stored nowhere",
                    kind.as_str()
                )));
            }
        }
        let limits = routes
            .iter()
            .map(|r| r.sink.limits())
            .reduce(|a, b| SinkLimits {
                max_batch_records: a.max_batch_records.min(b.max_batch_records),
                max_batch_bytes: a.max_batch_bytes.min(b.max_batch_bytes),
                max_record_bytes: a.max_record_bytes.min(b.max_record_bytes),
                preserves_order: a.preserves_order && b.preserves_order,
            })
            .ok_or_else(|| Error::invalid_input("no log route"))?;
        Ok(RoutedLogSink { routes, limits })
    }
}

#[async_trait]
impl LogSink for RoutedLogSink {
    async fn append(&self, batch: &LogBatch) -> Result<()> {
        let appends = self
            .routes
            .iter()
            .filter(|r| r.kinds.contains(&batch.log_type))
            .map(|r| r.sink.append(batch));
        futures_util::future::join_all(appends)
            .await
            .into_iter()
            .collect()
    }

    fn limits(&self) -> SinkLimits {
        self.limits
    }
}

#[cfg(all(test, feature = "testkit"))]
mod tests {
    use super::*;
    use crate::testkit::doubles::{FaultyLogSink, RecordingLogSink};
    use crate::testkit::log_sink::{batch, SinkUnderTest};

    /// Two routes taking everything: the suite reads the first back.
    #[derive(Debug)]
    struct TwoRoutes {
        sink: RoutedLogSink,
        first: Arc<RecordingLogSink>,
    }

    #[async_trait]
    impl SinkUnderTest for TwoRoutes {
        fn sink(&self) -> &dyn LogSink {
            &self.sink
        }
        async fn stored_records(&self) -> Vec<serde_json::Value> {
            self.first.stored_records().await
        }
    }

    fn everything(sink: Arc<dyn LogSink>) -> LogRoute {
        LogRoute {
            sink,
            kinds: vec![LogType::Result, LogType::Status],
        }
    }

    async fn two_routes() -> Arc<TwoRoutes> {
        let first = Arc::new(RecordingLogSink::default());
        let second = Arc::new(RecordingLogSink::default());
        let sink = RoutedLogSink::new(vec![
            everything(Arc::clone(&first) as Arc<dyn LogSink>),
            everything(second),
        ])
        .unwrap();
        Arc::new(TwoRoutes { sink, first })
    }

    mod conformance {
        crate::log_sink_conformance_tests!(super::two_routes());
    }

    #[tokio::test]
    async fn each_route_gets_its_kinds_and_a_failing_one_fails_the_batch() {
        let everything_sink = Arc::new(RecordingLogSink::default());
        let statuses = Arc::new(RecordingLogSink::default());
        let sink = RoutedLogSink::new(vec![
            everything(Arc::clone(&everything_sink) as Arc<dyn LogSink>),
            LogRoute {
                sink: Arc::clone(&statuses) as Arc<dyn LogSink>,
                kinds: vec![LogType::Status],
            },
        ])
        .unwrap();
        let results = batch("r", 2);
        let mut status = batch("s", 3);
        status.log_type = LogType::Status;
        sink.append(&results).await.unwrap();
        sink.append(&status).await.unwrap();
        assert_eq!(everything_sink.stored_records().await.len(), 5);
        let kept = statuses.stored_records().await;
        assert_eq!(kept.len(), 3);
        assert!(kept.iter().all(|r| r["log_type"] == "status"));

        let failing = Arc::new(FaultyLogSink::failing_first(RecordingLogSink::default(), 1));
        let sink = RoutedLogSink::new(vec![
            everything(Arc::clone(&everything_sink) as Arc<dyn LogSink>),
            everything(failing),
        ])
        .unwrap();
        assert!(sink.append(&results).await.is_err(), "one route failed");
        sink.append(&results).await.unwrap();
        assert_eq!(
            everything_sink.stored_records().await.len(),
            9,
            "the working route got the batch twice: at-least-once"
        );
    }

    #[test]
    fn every_kind_needs_a_route() {
        let only_status = LogRoute {
            sink: Arc::new(RecordingLogSink::default()),
            kinds: vec![LogType::Status],
        };
        let refused = RoutedLogSink::new(vec![only_status]).unwrap_err();
        assert!(refused.to_string().contains("result"), "{refused}");
        assert!(RoutedLogSink::new(Vec::new()).is_err());
    }
}
