//! How a run's work is placed: heavy steps off the executor (in place on a
//! multi-thread runtime, on the blocking pool on a current-thread one),
//! source tasks aborted with the run, and the resident memory for the log.

use crate::store::Store;

/// Resident memory of this process in MiB (Linux; 0 elsewhere), for the log.
pub(super) fn rss_mib() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
    pages * 4096 / (1024 * 1024)
}

/// Runs a heavy step of a run (snapshot, plan, apply) off the executor: on
/// a multi-thread runtime in place through `block_in_place` (the worker
/// becomes a blocking thread; the runtime moves its other tasks away), on a
/// current-thread runtime on the blocking pool. Measured (BENCHMARKS.md):
/// the blocking pool for every step raised a 100,000-user first sync's peak
/// RSS from about 300 to 335 MiB (the allocator's per-thread heaps reuse
/// what the source's parsing freed only on the threads that parsed).
pub(super) async fn heavy<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> R {
    let flavor = tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor());
    if matches!(flavor, Ok(tokio::runtime::RuntimeFlavor::MultiThread)) {
        return tokio::task::block_in_place(f);
    }
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

/// A heavy step on the store, through a clone of its handle.
pub(super) async fn heavy_store<R: Send + 'static>(
    store: &dyn Store,
    f: impl FnOnce(&dyn Store) -> R + Send + 'static,
) -> R {
    let h = store.handle();
    heavy(move || f(&*h)).await
}

/// Tasks that end when their owner does: dropping a sync's future (a
/// service shutting down) aborts the reads still under way; dropping a
/// change channel stops its searches.
pub(crate) struct AbortOnDrop<T>(pub(crate) Vec<tokio::task::JoinHandle<T>>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        for h in &self.0 {
            h.abort();
        }
    }
}
