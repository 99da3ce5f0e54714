//! Fuzz target: see `dirsync::fuzzing::ldif` for what it checks.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| dirsync::fuzzing::ldif(data));
