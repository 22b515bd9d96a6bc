//! The server's counters, served as Prometheus text at `GET /metrics`: requests and latency
//! per endpoint, store calls per operation made on the agent paths, log lines accepted, sink
//! batches, enrolls.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::server::paths;

/// Latency histogram bucket bounds, in seconds.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// The endpoints requests are counted under.
const ENDPOINTS: [&str; 10] = [
    "enroll",
    "config",
    "log",
    "distributed_read",
    "distributed_write",
    "carve_start",
    "carve_continue",
    "admin",
    "health",
    "other",
];

/// The endpoint a request path is counted under; cheap to copy, so a request can be
/// classified before it is handled without keeping its path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoint(usize);

impl Endpoint {
    /// The endpoint of `path`: an agent endpoint, the admin API, health and metrics, or other.
    pub fn of(path: &str) -> Endpoint {
        Endpoint(endpoint_index(path))
    }
}

fn endpoint_index(path: &str) -> usize {
    match path {
        paths::ENROLL => 0,
        paths::CONFIG => 1,
        paths::LOG => 2,
        paths::DISTRIBUTED_READ => 3,
        paths::DISTRIBUTED_WRITE => 4,
        paths::CARVE_START | paths::FLEET_CARVE_START => 5,
        paths::CARVE_CONTINUE | paths::FLEET_CARVE_CONTINUE => 6,
        "/healthz" | "/metrics" => 8,
        p if p.starts_with("/api/v1/") => 7,
        _ => 9,
    }
}

/// Store operations counted on the agent paths.
#[derive(Debug, Clone, Copy)]
pub enum StoreCall {
    /// Node lookup by key (a node cache miss).
    NodeByKey,
    /// Environment read (a config cache miss, or an enroll).
    Environment,
    /// Enroll or re-key.
    EnrollNode,
    /// Enroll secret use count.
    RecordSecretUse,
    /// Pending live queries taken.
    TakePendingQueries,
    /// A live query answer stored.
    RecordResult,
    /// A carve operation.
    Carve,
    /// Coalesced last-seen write.
    RecordLastSeen,
    /// The cache refresh: keys revoked or whose node changed.
    ChangedKeys,
    /// The cache refresh: live queries.
    LiveQueries,
    /// Detail query answers applied to a node's host details (a read and a write).
    UpdateHostDetails,
    /// The cache refresh: label definitions.
    Labels,
    /// A dynamic label's answer changed a node's membership.
    LabelMembership,
}

const STORE_CALLS: [&str; 13] = [
    "node_by_key",
    "environment",
    "enroll_node",
    "record_secret_use",
    "take_pending_queries",
    "record_result",
    "carve",
    "record_last_seen",
    "changed_keys_since",
    "live_queries",
    "update_host_details",
    "list_labels",
    "set_label_member",
];

#[derive(Debug, Default)]
struct EndpointCounters {
    by_class: [AtomicU64; 3],
    /// Requests per bucket, each counted once (not cumulative).
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

/// Counters shared by the whole process; every method is lock-free.
#[derive(Debug, Default)]
pub struct Metrics {
    endpoints: [EndpointCounters; ENDPOINTS.len()],
    store_calls: [AtomicU64; STORE_CALLS.len()],
    log_lines: AtomicU64,
    sink_batches: AtomicU64,
    enrolls: AtomicU64,
    connections_open: AtomicU64,
    connections_refused: AtomicU64,
}

impl Metrics {
    /// Counts one answered request to `endpoint` with `status`, which took `elapsed`.
    pub fn record_request(&self, endpoint: Endpoint, status: u16, elapsed: Duration) {
        let e = &self.endpoints[endpoint.0];
        let class = match status {
            200..=399 => 0,
            400..=499 => 1,
            _ => 2,
        };
        e.by_class[class].fetch_add(1, Ordering::Relaxed);
        // One counter per request, in the first bucket that holds it (past the last, none);
        // `render` sums them into Prometheus' cumulative buckets.
        let seconds = elapsed.as_secs_f64();
        if let Some(bucket) = BUCKETS.iter().position(|bound| seconds <= *bound) {
            e.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        }
        e.count.fetch_add(1, Ordering::Relaxed);
        e.sum_micros
            .fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
    }

