//! A harness for fuzzing the agent API (feature `fuzzing`): every request parser, through the
//! real warp filter chain and handlers, on an in-memory SQLite store with one enrolled node.
//!
//! [`Harness::request`] sends one body to one endpoint and checks what must hold for any
//! input: the answer is a JSON object (never empty), and bad input never makes a 5xx. The
//! fuzz targets in `fuzz/` call it; `cargo test -p sgt-local --features fuzzing` runs it on
//! seed inputs so it keeps compiling.

use std::io::Write;
use std::sync::Arc;

use async_trait::async_trait;
use sgt_core::admin::AdminService;
use sgt_core::agent::{default_config, AgentService, Backends, EnrollRequest};
use sgt_core::log_sink::{LogBatch, LogSink, SinkLimits};
use sgt_core::store::Environment;
use sgt_core::testkit::doubles::{MemoryBlobStore, MemorySecrets};
use sgt_core::testkit::secrets::new_secret;
use sgt_core::types::{EnvironmentName, HostIdentifier, NodeKey};

use crate::SqliteStore;

/// Encodes every record, as a real sink would, then drops it, so memory stays flat.
#[derive(Debug, Default)]
struct DiscardingSink;

#[async_trait]
impl LogSink for DiscardingSink {
    async fn append(&self, batch: &LogBatch) -> sgt_core::Result<()> {
        let bytes: usize = batch.records().map(|r| r.len()).sum();
        std::hint::black_box(bytes);
        Ok(())
    }

    fn limits(&self) -> SinkLimits {
        SinkLimits {
            max_batch_records: 100_000,
            max_batch_bytes: 256 * 1024 * 1024,
            max_record_bytes: 64 * 1024 * 1024,
            preserves_order: true,
        }
    }
}

/// How a fuzzed body is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// As is.
    Plain,
    /// Compressed with gzip first, so the parser behind the decoder sees the input.
    Gzipped,
    /// Labelled `Content-Encoding: gzip` but sent as is, so the decoder sees the input.
    ClaimedGzip,
}

/// The server's routes over in-memory backends, with one enrolled node whose key goes in
/// every request's `Authorization: NodeKey` header (a body without `node_key` is then
/// authenticated and reaches the handler's own checks).
pub struct Harness {
    runtime: tokio::runtime::Runtime,
    routes: warp::filters::BoxedFilter<(warp::reply::Response,)>,
    key: NodeKey,
}

impl Harness {
    /// Sets up the store, the enroll secret, the default environment and one node.
    ///
    /// # Panics
    /// When the in-memory backends cannot be set up.
    pub fn new() -> Harness {
        use warp::Filter;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let (routes, key) = runtime.block_on(async {
            let secret = new_secret("default");
            let value = secret.value.expose().to_owned();
            let backends = Backends {
                store: Arc::new(SqliteStore::in_memory().await.expect("sqlite")),
                secrets: Arc::new(MemorySecrets::new(vec![secret])),
                log_sink: Arc::new(DiscardingSink),
                blobs: Arc::new(MemoryBlobStore::new()),
            };
            backends
                .store
                .create_environment(&Environment {
                    name: EnvironmentName::default_name(),
                    config: default_config(),
                    created_at: 0,
                    config_updated_at: 0,
                })
                .await
                .expect("environment");
            let service = Arc::new(AgentService::new(backends.clone()));
            let admin =
                Arc::new(AdminService::new(backends).with_serving_cache(service.serving_cache()));
            let key = service
                .enroll(EnrollRequest {
                    enroll_secret: value,
                    host_identifier: HostIdentifier::parse("fuzz-host").expect("identifier"),
                    platform_type: "9".into(),
                    host_details: serde_json::json!({"system_info": {"uuid": "U"}}),
                })
                .await
                .expect("enroll");
            (sgt_core::http::routes(service, admin).boxed(), key)
        });
        Harness {
            runtime,
            routes,
            key,
        }
    }

    /// POSTs `body` to `path` and checks the answer.
    ///
    /// # Panics
    /// When the answer is not a JSON object, or is a 5xx: both are bugs for any input.
    pub fn request(&self, path: &str, encoding: Encoding, body: &[u8]) {
        let body = match encoding {
            Encoding::Gzipped => {
                let mut encoder =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                encoder.write_all(body).expect("gzip into memory");
                encoder.finish().expect("gzip into memory")
            }
            Encoding::Plain | Encoding::ClaimedGzip => body.to_vec(),
        };
        let mut request = warp::test::request()
            .method("POST")
            .path(path)
            .header("content-type", "application/json")
            .header("authorization", format!("NodeKey {}", self.key.as_str()))
            .header("content-length", body.len().to_string());
        if encoding != Encoding::Plain {
            request = request.header("content-encoding", "gzip");
        }
        let response = self
            .runtime
            .block_on(request.body(body).reply(&self.routes));
        let status = response.status();
        let answer: serde_json::Value = serde_json::from_slice(response.body())
            .unwrap_or_else(|e| panic!("{status}: the answer is not JSON ({e})"));
        assert!(answer.is_object(), "{status}: {answer}");
        assert!(!status.is_server_error(), "{status}: {answer}");
    }
}

impl Default for Harness {
    fn default() -> Self {
        Harness::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sgt_core::http::paths;

    #[test]
    fn seed_inputs_pass_the_harness_checks() {
        let harness = Harness::new();
        let seeds: [&[u8]; 8] = [
            b"",
            b"{",
            b"[]",
            b"{\"log_type\":\"result\",\"data\":[{\"name\":\"q\"}]}",
            b"{\"log_type\":\"status\",\"data\":[{\"severity\":\"0\",\"message\":\"m\"}]}",
            b"{\"queries\":{\"q\":[{\"a\":\"1\"}]},\"statuses\":{\"q\":0}}",
            b"{\"block_count\":1,\"block_size\":10,\"carve_size\":5,\"carve_id\":\"c\"}",
            b"{\"enroll_secret\":\"x\",\"host_identifier\":\"h\",\"host_details\":{}}",
        ];
        for path in [
            paths::ENROLL,
            paths::CONFIG,
            paths::LOG,
            paths::DISTRIBUTED_READ,
            paths::DISTRIBUTED_WRITE,
            paths::CARVE_START,
            paths::CARVE_CONTINUE,
        ] {
            for seed in seeds {
                for encoding in [Encoding::Plain, Encoding::Gzipped, Encoding::ClaimedGzip] {
                    harness.request(path, encoding, seed);
                }
            }
        }
    }
}
