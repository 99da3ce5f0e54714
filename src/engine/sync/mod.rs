//! The sync pipeline, end to end: sources → mapping → plan → guards → apply →
//! history. Sources stream entries into a mapping thread while the store's
//! snapshot is read; a source that fails fails the run before anything is
//! planned, let alone applied. A dry run stops after the guards.

mod approval;
mod early;
mod exec;
mod outcome;
mod steps;
pub use approval::{approval_of, Approval, ApproveError, Approved};
pub(crate) use exec::AbortOnDrop;
use exec::{heavy_store, rss_mib};
pub use outcome::{SourceOutcome, SourceStatus, SyncOutcome};

use crate::time::Timestamp;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use tracing::{debug, info, warn};

use crate::config::{Config, SourceConfig};
use crate::engine::batch::Collector;

use crate::engine::history::{now, RunMode, RunRecord, RunSources, RunStatus};
use crate::engine::plan;
use crate::kind::source::{self, EntrySink, Item, Source, SourceError};
use crate::model::records::RunOrigin;
use crate::model::{EntryError, SourceBatch};
use crate::store::{on_store, SnapshotQuery, Store, StoreError};

#[derive(Debug, Clone, Default)]
pub struct SyncOptions {
    /// Plan and check, change nothing.
    pub dry_run: bool,
    /// Lift the forceable guards (thresholds), never the empty-source rule.
    pub force: bool,
    /// Only these sources (empty: all).
    pub sources: Vec<String>,
    /// Read every source in full, even where an incremental read is possible.
    pub full: bool,
    /// The run's record, made when it was queued (`dirsync serve`'s queue);
    /// `None`: made when the run starts.
    pub run_id: Option<i64>,
    /// Just-in-time provisioning: read only this user (and the groups that
    /// list it) from the sources, create or update it, never remove anybody,
    /// save no position (mode `single`).
    pub user: Option<String>,
    /// Approval of a blocked run: the thresholds are lifted, but the run is
    /// blocked again if it would remove anybody the approved run did not plan.
    pub approved: Option<Arc<Approval>>,
    /// Let a source's first sync write its new users while it is read
    /// (`early.rs`). That holds the store's writer for the whole read, so
    /// only the CLI's `sync` asks for it: a service must keep taking writes
    /// (queued runs, API patches) while a first sync reads a slow directory.
    pub early_writes: bool,
    /// Who asked, the schedule slot, the instance: recorded with the run. A
    /// run for a slot that was already run (by another instance sharing the
    /// store) is dropped once the lease is held.
    pub origin: RunOrigin,
    /// How long to wait for the store's lease while another sync holds it
    /// (a service sharing its store with other instances); `None`: refuse at once.
    pub lease_wait: Option<std::time::Duration>,
    /// A live run: changes a source told of. Recorded with mode `live` when
    /// every source resumes, and held to the hourly guard besides the
    /// run's own.
    pub live: bool,
    /// A live run that reads only these entries (and the groups that list
    /// them), as a delta; no position is saved.
    pub touched: Option<Arc<crate::kind::live::Touched>>,
}

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("no source named \"{0}\" in the config")]
    UnknownSource(String),
    #[error("source \"{0}\" is pushed to by its identity provider (SCIM, at /scim/v2): a sync cannot read it")]
    Pushed(String),
}

/// Opens the source a config section describes: [`source::open`], or in
/// tests a fake.
pub type Opener = Arc<dyn Fn(&SourceConfig) -> Box<dyn Source> + Send + Sync>;

/// The real sources.
pub fn real_sources() -> Opener {
    Arc::new(source::open)
}

/// Reads one source and maps it: in full, or since `since` when the source can
/// (falling back to a full read when the saved position is no longer valid).
pub async fn fetch_source(
    cfg: &SourceConfig,
    progress: Arc<AtomicU64>,
    since: Option<String>,
) -> Result<SourceBatch, SourceError> {
    fetch_with(&real_sources(), cfg, progress, since).await
}

