//! The run queue of `dirsync serve`: syncs asked for by the schedule, the
//! API or an admin run one at a time on one store, in order. An ask while an
//! equivalent run (same sources, same kind of read) is queued or running is
//! coalesced: it gets that run's id instead of stacking another. Every
//! queued run has its record in the store from the start (status `queued`),
//! so its id can be looked up at once. The worker also keeps each source's
//! health (last outcome, consecutive failures) for `/readyz`, the metrics
//! and the scheduler's retries.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tracing::{info, warn};

use crate::config::Config;
use crate::engine::history::RunStatus;
use crate::engine::sync::{SourceStatus, SyncOptions, SyncOutcome};
use crate::store::{on_store, Store, StoreError};
use crate::time::Timestamp;

/// The configuration a service runs with; replaced whole on reload.
pub type ConfigHandle = Arc<RwLock<Arc<Config>>>;

use crate::model::records::RunOrigin;
pub use crate::model::records::Trigger;

/// How long a queued run waits for the store's lease while another
/// instance (or a command) runs a sync on the same store.
const LEASE_WAIT: Duration = Duration::from_secs(3600);

/// A run to queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRequest {
    /// Source names (empty: every source).
    pub sources: Vec<String>,
    /// A full read even where an incremental one is possible.
    pub full: bool,
    pub trigger: Trigger,
    /// The schedule slot a scheduled run is for (a time on the cron grid).
    pub slot: Option<Timestamp>,
    /// An approval of a blocked run (never coalesced).
    pub approved: Option<Arc<crate::engine::sync::Approval>>,
    /// A live run (a source told of changes): joins only a live run still
    /// queued, never one running (it may have read before the change).
    pub live: bool,
    /// A live run that reads only the entries its source's channel named
    /// (never joined with another).
    pub touched: Option<Arc<crate::kind::live::Touched>>,
    /// The undo of a run (never joined with another).
    pub undo: Option<Undo>,
}

/// An undo to run through the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Undo {
    pub run: i64,
    pub force: bool,
    pub force_over_later: bool,
    /// The approval of a blocked undo: the users it may remove.
    pub approved: Option<Vec<i64>>,
}

impl RunRequest {
    /// A run asked for by `trigger`, for no particular slot.
    pub fn new(sources: Vec<String>, full: bool, trigger: Trigger) -> RunRequest {
        RunRequest { sources, full, trigger, slot: None, approved: None, live: false, touched: None, undo: None }
    }

    /// A live run of one source.
    pub fn live(source: &str) -> RunRequest {
        RunRequest { live: true, ..RunRequest::new(vec![source.to_string()], false, Trigger::Live) }
    }
}

#[derive(Debug, Clone)]
struct Job {
    run_id: i64,
    /// Sorted; never empty (resolved against the config when queued).
    sources: Vec<String>,
    full: bool,
    trigger: Trigger,
    slot: Option<Timestamp>,
    approved: Option<Arc<crate::engine::sync::Approval>>,
    live: bool,
    touched: Option<Arc<crate::kind::live::Touched>>,
    undo: Option<Undo>,
}

impl Job {
    fn same_as(&self, sources: &[String], full: bool, live: bool) -> bool {
        self.approved.is_none()
            && self.touched.is_none()
            && self.undo.is_none()
            && self.sources == sources
            && self.full == full
            && self.live == live
    }
}

/// How a source's runs have been going.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct SourceHealth {
    /// The last finished run's status.
    pub last_status: Option<RunStatus>,
    pub last_run_at: Option<Timestamp>,
    pub last_ok_at: Option<Timestamp>,
    /// Failed runs in a row (0 after a run that is not failed).
    pub failures: u32,
    pub last_message: Option<String>,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Job>,
    running: Option<Job>,
    stopping: bool,
    health: BTreeMap<String, SourceHealth>,
    /// Finished runs by (source list, mode, status), for the metrics.
    finished: BTreeMap<(String, String, RunStatus), u64>,
    durations: Histogram,
}

