//! Undo a run: put back every user, field, membership and group a run
//! changed, from its audit rows and their before-images ([`steps`]), as a
//! new run of mode `undo` in one transaction ([`apply`]): guards, audit,
//! history, the change feed and write-back as for a sync. A later change
//! to the same thing wins and is reported as a conflict (`force_over_later`
//! overwrites it, audited). The undo of an undo redoes. A dry run does the
//! whole undo in a transaction it rolls back: its preview is exact.

pub mod apply;
pub mod steps;

use serde::Serialize;

pub use apply::UndoChange;
use apply::Writer;
pub use steps::Conflict;
use steps::Later;

use crate::config::Config;
use crate::engine::history::{now, RunMode, RunRecord, RunStatus};
use crate::model::records::{Counts, RunOrigin};
use crate::store::{Store, StoreError};

/// How to undo.
#[derive(Debug, Clone, Default)]
pub struct UndoOptions {
    /// Preview only; nothing is recorded.
    pub dry_run: bool,
    /// Lift the removal thresholds, as `sync --force` does.
    pub force: bool,
    /// Put the run's before-values back over later changes too (audited).
    pub force_over_later: bool,
    pub origin: RunOrigin,
    /// The run's record, made when it was queued (`dirsync serve`).
    pub queued: Option<i64>,
    /// An approval of a blocked undo: the users it may remove (store ids);
    /// removing anybody else blocks it again.
    pub approved: Option<Vec<i64>>,
}

/// What a blocked undo keeps for its approval: the run it undoes and how.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct UndoAsk {
    pub undo: i64,
    pub force_over_later: bool,
}

/// Why a run cannot be undone.
#[derive(Debug, thiserror::Error)]
pub enum UndoError {
    #[error("no run has id {0}")]
    UnknownRun(i64),
    #[error("run {id} cannot be undone: {reason}")]
    NotUndoable { id: i64, reason: String },
    #[error("another sync is running on this store (lock {0} is held); nothing was changed")]
    Locked(String),
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for UndoError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Locked(l) => UndoError::Locked(l),
            e => UndoError::Store(e),
        }
    }
}

/// What an undo did (or, dry, would do): `sync --json`'s fields, and the
/// conflicts it kept.
#[derive(Debug, Serialize)]
pub struct UndoOutcome {
    pub run_id: Option<i64>,
    /// The run undone.
    pub undoes: i64,
    pub dry_run: bool,
    pub status: RunStatus,
    pub mode: RunMode,
    #[serde(flatten)]
    pub counts: Counts,
    /// Each change, in order.
    pub changes: Vec<UndoChange>,
    /// Later values kept (not a failure).
    pub conflicts: Vec<Conflict>,
    /// What cannot be undone (recorded before the audit kept before-images)
    /// and what the next sync will set again.
    pub warnings: Vec<String>,
    pub errors: Vec<String>,
    pub message: Option<String>,
}

/// Undoes run `id` (see the module's words). Under the store's lease no
/// sync interleaves; a local change (`PATCH`, a SCIM push) between the read
/// of later changes and the write is met by reading again.
pub fn undo(cfg: &Config, store: &dyn Store, id: i64, opts: &UndoOptions) -> Result<UndoOutcome, UndoError> {
    let run = store.run_by_id(id)?.ok_or(UndoError::UnknownRun(id))?;
    let why = match run.status {
        RunStatus::Ok | RunStatus::Partial => None,
        RunStatus::Failed | RunStatus::Interrupted => {
            Some(format!("it {}: nothing of it was applied", run.status.as_str()))
        }
        RunStatus::Blocked => Some("it was blocked: nothing of it was applied".to_string()),
        RunStatus::Queued | RunStatus::Running => Some(format!("it is {}", run.status.as_str())),
    };
    if let Some(reason) = why {
        return Err(UndoError::NotUndoable { id, reason });
    }
    let rows = store.run_audit(id)?;
    let Some(last) = rows.last().map(|c| c.cursor) else {
        return Err(UndoError::NotUndoable { id, reason: "it changed nothing".into() });
    };
    let _lease = if opts.dry_run { None } else { Some(store.lease()?) };
    let started = now();
    let run_id = match (opts.dry_run, opts.queued) {
        (true, _) => None,
        (false, Some(q)) => Some(store.begin_run(q, started).map(|_| q)?),
        (false, None) => Some(store.start_run(&run.sources, started, opts.force, &opts.origin)?),
    };
    let mut tries = 0;
    loop {
        tries += 1;
        match attempt(cfg, store, &run, (&rows, last), opts, (run_id, started)) {
            Err(StoreError::Conflict { .. }) if tries < 16 => continue,
            Err(e) => {
                if let Some(rid) = run_id {
                    let failed = UndoOutcome::failed(id, run_id, opts, format!("{e}; nothing was changed"));
                    let rec = record(&run, rid, started, opts, &Counts::default(), &failed);
                    let _ = store.transaction(&mut |tx| tx.finish_run(&rec));
                }
                return Err(e.into());
            }
            Ok(outcome) => return Ok(outcome),
        }
    }
}