/// What `dirsync check` and "Test settings" do with a source: ask it whether
/// it works (a program's `is-valid`), then read it in full and map it,
/// changing nothing. `Ok` holds what the source said about itself.
pub async fn check_source(cfg: &SourceConfig) -> Result<(Option<String>, SourceBatch), SourceError> {
    let said = source::open(cfg).probe().await?;
    let batch = fetch_source(cfg, Arc::new(AtomicU64::new(0)), None).await?;
    Ok((said, batch))
}

/// [`fetch_source`] with the sources `open` gives.
pub async fn fetch_with(
    open: &Opener,
    cfg: &SourceConfig,
    progress: Arc<AtomicU64>,
    since: Option<String>,
) -> Result<SourceBatch, SourceError> {
    fetch_fed(open, cfg, progress, since, None).await
}

/// [`fetch_with`], sending the new users a full read maps to `feed`.
async fn fetch_fed(
    open: &Opener,
    cfg: &SourceConfig,
    progress: Arc<AtomicU64>,
    since: Option<String>,
    feed: Option<early::Feed>,
) -> Result<SourceBatch, SourceError> {
    let feed = feed.filter(|_| since.is_none());
    match read_source_as(open, cfg, progress.clone(), Read::Since(since.as_deref()), feed).await {
        Err(e) if e.refresh_required && since.is_some() => {
            warn!(source = %cfg.name, reason = %e.message, "the saved position is no longer valid; reading in full");
            read_source(open, cfg, progress, None).await
        }
        other => other,
    }
}

/// One read of a source; entries are mapped on a blocking thread while the
/// source is still reading.
async fn read_source(
    open: &Opener,
    cfg: &SourceConfig,
    progress: Arc<AtomicU64>,
    since: Option<&str>,
) -> Result<SourceBatch, SourceError> {
    read_source_as(open, cfg, progress, Read::Since(since), None).await
}

