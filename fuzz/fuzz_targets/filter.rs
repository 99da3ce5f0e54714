//! Fuzz target: see `dirsync::fuzzing::filter` for what it checks.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| dirsync::fuzzing::filter(data));
