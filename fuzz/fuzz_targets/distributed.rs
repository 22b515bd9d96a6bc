//! Fuzzes the `distributed` endpoint(s): the first byte picks the endpoint and how the body is
//! encoded (plain, gzipped, or labelled gzip but not), the rest is the body.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use sgt_core::http::paths;
use sgt_local::fuzzing::{Encoding, Harness};

const PATHS: &[&str] = &[paths::DISTRIBUTED_READ, paths::DISTRIBUTED_WRITE];

fuzz_target!(|data: &[u8]| {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    let harness = HARNESS.get_or_init(Harness::new);
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let path = PATHS[usize::from(selector >> 2) % PATHS.len()];
    let encoding = match selector & 3 {
        1 => Encoding::Gzipped,
        2 => Encoding::ClaimedGzip,
        _ => Encoding::Plain,
    };
    harness.request(path, encoding, body);
});