/// What a read asks of a source.
enum Read<'a> {
    /// Everything, or what changed since a saved position.
    Since(Option<&'a str>),
    /// One user by username, and the groups that list it.
    User(&'a str),
    /// The entries a change channel named.
    Touched(&'a crate::kind::live::Touched),
}

async fn read_source_as(
    open: &Opener,
    cfg: &SourceConfig,
    progress: Arc<AtomicU64>,
    read: Read<'_>,
    mut feed: Option<early::Feed>,
) -> Result<SourceBatch, SourceError> {
    let (sink, mut rx) = EntrySink::channel(progress);
    let scfg = cfg.clone();
    let source = open(cfg);
    let replays = source.replays();
    if replays {
        // A later version may replace a user already sent: nothing is written early.
        feed = None;
    }
    let mapper = tokio::task::spawn_blocking(move || {
        let mut c = if replays { Collector::replaying(&scfg) } else { Collector::new(&scfg) };
        let mut sent = 0;
        let source: std::sync::Arc<str> = scfg.name.as_str().into();
        while let Some(batch) = rx.blocking_recv() {
            for item in batch {
                match item {
                    Item::Entry(kind, entry) => c.add(kind, entry),
                    Item::Gone(kind, id) => c.gone(kind, id),
                }
            }
            // New users go to the early writer as they are mapped.
            if let Some(f) = &feed {
                let users = &c.users()[sent..];
                sent += users.len();
                let chunk: Vec<_> = users.iter().filter_map(|u| plan::new_user(&scfg, &source, u)).collect();
                if !chunk.is_empty() && !f.send(chunk) {
                    feed = None;
                }
            }
        }
        drop(feed);
        c.finish()
    });
    let whole = matches!(read, Read::Since(_));
    let fetched = match read {
        Read::Since(since) => source.fetch(sink, since).await,
        Read::User(name) => source.fetch_user(sink, name).await,
        Read::Touched(t) => source.fetch_touched(sink, t).await,
    };
    let mut batch = mapper.await.map_err(|e| SourceError::new(&cfg.name, format!("mapping failed: {e}")))?;
    let mut fetched = fetched?;
    if let Some(e) = batch.scope_error.take() {
        return Err(SourceError::new(&cfg.name, e));
    }
    // Removals reported through the sink join the read's delta; a full read
    // is judged by what it returned, so there they mean nothing.
    if let (Some(d), Some(gone)) = (fetched.delta.as_mut(), batch.delta.take()) {
        d.deleted_users.extend(gone.deleted_users);
        d.deleted_groups.extend(gone.deleted_groups);
    }
    let c = fetched.counts;
    let incremental = fetched.delta.is_some();
    info!(source = %cfg.name, users = c.users, groups = c.groups, skipped = batch.errors.len(), incremental, "source read");
    batch.delta = fetched.delta;
    batch.next_state = fetched.next_state;
    batch.warnings.extend(fetched.warnings.into_iter().map(|m| crate::model::EntryError::new(&cfg.name, m)));
    if whole && !incremental {
        if !batch.unseen_attributes.is_empty() {
            // Entries carry only the attributes asked for (LDAP): one entry
            // with all of them says what a misspelled name was meant to be.
            match source.sample_attributes().await {
                Ok(names) => batch.attribute_names.extend(names.into_iter().map(|n| n.to_ascii_lowercase())),
                Err(e) => debug!(source = %cfg.name, "no sample of attribute names: {}", e.message),
            }
        }
        judge_full_read(&cfg.name, &mut batch)?;
    }
    Ok(batch)
}

/// A full read is judged as a whole: a read whose every user entry was
/// skipped (a mapping mistake, such as `username = "uidd"`) fails the source
/// (nobody is removed or changed), with the reasons grouped; notes about
/// the whole read (a mapped attribute no entry has) become warnings.
fn judge_full_read(name: &str, batch: &mut SourceBatch) -> Result<(), SourceError> {
    if batch.user_entries > 0 && batch.users_mapped == 0 {
        let groups = crate::model::ReasonGroup::of(&batch.errors);
        let shown: Vec<String> = groups.iter().take(3).map(|g| g.line()).collect();
        let more = match groups.len() {
            n if n > 3 => format!("; and {} other reasons", n - 3),
            _ => String::new(),
        };
        let n = batch.user_entries;
        let entries = if n == 1 { "entry was" } else { "entries were" };
        let notes: String =
            crate::engine::batch::coverage::notes(batch).iter().map(|w| format!("; {}", w.reason)).collect();
        return Err(SourceError::new(
            name,
            format!("all {n} user {entries} skipped, nothing was changed: {}{more}{notes}", shown.join("; ")),
        ));
    }
    batch.warnings.extend(crate::engine::batch::coverage::notes(batch));
    if batch.user_entries == 0 {
        let what = "the read returned no user entry: check the source's user_filter and base (or its file)";
        batch.warnings.push(crate::model::EntryError::run_level(what));
    }
    Ok(())
}

/// Runs one sync of the configured sources into `store`.
pub async fn run(
    cfg: &Config,
    store: &dyn Store,
    opts: &SyncOptions,
    progress: Arc<AtomicU64>,
) -> Result<SyncOutcome, SyncError> {
    run_with(cfg, store, opts, progress, real_sources()).await
}

/// [`run`] with the sources `open` gives.
pub async fn run_with(
    cfg: &Config,
    store: &dyn Store,
    opts: &SyncOptions,
    progress: Arc<AtomicU64>,
    open: Opener,
) -> Result<SyncOutcome, SyncError> {
    // Pushed sources (SCIM) are never read: their users are not "missing".
    let selected: Vec<&SourceConfig> = if opts.sources.is_empty() {
        cfg.sources.iter().filter(|s| !s.is_pushed()).collect()
    } else {
        let mut v = Vec::new();
        for name in &opts.sources {
            let s =
                cfg.sources.iter().find(|s| &s.name == name).ok_or_else(|| SyncError::UnknownSource(name.clone()))?;
            if s.is_pushed() {
                return Err(SyncError::Pushed(name.clone()));
            }
            v.push(s);
        }
        v
    };
    let source_names = RunSources::new(selected.iter().map(|s| s.name.as_str()));
    let started = now();
    let _lease = match opts.dry_run {
        true => None,
        false => match take_lease(store, opts.lease_wait).await {
            Ok(l) => Some(l),
            Err(StoreError::Locked(path)) => return Ok(refused(store, opts, &source_names, started, &path).await),
            Err(e) => return Err(e.into()),
        },
    };
    if let Some(slot) = opts.origin.slot.filter(|_| !opts.dry_run) {
        if slot_already_run(store, &source_names, slot).await? {
            if let Some(id) = opts.run_id {
                on_store(store, move |s| s.discard_queued(id)).await?;
            }
            let mut o = SyncOutcome::new(None, false, &source_names);
            o.slot_taken = true;
            o.message = Some(format!("the slot {slot} was run by another instance; not run again"));
            return Ok(o);
        }
    }
    let run_id = if opts.dry_run {
        None
    } else {
        let (names, at, force, queued) = (source_names.clone(), started, opts.force, opts.run_id);
        let origin = opts.origin.clone();
        let (n, id) = on_store(store, move |s| -> Result<_, StoreError> {
            let n = s.mark_interrupted(at)?;
            let id = match queued {
                Some(id) => s.begin_run(id, at).map(|_| id)?,
                None => s.start_run(&names, at, force, &origin)?,
            };
            Ok((n, id))
        })
        .await?;
        if n > 0 {
            warn!(runs = n, "marked runs left unfinished by a stopped process as interrupted");
        }
        Some(id)
    };
    let blank = || SyncOutcome { origin: opts.origin.clone(), ..SyncOutcome::new(run_id, opts.dry_run, &source_names) };
    match pipeline(cfg, store, opts, progress, &selected, blank(), started, &open).await {
        Ok(outcome) => Ok(outcome),
        // The store failed under a recorded run (a conflict, a full disk):
        // the transaction rolled back; record the run as failed if we can.
        Err(SyncError::Store(e)) if run_id.is_some() => {
            let mut outcome = blank();
            outcome.status = RunStatus::Failed;
            outcome.retryable = matches!(e, StoreError::Conflict { .. } | StoreError::Busy { .. });
            outcome.message = Some(format!("{e}; nothing was changed"));
            finish_without_changes(store, outcome, started, opts.force).await
        }
        Err(e) => Err(e),
    }
}

#[allow(clippy::too_many_arguments)]
async fn pipeline(
    cfg: &Config,
    store: &dyn Store,
    opts: &SyncOptions,
    progress: Arc<AtomicU64>,
    selected: &[&SourceConfig],
    mut outcome: SyncOutcome,
    started: Timestamp,
    open: &Opener,
) -> Result<SyncOutcome, SyncError> {
    let t0 = std::time::Instant::now();
    let since = resume_points(store, selected, opts).await?;
    // One user's read is a delta: only what it touches is read from the store.
    let all_resume = opts.user.is_some() || opts.touched.is_some() || since.iter().all(Option::is_some);
    let fresh = fresh_sources(selected, &since, opts);
    let (feed, writer, fresh) = match early::maybe_start(store, outcome.run_id, fresh).await? {
        Some((f, w, names)) => (Some(f), Some(w), names),
        None => (None, None, Default::default()),
    };
    let reads = ReadAll { selected, opts, progress, open, feed, fresh: &fresh };
    let (batches, failures, early) = read_all(store, reads, since, all_resume, writer.as_ref(), &mut outcome).await?;
    // The early writer's session and rows (every feed is dropped: the
    // sources are read). Any other store write must wait until it is dropped.
    let mut session = match writer {
        Some(w) => Some(w.finish().await?),
        None => None,
    };
    if let Some((_, e)) = &session {
        info!(elapsed_ms = t0.elapsed().as_millis() as u64, written_early = e.len(), "new users written while reading");
    }
    // A failing source removes nobody and changes none of its users; the
    // others go on (a `partial` run) unless none is left.
    if batches.is_empty() {
        drop(session.take());
        outcome.status = RunStatus::Failed;
        outcome.message = Some(format!("{}; nothing was changed", failures.join("; ")));
        return finish_without_changes(store, outcome, started, opts.force).await;
    }

    info!(elapsed_ms = t0.elapsed().as_millis() as u64, rss_mib = rss_mib(), "sources read");
    let snap = match early {
        Some(s) => s,
        None => read_snapshot(store, &batches).await?,
    };
    info!(
        elapsed_ms = t0.elapsed().as_millis() as u64,
        rss_mib = rss_mib(),
        users = snap.users.len(),
        partial = snap.active_by_source.is_some(),
        "store snapshot read"
    );
    outcome.mode = run_mode(opts, &batches);
    let hour = steps::live_hour(store, opts, &batches).await?;
    let (plan, snap, mut batches) = steps::plan_with_guards(cfg, opts, snap, batches, &mut outcome, &hour, t0).await;
    steps::settle_outcome(&mut outcome, &plan, &batches, selected, &failures);
    if opts.dry_run {
        outcome.plan = Some(plan);
        return Ok(outcome);
    }
    if outcome.status == RunStatus::Blocked {
        drop(session.take()); // a rollback of anything written early
        return steps::record_blocked(store, outcome, plan, started, opts.force).await;
    }
    // The plan holds what the apply needs; the mapped entries and the stored
    // users can go before the store's own memory grows (peak RSS).
    for b in &mut batches {
        b.drop_entries();
    }
    let generation = snap.generation;
    drop(snap);
    let record = record_of(&outcome, started, opts.force);
    let finished = record.finished_at.unwrap_or_else(now);
    let positions = steps::positions_of(&batches, selected, opts);
    let plan = steps::apply_plan(store, cfg, plan, session, (generation, record, finished), positions).await?;
    info!(elapsed_ms = t0.elapsed().as_millis() as u64, rss_mib = rss_mib(), run = ?outcome.run_id, changes = outcome.counts.changes(), "sync applied");
    outcome.plan = Some(plan);
    // Then push what the application owns; per-item failures stay on the
    // queue. The apply has committed: from here on nothing may turn the run
    // into a failed one, so a push that fails as a whole is reported as such.
    if cfg.sources.iter().any(|s| s.writeback.is_some()) {
        push_after_apply(cfg, store, &mut outcome).await;
    }
    Ok(outcome)
}

/// The sources whose first sync writes its new users while they are read
/// (early.rs): not in a dry run or one user's sync, not enrich sources or
/// sources scoped to groups.
fn fresh_sources(selected: &[&SourceConfig], since: &[Option<String>], opts: &SyncOptions) -> Vec<String> {
    if opts.dry_run || opts.user.is_some() || !opts.early_writes {
        return Vec::new();
    }
    selected
        .iter()
        .zip(since)
        .filter(|(s, since)| since.is_none() && !s.is_enrich() && s.scope_groups.is_empty())
        .map(|(s, _)| s.name.clone())
        .collect()
}

/// The store's side of the plan: when every batch is a plain delta, only
/// the rows it touches.
async fn read_snapshot(
    store: &dyn Store,
    batches: &[SourceBatch],
) -> Result<crate::model::Snapshot, crate::store::StoreError> {
    if batches.iter().all(is_plain_delta) {
        let q = snapshot_query(batches);
        return heavy_store(store, move |s| s.partial_snapshot(&q)).await;
    }
    heavy_store(store, |s| s.snapshot()).await
}

/// How the run read its sources: one user, all in full, all incrementally,
/// or mixed.
fn run_mode(opts: &SyncOptions, batches: &[SourceBatch]) -> RunMode {
    let deltas = batches.iter().filter(|b| b.delta.is_some()).count();
    match deltas {
        _ if opts.user.is_some() => RunMode::Single,
        0 => RunMode::Full,
        n if n == batches.len() && opts.live => RunMode::Live,
        n if n == batches.len() => RunMode::Incremental,
        _ => RunMode::Mixed,
    }
}

/// Where each source left off, unless a full read is asked for or due.
async fn resume_points(
    store: &dyn Store,
    selected: &[&SourceConfig],
    opts: &SyncOptions,
) -> Result<Vec<Option<String>>, SyncError> {
    let mut since = Vec::with_capacity(selected.len());
    for s in selected {
        let sc = (*s).clone();
        let skip = opts.full || opts.user.is_some() || opts.touched.is_some();
        since.push(if skip { None } else { on_store(store, move |st| resume_point(st, &sc)).await? });
    }
    Ok(since)
}

/// What [`read_all`] reads with.
struct ReadAll<'a> {
    selected: &'a [&'a SourceConfig],
    opts: &'a SyncOptions,
    progress: Arc<AtomicU64>,
    open: &'a Opener,
    /// Where early creations go, for the sources in `fresh`.
    feed: Option<early::Feed>,
    fresh: &'a rustc_hash::FxHashSet<String>,
}