impl UndoOutcome {
    fn failed(undoes: i64, run_id: Option<i64>, opts: &UndoOptions, message: String) -> UndoOutcome {
        UndoOutcome {
            run_id,
            undoes,
            dry_run: opts.dry_run,
            status: RunStatus::Failed,
            mode: RunMode::Undo,
            counts: Counts::default(),
            changes: Vec::new(),
            conflicts: Vec::new(),
            warnings: Vec::new(),
            errors: Vec::new(),
            message: Some(message),
        }
    }
}

/// One try: the later changes read, the plan made, the transaction run
/// (`Conflict` when the store changed since the read).
fn attempt(
    cfg: &Config,
    store: &dyn Store,
    run: &RunRecord,
    (rows, last): (&[crate::store::Change], i64),
    opts: &UndoOptions,
    (run_id, started): (Option<i64>, crate::time::Timestamp),
) -> Result<UndoOutcome, StoreError> {
    let q = crate::store::SnapshotQuery { skip_active_counts: true, ..Default::default() };
    let generation = store.partial_snapshot(&q)?.generation;
    let later = later_changes(store, last)?;
    let planned = steps::plan(rows, &Later::of(&later), opts.force_over_later);
    let active = store.counts()?.0;
    let mut outcome = UndoOutcome::failed(run.id, run_id, opts, String::new());
    (outcome.status, outcome.message) = (RunStatus::Ok, None);
    (outcome.conflicts, outcome.warnings) = (planned.conflicts.clone(), planned.notes.clone());
    let mut writer = Writer::new(cfg, run_id, started);
    let mut blocked: Vec<String> = Vec::new();
    let applied = store.transaction(&mut |tx| {
        writer = Writer::new(cfg, run_id, started);
        let found = tx.generation()?;
        if found != generation {
            return Err(StoreError::Conflict { expected: generation, found });
        }
        tx.set_generation(generation + 1)?;
        for s in &planned.steps {
            writer.step(tx, s)?;
        }
        blocked = guard(cfg, &active, &writer.done.removals, opts.force);
        if let Some(ok) = &opts.approved {
            let new: Vec<&str> =
                writer.done.removed.iter().filter(|r| !ok.contains(&r.target_id)).map(|r| r.name.as_str()).collect();
            if !new.is_empty() {
                blocked.push(format!(
                    "the approved undo would now also remove {} user(s) its approval did not cover: {}",
                    new.len(),
                    new.iter().take(20).copied().collect::<Vec<_>>().join(", ")
                ));
            }
        }
        if opts.dry_run || !blocked.is_empty() {
            // Rolled back: a preview, or held by the guards.
            return Err(StoreError::Provisioning(ROLLED_BACK.into()));
        }
        if let Some(rid) = run_id {
            tx.finish_run(&record(run, rid, started, opts, &writer.done.counts, &outcome))?;
        }
        Ok(())
    });
    match applied {
        Err(StoreError::Provisioning(m)) if m == ROLLED_BACK => {}
        other => other?,
    }
    settle(store, run, opts, (run_id, started), writer.done, blocked, outcome)
}

