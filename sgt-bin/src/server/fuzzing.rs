//! A harness for fuzzing the agent API (feature `fuzzing`): every request parser, through the
//! real warp filter chain and handlers of an [`App`], on the in-memory store with one enrolled
//! node.
//!
//! [`Harness::request`] sends one body to one endpoint and checks what must hold for any
//! input: the answer is a JSON object (never empty), and bad input never makes a 5xx. The
//! fuzz targets in `fuzz/` call it; `cargo test -p sgt-bin --features fuzzing` runs it on
//! seed inputs so it keeps compiling.

use std::io::Write;
use std::sync::Arc;

use sgt_core::testkit::doubles::default_backends;
use sgt_core::testkit::memory_store::MemoryStore;
use sgt_core::types::{HostIdentifier, NodeKey};

use crate::server::services::agent::EnrollRequest;
use crate::server::services::config_doc::default_config;
use crate::server::{App, ServiceLimits};

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
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let (routes, key) = runtime.block_on(async {
            let (backends, value) =
                default_backends(Arc::new(MemoryStore::new()), default_config()).await;
            let app = App::new(backends, &ServiceLimits::default());
            let key = app
                .agent()
                .enroll(EnrollRequest {
                    enroll_secret: value,
                    host_identifier: HostIdentifier::parse("fuzz-host").expect("identifier"),
                    platform_type: "9".into(),
                    host_details: serde_json::json!({"system_info": {"uuid": "U"}}),
                    source: None,
                })
                .await
                .expect("enroll");
            (warp::Filter::boxed(app.routes()), key)
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

impl Harness {
    /// What every fuzz target does with its input: the first byte picks one of `paths` and
    /// the encoding (plain, gzipped, or labelled gzip but not), the rest is the body.
    ///
    /// # Panics
    /// As [`Harness::request`].
    pub fn fuzz(&self, paths: &[&str], data: &[u8]) {
        let Some((&selector, body)) = data.split_first() else {
            return;
        };
        if paths.is_empty() {
            return;
        }
        let path = paths[usize::from(selector >> 2) % paths.len()];
        let encoding = match selector & 3 {
            1 => Encoding::Gzipped,
            2 => Encoding::ClaimedGzip,
            _ => Encoding::Plain,
        };
        self.request(path, encoding, body);
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
    use crate::server::paths;

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
        for path in paths::ALL {
            for seed in seeds {
                for encoding in [Encoding::Plain, Encoding::Gzipped, Encoding::ClaimedGzip] {
                    harness.request(path, encoding, seed);
                }
            }
        }
    }
}