/// Reads every source concurrently (from `since`, each) and, unless every
/// source resumes, the whole store meanwhile. Returns the batches read, the
/// sources that failed (also in `outcome.sources`), and the store's snapshot
/// when it was read.
async fn read_all(
    store: &dyn Store,
    r: ReadAll<'_>,
    since: Vec<Option<String>>,
    all_resume: bool,
    writer: Option<&early::Writer>,
    outcome: &mut SyncOutcome,
) -> Result<(Vec<SourceBatch>, Vec<String>, Option<crate::model::Snapshot>), SyncError> {
    let ReadAll { selected, opts, progress, open, feed, fresh } = r;
    // Read every source (concurrently) while the snapshot is loaded.
    let mut handles = AbortOnDrop(
        selected
            .iter()
            .zip(since)
            .map(|(s, since)| {
                let s = (*s).clone();
                let p = progress.clone();
                let open = open.clone();
                let user = opts.user.clone();
                let touched = opts.touched.clone();
                let feed = feed.clone().filter(|_| fresh.contains(&s.name));
                tokio::spawn(async move {
                    match (user, touched) {
                        (Some(u), _) => read_source_as(&open, &s, p, Read::User(&u), None).await,
                        (None, Some(t)) => read_source_as(&open, &s, p, Read::Touched(&t), None).await,
                        (None, None) => fetch_fed(&open, &s, p, since, feed).await,
                    }
                })
            })
            .collect(),
    );
    drop(feed);
    // With a full read somewhere, the whole store is needed: read it while the
    // sources are read. If every source resumes, wait and read only what the
    // deltas touch.
    let early = if all_resume { None } else { Some(heavy_store(store, |s| s.snapshot()).await?) };
    if let (Some(w), Some(snap)) = (&writer, &early) {
        w.snapshot_read(snap);
    }
    let mut batches = Vec::new();
    let mut failures = Vec::new();
    for (h, s) in handles.0.iter_mut().zip(selected) {
        let failed = match h.await {
            Ok(Ok(b)) => {
                batches.push(b);
                continue;
            }
            Ok(Err(e)) => e.message,
            Err(e) => format!("reading stopped: {e}"),
        };
        warn!(source = %s.name, reason = %failed, "source failed; its users are left as they are");
        failures.push(format!("source \"{}\": {failed}", s.name));
        outcome.sources.push(SourceOutcome::new(&s.name, SourceStatus::Failed, Some(failed)));
    }
    for b in &batches {
        outcome.errors.extend(b.errors.iter().cloned());
        outcome.warnings.extend(b.warnings.iter().cloned());
    }
    Ok((batches, failures, early))
}