/// The outcome from what the steps did; a blocked undo recorded with what
/// its approval needs.
fn settle(
    store: &dyn Store,
    run: &RunRecord,
    opts: &UndoOptions,
    (run_id, started): (Option<i64>, crate::time::Timestamp),
    mut done: apply::Done,
    blocked: Vec<String>,
    mut outcome: UndoOutcome,
) -> Result<UndoOutcome, StoreError> {
    outcome.counts = done.counts;
    outcome.changes = std::mem::take(&mut done.changes);
    outcome.warnings.extend(std::mem::take(&mut done.skipped).into_iter().map(|s| format!("{s}: nothing to put back")));
    let overwritten = outcome.changes.iter().filter(|c| c.next_sync_overwrites).count();
    if overwritten > 0 {
        outcome.warnings.push(format!(
            "{overwritten} value(s) belong to the directory and come back now, but the next sync sets them again as the directory says: fix the source too"
        ));
    }
    if blocked.is_empty() {
        return Ok(outcome);
    }
    outcome.status = RunStatus::Blocked;
    outcome.message = Some(format!("{}; nothing was changed (--force lifts the thresholds)", blocked.join("; ")));
    outcome.changes.clear();
    if let Some(rid) = run_id {
        let rec = record(run, rid, started, opts, &Counts::default(), &outcome);
        // What an approval needs: the run to undo, and how.
        let ask = UndoAsk { undo: run.id, force_over_later: opts.force_over_later };
        let ask = serde_json::to_string(&ask).expect("serializable");
        store.transaction(&mut |tx| {
            tx.record_plan(rid, &ask)?;
            tx.record_removals(rid, &done.removed)?;
            tx.finish_run(&rec)
        })?;
    }
    Ok(outcome)
}

const ROLLED_BACK: &str = "the undo's transaction is rolled back";

/// Every change after cursor `after`.
fn later_changes(store: &dyn Store, mut after: i64) -> Result<Vec<crate::store::Change>, StoreError> {
    let mut out = Vec::new();
    loop {
        let page = store.changes(after, 10_000)?;
        let Some(last) = page.last().map(|c| c.cursor) else { return Ok(out) };
        after = last;
        out.extend(page);
    }
}

/// The removal thresholds, per source, over its active users now.
fn guard(
    cfg: &Config,
    active: &[((String, crate::model::Status), u64)],
    removals: &std::collections::HashMap<String, u64>,
    force: bool,
) -> Vec<String> {
    let mut out = Vec::new();
    if force {
        return out;
    }
    let total: u64 = removals.values().sum();
    for (source, n) in removals {
        let own = match cfg.sources.iter().find(|s| &s.name == source) {
            Some(s) => cfg.safety.with(&s.safety),
            None => cfg.safety.clone(),
        };
        let base: u64 = active
            .iter()
            .filter(|((s, st), _)| s == source && *st == crate::model::Status::Active)
            .map(|(_, c)| c)
            .sum();
        let pct = if base == 0 { 100.0 } else { 100.0 * *n as f64 / base as f64 };
        if pct > own.max_delete_percent {
            out.push(format!(
                "source \"{source}\": the undo would disable or delete {n} of {base} active users ({pct:.1}%), above max_delete_percent = {}",
                own.max_delete_percent
            ));
        }
    }
    if total > cfg.safety.max_delete_count {
        out.push(format!(
            "the undo would disable or delete {total} users, above max_delete_count = {}",
            cfg.safety.max_delete_count
        ));
    }
    out
}

fn record(
    run: &RunRecord,
    id: i64,
    started: crate::time::Timestamp,
    opts: &UndoOptions,
    counts: &Counts,
    o: &UndoOutcome,
) -> RunRecord {
    RunRecord {
        id,
        started_at: started,
        finished_at: Some(now()),
        sources: run.sources.clone(),
        status: o.status,
        forced: opts.force,
        counts: *counts,
        errors: Vec::new(),
        warnings: Vec::new(),
        message: Some(o.message.clone().unwrap_or_else(|| format!("undo of run {}", run.id))),
        mode: RunMode::Undo,
        origin: opts.origin.clone(),
    }
}
