//! Fuzz target: see `dirsync::fuzzing::tables` for what it checks.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| dirsync::fuzzing::tables(data));