/// The write-back push at the end of an applied run.
async fn push_after_apply(cfg: &Config, store: &dyn Store, outcome: &mut SyncOutcome) {
    let report = match crate::engine::writeback::push(cfg, store, false).await {
        Ok(r) => r,
        Err(e) => {
            let msg = format!(
                "the run was applied; the write-back push failed: {e} (the queue keeps its items: `dirsync writeback push` retries)"
            );
            warn!("{msg}");
            if let Some(id) = outcome.run_id {
                let error = [EntryError::new("(write-back)", msg.clone())];
                let _ = on_store(store, move |s| s.record_push(id, [0, 0, 0], &error)).await;
            }
            outcome.errors.push(EntryError::new("(write-back)", msg.clone()));
            outcome.message = Some(msg);
            return;
        }
    };
    if let Some(id) = outcome.run_id {
        let (counts, errors) = ([report.pushed, report.failed, report.conflicts], report.errors.clone());
        if let Err(e) = on_store(store, move |s| s.record_push(id, counts, &errors)).await {
            warn!("the run was applied and pushed, but the push's counts could not be added to its history: {e}");
            outcome.message = Some(format!("the push's counts could not be added to the run's history: {e}"));
        }
    }
    outcome.errors.extend(report.errors.iter().cloned());
    (outcome.counts.pushed, outcome.counts.push_failed, outcome.counts.conflicts) =
        (report.pushed, report.failed, report.conflicts);
    outcome.writeback = Some(report);
}

