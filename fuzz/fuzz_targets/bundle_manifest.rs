#![no_main]

libfuzzer_sys::fuzz_target!(
    init: minga_protocol::fuzzing::let_caught_panics_unwind(),
    |data: &[u8]| minga_protocol::fuzzing::bundle_manifest(data)
);
