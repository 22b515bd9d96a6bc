//! Fuzzes the `log` endpoint(s) through `sgt_local::fuzzing::Harness::fuzz`.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use sgt_core::http::paths;
use sgt_local::fuzzing::Harness;

fuzz_target!(|data: &[u8]| {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(Harness::new).fuzz(&[paths::LOG], data);
});