/// A run refused because another sync holds the lock: recorded as failed
/// (when the store can take the short write), nothing read or changed.
async fn refused(
    store: &dyn Store,
    opts: &SyncOptions,
    sources: &RunSources,
    started: Timestamp,
    lock: &str,
) -> SyncOutcome {
    let mut o = SyncOutcome { origin: opts.origin.clone(), ..SyncOutcome::new(None, false, sources) };
    o.status = RunStatus::Failed;
    o.lock_held = true;
    o.message =
        Some(format!("another sync is running on this store (lock {lock} is held); nothing was read or changed"));
    let (src, at, force, queued, origin) = (sources.clone(), started, opts.force, opts.run_id, opts.origin.clone());
    match on_store(store, move |s| match queued {
        Some(id) => Ok(id),
        None => s.start_run(&src, at, force, &origin),
    })
    .await
    {
        Ok(id) => {
            o.run_id = Some(id);
            let record = record_of(&o, started, opts.force);
            if let Err(e) = on_store(store, move |s| s.transaction(&mut |tx| tx.finish_run(&record))).await {
                warn!("the refused run could not be recorded: {e}");
            }
        }
        Err(e) => warn!("the refused run could not be recorded: {e}"),
    }
    o
}

fn record_of(o: &SyncOutcome, started: Timestamp, forced: bool) -> RunRecord {
    RunRecord {
        id: o.run_id.unwrap_or_default(),
        started_at: started,
        finished_at: Some(now()),
        sources: o.selected.clone(),
        status: o.status,
        forced,
        counts: o.counts,
        errors: o.errors.clone(),
        warnings: o.warnings.clone(),
        message: o.message.clone(),
        mode: o.mode,
        origin: o.origin.clone(),
    }
}