    /// Counts one store call.
    pub fn store_call(&self, call: StoreCall) {
        self.store_calls[call as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts log lines accepted into the sink, in `batches` sink calls.
    pub fn log_lines(&self, lines: u64, batches: u64) {
        self.log_lines.fetch_add(lines, Ordering::Relaxed);
        self.sink_batches.fetch_add(batches, Ordering::Relaxed);
    }

    /// Counts one successful enroll.
    pub fn enroll(&self) {
        self.enrolls.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a connection as open (it has a slot under `max_connections`).
    pub fn connection_opened(&self) {
        self.connections_open.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts an open connection as closed.
    pub fn connection_closed(&self) {
        self.connections_open.fetch_sub(1, Ordering::Relaxed);
    }

    /// Counts a connection closed unserved because the server held `max_connections`.
    pub fn connection_refused(&self) {
        self.connections_refused.fetch_add(1, Ordering::Relaxed);
    }

    /// Store calls made so far, all operations together.
    pub fn store_calls_total(&self) -> u64 {
        self.store_calls
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    }

    /// The Prometheus text exposition of every counter.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        out.push_str("# HELP sgt_http_requests_total Requests answered, by endpoint and status class.\n# TYPE sgt_http_requests_total counter\n");
        for (name, e) in ENDPOINTS.iter().zip(&self.endpoints) {
            for (class, counter) in ["2xx", "4xx", "5xx"].iter().zip(&e.by_class) {
                let _ = writeln!(
                    out,
                    "sgt_http_requests_total{{endpoint=\"{name}\",status=\"{class}\"}} {}",
                    load(counter)
                );
            }
        }
        out.push_str("# HELP sgt_http_request_duration_seconds Time to answer a request.\n# TYPE sgt_http_request_duration_seconds histogram\n");
        for (name, e) in ENDPOINTS.iter().zip(&self.endpoints) {
            let mut cumulative = 0;
            for (bound, bucket) in BUCKETS.iter().zip(&e.buckets) {
                cumulative += load(bucket);
                let _ = writeln!(
                    out,
                    "sgt_http_request_duration_seconds_bucket{{endpoint=\"{name}\",le=\"{bound}\"}} {cumulative}"
                );
            }
            let count = load(&e.count);
            let _ = writeln!(
                out,
                "sgt_http_request_duration_seconds_bucket{{endpoint=\"{name}\",le=\"+Inf\"}} {count}\nsgt_http_request_duration_seconds_sum{{endpoint=\"{name}\"}} {}\nsgt_http_request_duration_seconds_count{{endpoint=\"{name}\"}} {count}",
                load(&e.sum_micros) as f64 / 1e6
            );
        }
        out.push_str("# HELP sgt_store_calls_total Store calls made on the agent paths, by operation.\n# TYPE sgt_store_calls_total counter\n");
        for (name, counter) in STORE_CALLS.iter().zip(&self.store_calls) {
            let _ = writeln!(
                out,
                "sgt_store_calls_total{{operation=\"{name}\"}} {}",
                load(counter)
            );
        }
        let _ = writeln!(
            out,
            "# HELP sgt_log_lines_accepted_total Log lines the sink made durable.\n# TYPE sgt_log_lines_accepted_total counter\nsgt_log_lines_accepted_total {}\n# HELP sgt_sink_batches_total Batches written to the log sink.\n# TYPE sgt_sink_batches_total counter\nsgt_sink_batches_total {}\n# HELP sgt_enrolls_total Successful enrolls.\n# TYPE sgt_enrolls_total counter\nsgt_enrolls_total {}",
            load(&self.log_lines),
            load(&self.sink_batches),
            load(&self.enrolls)
        );
        let _ = writeln!(
            out,
            "# HELP sgt_connections_open Connections open now.\n# TYPE sgt_connections_open gauge\nsgt_connections_open {}\n# HELP sgt_connections_refused_total Connections closed unserved at the connection limit.\n# TYPE sgt_connections_refused_total counter\nsgt_connections_refused_total {}",
            load(&self.connections_open),
            load(&self.connections_refused)
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_counted_by_endpoint_class_and_bucket() {
        let metrics = Metrics::default();
        metrics.record_request(Endpoint::of(paths::CONFIG), 200, Duration::from_micros(700));
        metrics.record_request(Endpoint::of(paths::CONFIG), 503, Duration::from_millis(30));
        metrics.record_request(Endpoint::of("/api/v1/nodes"), 401, Duration::from_millis(1));
        metrics.store_call(StoreCall::NodeByKey);
        metrics.log_lines(10, 1);
        metrics.connection_opened();
        metrics.connection_opened();
        metrics.connection_closed();
        metrics.connection_refused();
        let text = metrics.render();
        assert!(text.contains("sgt_http_requests_total{endpoint=\"config\",status=\"2xx\"} 1"));
        assert!(text.contains("sgt_http_requests_total{endpoint=\"config\",status=\"5xx\"} 1"));
        assert!(text.contains("sgt_http_requests_total{endpoint=\"admin\",status=\"4xx\"} 1"));
        assert!(text.contains(
            "sgt_http_request_duration_seconds_bucket{endpoint=\"config\",le=\"0.001\"} 1"
        ));
        assert!(text.contains(
            "sgt_http_request_duration_seconds_bucket{endpoint=\"config\",le=\"0.05\"} 2"
        ));
        assert!(text.contains("sgt_http_request_duration_seconds_count{endpoint=\"config\"} 2"));
        assert!(text.contains("sgt_store_calls_total{operation=\"node_by_key\"} 1"));
        assert!(text.contains("sgt_log_lines_accepted_total 10"));
        assert!(text.contains("\nsgt_connections_open 1\n"));
        assert!(text.contains("\nsgt_connections_refused_total 1\n"));
        assert_eq!(metrics.store_calls_total(), 1);
    }
}
