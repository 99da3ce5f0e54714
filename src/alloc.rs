//! The binary's allocator: mimalloc (syncs allocate many small strings on
//! several threads; it measured faster than glibc's here, BENCHMARKS.md),
//! told to give freed memory back to the system at once instead of after its
//! default 1 s. A sync frees the raw entries, the batch's interned keys and
//! the plan's scratch as it goes; held for a second, they were a fifth to a
//! quarter of the peak RSS, for 7–12% more time (BENCHMARKS.md). `MIMALLOC_PURGE_DELAY` in the
//! environment still wins. Feature `system-allocator` leaves all of it out.

use std::ffi::{c_int, c_long};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in the mimalloc this crate builds (v3's
/// `mimalloc.h`); a test checks that it is the option mimalloc reads from
/// `MIMALLOC_PURGE_DELAY`.
const PURGE_DELAY: c_int = 15;

extern "C" {
    fn mi_option_set(option: c_int, value: c_long);
    #[cfg(test)]
    fn mi_option_get(option: c_int) -> c_long;
}

/// Sets the purge delay to 0 (at once) unless the environment sets it.
pub fn tune() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: mimalloc's option setter takes any option number and
        // value; options are atomics read on each purge.
        unsafe { mi_option_set(PURGE_DELAY, 0) }
    }
}

/// The purge delay in force, in milliseconds.
#[cfg(test)]
fn purge_delay() -> c_long {
    // SAFETY: reading an option has no precondition.
    unsafe { mi_option_get(PURGE_DELAY) }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHILD: &str = "DIRSYNC_ALLOC_TEST_CHILD";

    #[test]
    fn the_purge_delay_option_is_the_one_mimalloc_reads_from_its_environment() {
        if std::env::var_os(CHILD).is_some() {
            // The child: mimalloc read MIMALLOC_PURGE_DELAY=777 as it started,
            // and `tune` leaves a value the environment sets.
            tune();
            assert_eq!(purge_delay(), 777);
            return;
        }
        let name = "alloc::tests::the_purge_delay_option_is_the_one_mimalloc_reads_from_its_environment";
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", name, "--test-threads=1"])
            .env(CHILD, "1")
            .env("MIMALLOC_PURGE_DELAY", "777")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success() && stdout.contains("1 passed"), "the child: {stdout}");
    }

    #[test]
    fn tune_sets_a_short_purge_delay() {
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
            return; // the environment's value wins (the test above)
        }
        tune();
        assert_eq!(purge_delay(), 0);
    }
}