/// The store's lease, waited for up to `wait` (polled: the holder may be
/// another process or instance, which sends no signal when it lets go).
async fn take_lease(
    store: &dyn Store,
    wait: Option<std::time::Duration>,
) -> Result<Box<dyn crate::store::Lease>, StoreError> {
    let deadline = std::time::Instant::now() + wait.unwrap_or_default();
    loop {
        match on_store(store, |s| s.lease()).await {
            Err(StoreError::Locked(_)) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await
            }
            other => return other,
        }
    }
}

/// Whether every source of a scheduled run already has this slot run.
async fn slot_already_run(store: &dyn Store, sources: &RunSources, slot: Timestamp) -> Result<bool, StoreError> {
    let names = sources.names().to_vec();
    on_store(store, move |s| {
        for n in &names {
            if !s.slot_done(n, slot)? {
                return Ok(false);
            }
        }
        Ok(!names.is_empty())
    })
    .await
}

/// The apply's view of the sources' positions.
fn cursors_of(positions: &[(String, crate::store::SavedState, bool)]) -> Vec<crate::engine::apply::Cursor<'_>> {
    positions
        .iter()
        .map(|(source, saved, full)| crate::engine::apply::Cursor { source, saved: saved.clone(), full: *full })
        .collect()
}

/// A delta without a present phase: it names everything it touches.
fn is_plain_delta(b: &SourceBatch) -> bool {
    b.delta.as_ref().is_some_and(|d| d.present_users.is_none() && d.present_groups.is_none())
}