/// Run durations in seconds, in Prometheus' cumulative buckets.
#[derive(Debug, Clone, Default)]
pub struct Histogram {
    /// Counts per upper bound in [`Histogram::BOUNDS`] (not cumulative).
    pub counts: [u64; 8],
    pub sum: f64,
    pub count: u64,
}

impl Histogram {
    pub const BOUNDS: [f64; 8] = [0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 1800.0];

    pub fn observe(&mut self, v: f64) {
        if let Some(i) = Self::BOUNDS.iter().position(|b| v <= *b) {
            self.counts[i] += 1;
        }
        self.sum += v;
        self.count += 1;
    }
}

/// Why a run could not be queued.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("no source is named \"{0}\"")]
    UnknownSource(String),
    #[error("source \"{0}\" is pushed to by its identity provider (SCIM): a sync cannot read it")]
    Pushed(String),
    #[error("the service is stopping")]
    Stopping,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The queue and its worker's shared state; cheap to clone.
#[derive(Clone)]
pub struct Runner {
    state: Arc<Mutex<State>>,
    submitting: Arc<tokio::sync::Mutex<()>>,
    wake: Arc<Notify>,
    cfg: ConfigHandle,
    store: Arc<dyn Store>,
    /// Entries read by the running sync (progress).
    pub progress: Arc<AtomicU64>,
    /// This instance's name in the run history.
    instance: Arc<RwLock<String>>,
    /// Each finished run's id and status, as it finishes.
    done: tokio::sync::broadcast::Sender<(i64, RunStatus)>,
    /// Woken when a run has committed changes (the webhooks' deliverers).
    pub changed: Arc<Notify>,
}

impl Runner {
    pub fn new(cfg: ConfigHandle, store: Arc<dyn Store>) -> Runner {
        Runner {
            state: Arc::default(),
            submitting: Arc::default(),
            wake: Arc::new(Notify::new()),
            cfg,
            store,
            progress: Arc::new(AtomicU64::new(0)),
            instance: Arc::new(RwLock::new(crate::model::records::host_name())),
            done: tokio::sync::broadcast::channel(64).0,
            changed: Arc::new(Notify::new()),
        }
    }

    /// Each finished run's id and status from now on.
    pub fn finished_runs(&self) -> tokio::sync::broadcast::Receiver<(i64, RunStatus)> {
        self.done.subscribe()
    }

    /// Names this instance in the run history (once its port is known).
    pub fn set_instance(&self, name: String) {
        *self.instance.write().expect("instance lock") = name;
    }

    /// This instance's name in the run history.
    pub fn instance(&self) -> String {
        self.instance.read().expect("instance lock").clone()
    }

    fn origin(&self, trigger: Trigger, slot: Option<Timestamp>) -> RunOrigin {
        RunOrigin { slot, ..RunOrigin::new(trigger, &self.instance()) }
    }

    fn config(&self) -> Arc<Config> {
        self.cfg.read().expect("config lock").clone()
    }

