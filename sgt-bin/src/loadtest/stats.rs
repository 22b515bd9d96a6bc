//! What the simulator measures: per endpoint, counts, errors by kind and latency (an HDR
//! histogram for the whole run, and p50/p99 per second for the timeline); bytes; log lines.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// The agent endpoints, in report order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Endpoint {
    Enroll,
    Config,
    Log,
    DistributedRead,
    DistributedWrite,
    CarveStart,
    CarveBlock,
}

impl Endpoint {
    pub(crate) const ALL: [Endpoint; 7] = [
        Endpoint::Enroll,
        Endpoint::Config,
        Endpoint::Log,
        Endpoint::DistributedRead,
        Endpoint::DistributedWrite,
        Endpoint::CarveStart,
        Endpoint::CarveBlock,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Endpoint::Enroll => "enroll",
            Endpoint::Config => "config",
            Endpoint::Log => "log",
            Endpoint::DistributedRead => "distributed_read",
            Endpoint::DistributedWrite => "distributed_write",
            Endpoint::CarveStart => "carve_start",
            Endpoint::CarveBlock => "carve_block",
        }
    }
}

/// One endpoint's numbers for the whole run.
#[derive(Debug)]
struct EndpointStats {
    latency_us: Histogram<u64>,
    errors: BTreeMap<String, u64>,
    /// Latencies (µs) and errors of the current second, for the timeline.
    window: Vec<u32>,
    window_errors: u64,
}

impl EndpointStats {
    fn new() -> Self {
        EndpointStats {
            // 1 µs to 10 min at 3 significant digits.
            latency_us: Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid bounds"),
            errors: BTreeMap::new(),
            window: Vec::new(),
            window_errors: 0,
        }
    }
}

/// One second of the timeline for one endpoint.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct SecondPoint {
    /// Requests completed in that second.
    pub(crate) requests: u64,
    /// Of which failed.
    pub(crate) errors: u64,
    /// Median latency in ms (0 without requests).
    pub(crate) p50_ms: f64,
    /// 99th percentile latency in ms.
    pub(crate) p99_ms: f64,
}

/// Everything measured, shared by all simulated agents.
#[derive(Debug)]
pub(crate) struct Stats {
    endpoints: Vec<EndpointStats>,
    /// Per second since the start: one point per endpoint, in [`Endpoint::ALL`] order.
    pub(crate) timeline: Vec<Vec<SecondPoint>>,
    pub(crate) bytes_sent: u64,
    pub(crate) bytes_received: u64,
    pub(crate) agents_enrolled: u64,
    pub(crate) reenrolls: u64,
    pub(crate) result_lines_sent: u64,
    pub(crate) status_lines_sent: u64,
    pub(crate) result_lines_acknowledged: u64,
    pub(crate) status_lines_acknowledged: u64,
    pub(crate) queries_answered: u64,
    pub(crate) carves_completed: u64,
}

impl Stats {
    pub(crate) fn new() -> Self {
        Stats {
            endpoints: Endpoint::ALL.iter().map(|_| EndpointStats::new()).collect(),
            timeline: Vec::new(),
            bytes_sent: 0,
            bytes_received: 0,
            agents_enrolled: 0,
            reenrolls: 0,
            result_lines_sent: 0,
            status_lines_sent: 0,
            result_lines_acknowledged: 0,
            status_lines_acknowledged: 0,
            queries_answered: 0,
            carves_completed: 0,
        }
    }

    /// Records one request: its latency, and the error kind if it failed.
    pub(crate) fn record(&mut self, endpoint: Endpoint, latency: Duration, error: Option<&str>) {
        let stats = &mut self.endpoints[endpoint as usize];
        let micros = latency.as_micros().clamp(1, 600_000_000) as u64;
        stats.latency_us.saturating_record(micros);
        stats.window.push(micros.min(u64::from(u32::MAX)) as u32);
        if let Some(kind) = error {
            *stats.errors.entry(kind.to_owned()).or_insert(0) += 1;
            stats.window_errors += 1;
        }
    }

    /// Closes the current second of the timeline.
    pub(crate) fn close_second(&mut self) {
        let point = self
            .endpoints
            .iter_mut()
            .map(|e| {
                let mut window = std::mem::take(&mut e.window);
                window.sort_unstable();
                let at = |q: f64| -> f64 {
                    if window.is_empty() {
                        return 0.0;
                    }
                    let index = ((window.len() as f64 * q).ceil() as usize).clamp(1, window.len());
                    f64::from(window[index - 1]) / 1000.0
                };
                let point = SecondPoint {
                    requests: window.len() as u64,
                    errors: e.window_errors,
                    p50_ms: at(0.50),
                    p99_ms: at(0.99),
                };
                e.window_errors = 0;
                point
            })
            .collect();
        self.timeline.push(point);
    }

    /// Requests and errors over the last closed second, and the worst p99 of that second.
    pub(crate) fn last_second(&self) -> (u64, u64, f64) {
        self.timeline.last().map_or((0, 0, 0.0), |points| {
            (
                points.iter().map(|p| p.requests).sum(),
                points.iter().map(|p| p.errors).sum(),
                points.iter().map(|p| p.p99_ms).fold(0.0, f64::max),
            )
        })
    }

    /// The whole-run summary of one endpoint.
    pub(crate) fn summary(&self, endpoint: Endpoint, seconds: f64) -> EndpointSummary {
        let stats = &self.endpoints[endpoint as usize];
        let h = &stats.latency_us;
        let ms = |v: u64| v as f64 / 1000.0;
        let requests = h.len();
        EndpointSummary {
            endpoint: endpoint.name(),
            requests,
            errors: stats.errors.values().sum(),
            errors_by_kind: stats.errors.clone(),
            requests_per_second: if seconds > 0.0 {
                requests as f64 / seconds
            } else {
                0.0
            },
            p50_ms: ms(h.value_at_quantile(0.50)),
            p95_ms: ms(h.value_at_quantile(0.95)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            max_ms: ms(h.max()),
        }
    }
}

/// One endpoint over the whole run.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct EndpointSummary {
    pub(crate) endpoint: &'static str,
    pub(crate) requests: u64,
    pub(crate) errors: u64,
    pub(crate) errors_by_kind: BTreeMap<String, u64>,
    pub(crate) requests_per_second: f64,
    pub(crate) p50_ms: f64,
    pub(crate) p95_ms: f64,
    pub(crate) p99_ms: f64,
    pub(crate) max_ms: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_and_errors_are_kept_per_endpoint() {
        let mut stats = Stats::new();
        for ms in 1..=100u64 {
            stats.record(Endpoint::Config, Duration::from_millis(ms), None);
        }
        stats.record(Endpoint::Log, Duration::from_millis(5), Some("http 503"));
        stats.close_second();
        let config = stats.summary(Endpoint::Config, 1.0);
        assert_eq!(config.requests, 100);
        assert!((config.p50_ms - 50.0).abs() < 0.1, "{config:?}");
        assert!((config.p99_ms - 99.0).abs() < 0.1, "{config:?}");
        let log = stats.summary(Endpoint::Log, 1.0);
        assert_eq!((log.requests, log.errors), (1, 1));
        assert_eq!(log.errors_by_kind["http 503"], 1);
        let second = &stats.timeline[0];
        assert_eq!(second[Endpoint::Config as usize].requests, 100);
        assert_eq!(second[Endpoint::Config as usize].p99_ms, 99.0);
        assert_eq!(stats.last_second(), (101, 1, 99.0));
    }
}
