//! A load run against a log sink that fails 30 % of its batches at random: every failed batch
//! is answered with an error body (so the simulated agent keeps and resends its lines), and
//! every line the simulator was told is stored is in the sink exactly once.
//!
//! Small by default for CI; `SGT_FAULTY_SINK_AGENTS`, `SGT_FAULTY_SINK_DURATION` and
//! `SGT_FAULTY_SINK_RAMP` make it the bigger run recorded in BENCHMARKS.md.

use std::sync::Arc;

use clap::Parser;
use serde_json::Value;
use sgt_core::log_sink::LogSink;
use sgt_core::testkit::doubles::{FaultyLogSink, MemoryBlobStore};
use sgt_core::Backends;
use sgt_local::{FileLogSink, FileLogSinkOptions, FileSecrets, SqliteStore};
use sgt_tests::TestServer;

#[derive(Parser)]
struct Loadtest {
    #[command(flatten)]
    args: sgt_bin::loadtest::LoadtestArgs,
}

fn setting(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_failing_30_percent_of_batches_loses_no_acknowledged_line() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    let sink = Arc::new(FaultyLogSink::failing_share(
        FileLogSink::open(FileLogSinkOptions::new(&logs)).unwrap(),
        0.3,
    ));
    let backends = Backends {
        store: Arc::new(SqliteStore::open(dir.path().join("sgt.db")).await.unwrap()),
        secrets: Arc::new(FileSecrets::open(dir.path().join("secrets.json")).unwrap()),
        log_sink: Arc::clone(&sink) as Arc<dyn LogSink>,
        blobs: Arc::new(MemoryBlobStore::new()),
    };
    let server = TestServer::with_backends(backends).await;
    let report = dir.path().join("report.json");
    let agents = setting("SGT_FAULTY_SINK_AGENTS", "200");
    let duration = setting("SGT_FAULTY_SINK_DURATION", "12s");
    let ramp = setting("SGT_FAULTY_SINK_RAMP", "2s");
    let secret = server.enroll_secret();
    let url = server.url("");
    let ca = server.ca_file().to_str().unwrap().to_owned();
    let mut argv = vec![
        "loadtest",
        "--url",
        url.as_str(),
        "--ca-cert",
        ca.as_str(),
        "--enroll-secret",
        secret.as_str(),
        "--agents",
        agents.as_str(),
        "--duration",
        duration.as_str(),
        "--ramp",
        ramp.as_str(),
        "--sink-dir",
        logs.to_str().unwrap(),
        "--out",
        report.to_str().unwrap(),
    ];
    if std::env::var("SGT_FAULTY_SINK_AGENTS").is_err() {
        // Short intervals, so the small CI run still makes thousands of log requests.
        argv.extend(["--logger-period", "1s", "--distributed-interval", "2s"]);
    }
    let loadtest = Loadtest::parse_from(argv);
    sgt_bin::loadtest::run(loadtest.args).await.unwrap();

    let report: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let log = report["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["endpoint"] == "log")
        .unwrap()
        .clone();
    let acknowledged = report["lines_acknowledged"].as_u64().unwrap();
    let in_sink = report["lines_in_sink"].as_u64().unwrap();
    let failures = sink.failures() as u64;
    let appends = sink.calls() as u64;
    println!(
        "faulty sink: {appends} appends, {failures} failed ({:.1} %); log requests {}, errors {}; \
         lines sent {}, acknowledged {acknowledged}, in the sink {in_sink}",
        failures as f64 * 100.0 / appends.max(1) as f64,
        log["requests"],
        log["errors"],
        report["result_lines_sent"].as_u64().unwrap()
            + report["status_lines_sent"].as_u64().unwrap(),
    );
    assert!(failures > 0 && acknowledged > 0, "{report}");
    // Each log request is one append: every failed append was answered as an error.
    assert_eq!(log["errors"].as_u64().unwrap(), failures, "{log}");
    assert_eq!(
        log["errors_by_kind"]["http 503 error body"].as_u64(),
        Some(failures),
        "{log}"
    );
    // Exactly once: nothing acknowledged is missing, nothing failed was stored.
    assert_eq!(in_sink, acknowledged, "{report}");
    assert_eq!(
        report["total_errors"].as_u64().unwrap(),
        failures,
        "only log failures"
    );
    server.stop().await;
}