    /// Queues a run, or returns the id of an equivalent one already queued
    /// or running. The second value says whether a new run was queued.
    pub async fn submit(&self, req: RunRequest) -> Result<(i64, bool), QueueError> {
        let cfg = self.config();
        let mut sources = if req.sources.is_empty() {
            cfg.sources.iter().filter(|s| !s.is_pushed()).map(|s| s.name.clone()).collect::<Vec<_>>()
        } else {
            for n in &req.sources {
                match cfg.sources.iter().find(|s| &s.name == n) {
                    None => return Err(QueueError::UnknownSource(n.clone())),
                    Some(s) if s.is_pushed() => return Err(QueueError::Pushed(n.clone())),
                    Some(_) => {}
                }
            }
            req.sources.clone()
        };
        sources.sort();
        sources.dedup();
        // One ask at a time from here: two equal asks must not both queue.
        let _one = self.submitting.lock().await;
        if req.approved.is_none() && req.touched.is_none() && req.undo.is_none() {
            if let Some(id) = self.coalesce(&sources, req.full, req.live)? {
                return Ok((id, false));
            }
        } else if self.state.lock().expect("queue lock").stopping {
            return Err(QueueError::Stopping);
        }
        let label = crate::engine::history::RunSources::new(sources.iter().map(String::as_str));
        // An approval lifts the thresholds: recorded as forced.
        let forced = req.approved.is_some() || req.undo.as_ref().is_some_and(|u| u.force);
        let origin = self.origin(req.trigger, req.slot);
        // An API ask for a read as usual joins an equal run another instance
        // sharing the store has queued or running (a scheduled one has its
        // slot; a full read and an approval are asked for as such).
        let joinable =
            req.trigger == Trigger::Api && !req.full && req.approved.is_none() && !req.live && req.undo.is_none();
        let at = crate::engine::history::now();
        let (id, new) = on_store(&*self.store, move |s| match joinable {
            true => s.queue_or_join(&label, at, &origin),
            false => s.queue_run(&label, at, forced, &origin).map(|id| (id, true)),
        })
        .await?;
        if !new {
            info!(run = id, "an equal run of another instance is queued or running: joined it");
            return Ok((id, false));
        }
        self.state.lock().expect("queue lock").queue.push_back(Job {
            run_id: id,
            sources,
            full: req.full,
            trigger: req.trigger,
            slot: req.slot,
            approved: req.approved.clone(),
            live: req.live,
            touched: req.touched.clone(),
            undo: req.undo.clone(),
        });
        info!(run = id, trigger = ?req.trigger, "sync queued");
        self.wake.notify_one();
        Ok((id, true))
    }

    /// Queues a run at the front (a retry of the run that just failed).
    async fn submit_front(&self, req: RunRequest) -> Result<i64, QueueError> {
        let _one = self.submitting.lock().await;
        let label = crate::engine::history::RunSources::new(req.sources.iter().map(String::as_str));
        let forced = req.approved.is_some() || req.undo.as_ref().is_some_and(|u| u.force);
        let origin = self.origin(req.trigger, req.slot);
        let id = on_store(&*self.store, move |s| s.queue_run(&label, crate::engine::history::now(), forced, &origin))
            .await?;
        let mut st = self.state.lock().expect("queue lock");
        if st.stopping {
            return Err(QueueError::Stopping);
        }
        st.queue.push_front(Job {
            run_id: id,
            sources: req.sources,
            full: req.full,
            trigger: req.trigger,
            slot: req.slot,
            approved: req.approved,
            live: req.live,
            touched: req.touched,
            undo: req.undo,
        });
        Ok(id)
    }

    fn coalesce(&self, sources: &[String], full: bool, live: bool) -> Result<Option<i64>, QueueError> {
        let st = self.state.lock().expect("queue lock");
        if st.stopping {
            return Err(QueueError::Stopping);
        }
        let queued = st.queue.iter().find(|j| j.same_as(sources, full, live));
        let running = st.running.as_ref().filter(|j| !live && j.same_as(sources, full, live));
        Ok(queued.or(running).map(|j| j.run_id))
    }

    /// The runs waiting, oldest first, and the one running.
    pub fn queued(&self) -> (Vec<i64>, Option<i64>) {
        let st = self.state.lock().expect("queue lock");
        (st.queue.iter().map(|j| j.run_id).collect(), st.running.as_ref().map(|j| j.run_id))
    }

    /// Each source's health.
    pub fn health(&self) -> BTreeMap<String, SourceHealth> {
        self.state.lock().expect("queue lock").health.clone()
    }

    /// Finished runs counted by (sources, mode, status), and run durations in seconds.
    pub fn finished(&self) -> (BTreeMap<(String, String, RunStatus), u64>, Histogram) {
        let st = self.state.lock().expect("queue lock");
        (st.finished.clone(), st.durations.clone())
    }

