//! Fuzz target: see `dirsync::fuzzing::scim_patch` for what it checks.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| dirsync::fuzzing::scim_patch(data));