/// The store rows the deltas can touch.
pub(crate) fn snapshot_query(batches: &[SourceBatch]) -> SnapshotQuery {
    let mut q = SnapshotQuery::default();
    for b in batches {
        let src = || b.source.clone();
        let d = b.delta.as_ref();
        let users = b.users.iter().map(|u| &*u.external_id).chain(b.skipped_user_ids.iter().map(|i| &**i));
        let deleted = d.into_iter().flat_map(|d| &d.deleted_users).map(String::as_str);
        q.user_ids.extend(users.chain(deleted).map(|e| (src(), e.to_string())));
        let groups = b.groups.iter().map(|g| &g.external_id).chain(&b.seen_group_ids);
        q.group_ids.extend(groups.chain(d.into_iter().flat_map(|d| &d.deleted_groups)).map(|e| (src(), e.clone())));
        q.username_keys.extend(b.users.iter().map(|u| u.username.key().to_string()));
        q.dn_keys.extend(b.unresolved.iter().map(|(_, k)| k.clone()));
        // Members named by id: users or groups of the same source.
        q.user_ids.extend(b.unresolved_ids.iter().map(|(_, id)| (src(), id.clone())));
        q.group_ids.extend(b.unresolved_ids.iter().map(|(_, id)| (src(), id.clone())));
    }
    q
}

/// The saved position to continue a source from, or `None` for a full read:
/// incremental off, never synced, or a periodic full read due.
fn resume_point(store: &dyn Store, s: &SourceConfig) -> Result<Option<String>, StoreError> {
    // A delta cannot tell who entered or left a scope group's nested members.
    // An enrich row may land on any user: it needs the whole store.
    if !s.incremental.enabled || !s.scope_groups.is_empty() || s.is_enrich() {
        return Ok(None);
    }
    let Some(saved) = store.sync_state(&s.name)? else { return Ok(None) };
    let Some(state) = saved.state else { return Ok(None) };
    if saved.fingerprint.as_deref() != Some(s.fingerprint().as_str()) {
        info!(source = %s.name, "the source's query or mapping changed since the last read: reading in full");
        return Ok(None);
    }
    if let Some(every) = s.incremental.full_every {
        let due = match saved.last_full_at {
            Some(at) => now().since(at) >= every,
            None => true,
        };
        if due {
            info!(source = %s.name, "periodic full read due (full_every)");
            return Ok(None);
        }
    }
    Ok(Some(state))
}

/// Records a failed or blocked run (no data changes).
async fn finish_without_changes(
    store: &dyn Store,
    o: SyncOutcome,
    started: Timestamp,
    forced: bool,
) -> Result<SyncOutcome, SyncError> {
    if o.run_id.is_some() {
        let record = record_of(&o, started, forced);
        on_store(store, move |s| s.transaction(&mut |tx| tx.finish_run(&record))).await?;
    }
    Ok(o)
}