    /// Stops taking work: queued runs are dropped (marked interrupted), the
    /// running one finishes. [`Runner::work`] returns once it is idle.
    pub fn stop(&self) {
        let dropped: Vec<i64> = {
            let mut st = self.state.lock().expect("queue lock");
            st.stopping = true;
            st.queue.drain(..).map(|j| j.run_id).collect()
        };
        if !dropped.is_empty() {
            info!(runs = ?dropped, "queued runs dropped: the service is stopping");
        }
        self.wake.notify_one();
    }

    /// Whether nothing is running or queued.
    pub fn idle(&self) -> bool {
        let st = self.state.lock().expect("queue lock");
        st.running.is_none() && st.queue.is_empty()
    }

    /// The worker: runs queued jobs one at a time until [`Runner::stop`].
    pub async fn work(&self) {
        loop {
            let job = {
                let mut st = self.state.lock().expect("queue lock");
                if st.stopping {
                    st.running = None;
                    break;
                }
                let job = st.queue.pop_front();
                st.running = job.clone();
                job
            };
            let Some(job) = job else {
                self.wake.notified().await;
                continue;
            };
            let t0 = Instant::now();
            self.progress.store(0, std::sync::atomic::Ordering::Relaxed);
            let cfg = self.config();
            let opts = SyncOptions {
                sources: job.sources.clone(),
                full: job.full,
                run_id: Some(job.run_id),
                approved: job.approved.clone(),
                // An approval lifts the thresholds: recorded as a forced run.
                force: job.approved.is_some(),
                origin: self.origin(job.trigger, job.slot),
                lease_wait: Some(LEASE_WAIT),
                live: job.live,
                touched: job.touched.clone(),
                ..SyncOptions::default()
            };
            info!(run = job.run_id, sources = %job.sources.join(","), full = job.full, trigger = ?job.trigger, "sync started");
            let result = match &job.undo {
                Some(u) => self.undo(&cfg, &job, u).await,
                None => crate::engine::sync::run(&cfg, &*self.store, &opts, self.progress.clone()).await,
            };
            if let Some(o) = result.as_ref().ok().filter(|o| o.slot_taken) {
                info!(run = job.run_id, "{}", o.message.as_deref().unwrap_or_default());
                self.state.lock().expect("queue lock").running = None;
                continue;
            }
            // The store changed under the run (a field set through the API
            // meanwhile): once, at once, before anything queued after it.
            let again = matches!(&result, Ok(o) if o.retryable) && job.trigger != Trigger::Retry;
            // A live run (a poll, say) that changed nothing and skipped nothing
            // leaves no record: its warnings are in the log.
            let quiet =
                matches!(&result, Ok(o) if o.status == RunStatus::Ok && o.counts.changes() == 0 && o.errors.is_empty());
            if job.live && quiet {
                let id = job.run_id;
                if let Err(e) = on_store(&*self.store, move |s| s.forget_quiet_run(id)).await {
                    warn!(run = id, "the record of a live run that changed nothing was kept: {e}");
                }
            }
            if !quiet {
                self.changed.notify_waiters();
            }
            let status = match &result {
                Ok(o) => o.status,
                Err(_) => RunStatus::Failed,
            };
            self.finish(&job, result, t0.elapsed());
            let _ = self.done.send((job.run_id, status));
            if again {
                let req = RunRequest {
                    sources: job.sources.clone(),
                    full: job.full,
                    trigger: Trigger::Retry,
                    slot: None,
                    approved: job.approved.clone(),
                    live: job.live,
                    touched: job.touched.clone(),
                    undo: job.undo.clone(),
                };
                match self.submit_front(req).await {
                    Ok(id) => info!(run = id, after = job.run_id, "the store changed during the run: running it again"),
                    Err(e) => warn!("the run could not be queued again: {e}"),
                }
            }
        }
        let (at, me) = (crate::engine::history::now(), self.instance());
        let _ = on_store(&*self.store, move |s| s.abandon_queued(at, Some(&me))).await;
    }

