//! Fuzzes the `enroll` endpoint(s) through `sgt_bin::server::fuzzing::Harness::fuzz`.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use sgt_bin::server::paths;
use sgt_bin::server::fuzzing::Harness;

fuzz_target!(|data: &[u8]| {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(Harness::new).fuzz(&[paths::ENROLL], data);
});
