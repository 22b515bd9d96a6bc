//! Hot paths of the agent API, in process, without TLS: what one request costs the server.
//!
//! Run: `cargo bench -p sgt-benches`. Figures go in BENCHMARKS.md with the machine.

// The server's warp filter chain, evaluated here as `sgt serve` serves it (unboxed), nests
// deeper than the default limit in release builds.
#![recursion_limit = "256"]

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use serde_json::json;
use sgt_bin::server::services::agent::{AgentService, EnrollRequest};
use sgt_bin::server::services::config_doc::default_config;
use sgt_bin::server::{App, ServiceLimits};
use sgt_core::store::Node;
use sgt_core::testkit::doubles::default_backends;
use sgt_core::types::{HostIdentifier, NodeKey};
use sgt_local::SqliteStore;

struct Fixture {
    app: App,
    service: Arc<AgentService>,
    node: Arc<Node>,
    key: NodeKey,
}

async fn fixture() -> Fixture {
    let store = Arc::new(SqliteStore::in_memory().await.unwrap());
    let (backends, value) = default_backends(store, default_config()).await;
    let app = App::new(backends, &ServiceLimits::default());
    let service = Arc::clone(app.agent());
    let key = service
        .enroll(EnrollRequest {
            enroll_secret: value,
            host_identifier: HostIdentifier::parse("bench-host").unwrap(),
            platform_type: "9".into(),
            host_details: json!({"system_info": {"uuid": "U"}}),
            source: None,
        })
        .await
        .unwrap();
    let node = service.authenticate(key.as_str()).await.unwrap();
    // What `sgt serve`'s ticker does every second: learn revoked keys and live campaigns.
    service.refresh_cache().await.unwrap();
    Fixture {
        app,
        service,
        node,
        key,
    }
}

fn log_body(key: &NodeKey, lines: usize) -> Vec<u8> {
    let data: Vec<_> = (0..lines)
        .map(|i| json!({"name": "pack_default_processes", "hostIdentifier": "bench-host", "calendarTime": "Mon Jan  6 10:00:00 2025 UTC", "unixTime": 1736157600, "epoch": 0, "counter": i, "numerics": false, "columns": {"pid": i.to_string(), "name": "sshd", "path": "/usr/sbin/sshd", "cmdline": "sshd: /usr/sbin/sshd -D [listener] 0 of 10-100 startups"}, "action": "added"}))
        .collect();
    serde_json::to_vec(&json!({"node_key": key.as_str(), "log_type": "result", "data": data}))
        .unwrap()
}

fn benches(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let fx = runtime.block_on(fixture());
    let routes = fx.app.routes();

    c.bench_function("config_render", |b| {
        b.to_async(&runtime)
            .iter(|| async { fx.service.config(&fx.node, None, false).await.unwrap() })
    });

    let read_body = serde_json::to_vec(&json!({"node_key": fx.key.as_str()})).unwrap();
    c.bench_function("distributed_read_empty_through_filters", |b| {
        b.to_async(&runtime).iter(|| async {
            let response = warp::test::request()
                .method("POST")
                .path("/api/v1/osquery/distributed/read")
                .header("content-length", read_body.len())
                .body(&read_body)
                .reply(&routes)
                .await;
            assert_eq!(response.status(), 200);
        })
    });

    let mut group = c.benchmark_group("log_ingest_through_filters");
    let body = log_body(&fx.key, 100);
    // The same batch gzipped, as osquery sends it with --logger_tls_compress.
    let gzipped = {
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&body).unwrap();
        gz.finish().unwrap()
    };
    group.throughput(Throughput::Elements(100));
    for (name, body, encoding) in [
        ("100_result_lines", body, "identity"),
        ("100_result_lines_gzip", gzipped, "gzip"),
    ] {
        group.bench_function(name, |b| {
            b.to_async(&runtime).iter_batched(
                || body.clone(),
                |body| async {
                    let response = warp::test::request()
                        .method("POST")
                        .path("/api/v1/osquery/log")
                        .header("content-length", body.len())
                        .header("content-encoding", encoding)
                        .body(body)
                        .reply(&routes)
                        .await;
                    assert_eq!(response.status(), 200);
                },
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

criterion_group!(agent_api, benches);
criterion_main!(agent_api);