    /// Runs a queued undo; its outcome as a sync's, for the history's
    /// bookkeeping.
    async fn undo(
        &self,
        cfg: &Arc<Config>,
        job: &Job,
        u: &Undo,
    ) -> Result<SyncOutcome, crate::engine::sync::SyncError> {
        let opts = crate::engine::undo::UndoOptions {
            dry_run: false,
            force: u.force,
            force_over_later: u.force_over_later,
            origin: self.origin(job.trigger, None),
            queued: Some(job.run_id),
            approved: u.approved.clone(),
        };
        let (cfg2, run, id) = (cfg.clone(), u.run, job.run_id);
        let done = on_store(&*self.store, move |s| crate::engine::undo::undo(&cfg2, s, run, &opts)).await;
        let label = crate::engine::history::RunSources::new(job.sources.iter().map(String::as_str));
        let mut o = SyncOutcome::new(Some(id), false, &label);
        o.mode = crate::model::records::RunMode::Undo;
        match done {
            Ok(u) => {
                (o.status, o.counts, o.message) = (u.status, u.counts, u.message);
                if o.status == RunStatus::Ok && cfg.sources.iter().any(|s| s.writeback.is_some()) {
                    if let Err(e) = crate::engine::writeback::push(cfg, &*self.store, false).await {
                        warn!(run = id, "the undo was applied; the write-back push failed: {e}");
                    }
                }
            }
            Err(e) => {
                // Recorded as failed, if the undo had not recorded it.
                o.status = RunStatus::Failed;
                o.message = Some(e.to_string());
                let at = crate::engine::history::now();
                let record = crate::engine::history::RunRecord {
                    id,
                    started_at: at,
                    finished_at: Some(at),
                    sources: label,
                    status: RunStatus::Failed,
                    forced: u.force,
                    counts: Default::default(),
                    errors: Vec::new(),
                    warnings: Vec::new(),
                    message: o.message.clone(),
                    mode: crate::model::records::RunMode::Undo,
                    origin: self.origin(job.trigger, None),
                };
                let _ = on_store(&*self.store, move |s| s.transaction(&mut |tx| tx.finish_run(&record))).await;
            }
        }
        Ok(o)
    }

    fn finish(&self, job: &Job, result: Result<SyncOutcome, crate::engine::sync::SyncError>, took: Duration) {
        let (status, mode, message) = match &result {
            Ok(o) => (o.status, o.mode.as_str().to_string(), o.message.clone()),
            Err(e) => (RunStatus::Failed, if job.full { "full" } else { "auto" }.to_string(), Some(e.to_string())),
        };
        match &result {
            Ok(o) => {
                info!(run = job.run_id, status = status.as_str(), mode = %o.mode, changes = o.counts.changes(), secs = took.as_secs_f64(), "sync finished")
            }
            Err(e) => warn!(run = job.run_id, "sync failed: {e}"),
        }
        let at = crate::engine::history::now();
        let mut st = self.state.lock().expect("queue lock");
        st.running = None;
        *st.finished.entry((job.sources.join(","), mode, status)).or_default() += 1;
        st.durations.observe(took.as_secs_f64());
        for s in &job.sources {
            // In a partial run each source has its own outcome.
            let own = result.as_ref().ok().and_then(|o| o.sources.iter().find(|x| &x.name == s));
            let (status, message) = match own {
                Some(x) if status == RunStatus::Partial => match x.status {
                    SourceStatus::Failed => (RunStatus::Failed, x.message.clone()),
                    SourceStatus::Blocked => (RunStatus::Blocked, x.message.clone()),
                    SourceStatus::Ok => (RunStatus::Ok, None),
                },
                _ => (status, message.clone()),
            };
            let h = st.health.entry(s.clone()).or_default();
            h.last_status = Some(status);
            h.last_run_at = Some(at);
            h.last_message = message;
            if status == RunStatus::Failed {
                h.failures += 1;
            } else {
                h.failures = 0;
                h.last_ok_at = Some(at);
            }
        }
    }
}
