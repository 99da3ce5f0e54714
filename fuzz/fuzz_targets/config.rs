//! Fuzz target: see `dirsync::fuzzing::config` for what it checks.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| dirsync::fuzzing::config(data));
