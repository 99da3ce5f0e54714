//! Fuzz target: see `dirsync::fuzzing::mapping` for what it checks.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| dirsync::fuzzing::mapping(data));
