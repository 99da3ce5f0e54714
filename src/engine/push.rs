//! Pushes: a change an identity provider sent (SCIM) taken through the
//! same steps as a sync, for one entry: mapping and validation, the plan
//! against the store rows it touches (priority, unique usernames, re-links,
//! rules and generated codes), the push guard, and the apply with audit
//! rows. Pushes are recorded as runs of mode `push`, one per source and
//! instance and [`WINDOW`], whose counts each apply adds to, so the history
//! and the change feed read as for pulled changes.
//!
//! The push guard: a source's removals (a delete, or `active = false`)
//! within a sliding hour are held beyond its `max_delete_count` and
//! `max_delete_percent` of the users it had when the hour began. A held
//! removal is recorded in a blocked push run and refused
//! ([`PushError::Held`]: the caller answers 503 with `Retry-After`); once an
//! admin approves that run ([`approve`]), the identity provider's retries
//! of those removals go through.

use std::collections::HashSet;
use std::time::Duration;

use crate::config::{Config, SourceConfig};
use crate::engine::apply::{apply_push, Provisioning};
use crate::engine::batch::Collector;
use crate::engine::history::counts_of;
use crate::engine::plan::{self, Plan, RemovalKind};
use crate::model::records::{Counts, RunMode, RunOrigin, RunStatus};
use crate::model::{EntryError, EntryKind, RawEntry, SourceBatch};
use crate::store::{PlannedRemoval, RemovalAction, RemovalTarget, ScimRow, Store, StoreError};
use crate::time::Timestamp;

/// How long a push run gathers a source's pushes.
pub const WINDOW: Duration = Duration::from_secs(60);
/// The push guard's sliding window.
pub const GUARD_WINDOW: Duration = Duration::from_secs(3600);
/// What a held push's answer asks the identity provider to wait.
pub const RETRY_AFTER: Duration = Duration::from_secs(60);
/// Tries when another writer changed the store between the plan and the apply.
const ATTEMPTS: usize = 16;

/// What was pushed.
#[derive(Debug)]
pub enum Change {
    /// A user or group as it now is.
    Upsert(EntryKind, RawEntry),
    /// A user or group deleted (the source's `on_missing` applies).
    Gone(EntryKind, String),
}

/// The pushed resource as the store keeps it, written in the apply's
/// transaction.
#[derive(Debug, Clone)]
pub enum Resource {
    Put(ScimRow),
    Delete(String),
}

/// What an applied push did.
#[derive(Debug, Clone, Default)]
pub struct Pushed {
    pub run_id: i64,
    pub counts: Counts,
    /// Notes that did not refuse the push (an optional value dropped).
    pub warnings: Vec<EntryError>,
}

#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error("no source is named \"{0}\"")]
    UnknownSource(String),
    /// Mapping or validation refused the entry (the reason names the field).
    #[error("{0}")]
    Invalid(String),
    /// The username belongs to another user (a higher-priority source's).
    #[error("{0}")]
    Taken(String),
    /// The push guard held a removal: recorded in blocked run `run_id`.
    #[error("{reason}")]
    Held { run_id: i64, reason: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The push runs a process has open, by source: a push finds its run
/// without asking the store (the run is this instance's own; nobody else
/// adds to it). A run found here gathers pushes for [`WINDOW`] from when
/// this process first used it.
#[derive(Debug, Default)]
pub struct OpenRuns(std::sync::Mutex<std::collections::HashMap<String, (i64, Timestamp)>>);

impl OpenRuns {
    fn run_of(&self, store: &dyn Store, source: &str, origin: &RunOrigin, now: Timestamp) -> Result<i64, StoreError> {
        let open = |at: Timestamp| now.since(at) < WINDOW;
        if let Some(&(id, _)) = self.0.lock().expect("open runs").get(source).filter(|(_, at)| open(*at)) {
            return Ok(id);
        }
        let id = store.push_run(source, now.minus(WINDOW), origin, now, false)?;
        self.0.lock().expect("open runs").insert(source.to_string(), (id, now));
        Ok(id)
    }
}

/// Pushes one change of source `source` into `store` (blocking: call it on
/// a blocking thread), with `resource` written in the same transaction.
pub fn push(
    cfg: &Config,
    store: &dyn Store,
    source: &str,
    change: Change,
    resource: Option<Resource>,
    origin: &RunOrigin,
    runs: &OpenRuns,
) -> Result<Pushed, PushError> {
    let scfg = cfg.sources.iter().find(|s| s.name == source).ok_or_else(|| PushError::UnknownSource(source.into()))?;
    let batch = map(scfg, change)?;
    let mut attempt = 0;
    loop {
        attempt += 1;
        match once(cfg, store, scfg, &batch, resource.as_ref(), (origin, runs)) {
            Err(PushError::Store(StoreError::Conflict { .. })) if attempt < ATTEMPTS => {
                crate::engine::writeback::local::backoff(attempt)
            }
            other => return other,
        }
    }
}

/// The change mapped and validated: a delta batch of one entry.
fn map(scfg: &SourceConfig, change: Change) -> Result<SourceBatch, PushError> {
    let mut c = Collector::new(scfg);
    let user = matches!(change, Change::Upsert(EntryKind::User, _));
    match change {
        Change::Upsert(kind, entry) => c.add(kind, entry),
        Change::Gone(kind, id) => c.gone(kind, id),
    }
    let mut b = c.finish();
    if user && b.users.is_empty() {
        if let Some(e) = b.errors.first() {
            return Err(PushError::Invalid(e.reason.clone()));
        }
    }
    let gone = b.delta.take().unwrap_or_default();
    b.delta = Some(gone);
    Ok(b)
}

fn once(
    cfg: &Config,
    store: &dyn Store,
    scfg: &SourceConfig,
    batch: &SourceBatch,
    resource: Option<&Resource>,
    (origin, runs): (&RunOrigin, &OpenRuns),
) -> Result<Pushed, PushError> {
    let batches = std::slice::from_ref(batch);
    let query =
        crate::store::SnapshotQuery { skip_active_counts: true, ..crate::engine::sync::snapshot_query(batches) };
    let snap = store.partial_snapshot(&query)?;
    let plan = plan::build(cfg, &snap, batches);
    if let Some(e) = plan.errors.iter().chain(&plan.warnings).next() {
        return Err(PushError::Taken(e.reason.clone()));
    }
    guard(cfg, store, scfg, &plan, origin)?;
    let now = Timestamp::now();
    let run_id = runs.run_of(store, &scfg.name, origin, now)?;
    let counts = counts_of(&plan, batches);
    let prov = Provisioning::from_config(cfg);
    let generation = snap.generation;
    let marked = already_disabled_and_gone(&snap, batch);
    drop(snap);
    store.transaction(&mut |tx| {
        apply_push(tx, &plan, generation, run_id, now, &prov)?;
        for &id in &marked {
            let patch = crate::store::UserPatch { missing_since: Some(Some(now)), ..Default::default() };
            tx.update_user(id, &patch, now)?;
        }
        match resource {
            Some(Resource::Put(row)) => tx.scim_put(row)?,
            Some(Resource::Delete(id)) => tx.scim_delete(&scfg.name, id, now)?,
            None => {}
        }
        tx.add_to_run(run_id, &counts, &batch.errors, now)
    })?;
    Ok(Pushed { run_id, counts, warnings: batch.warnings.clone() })
}

/// Users deleted by this push who were already disabled (`active = false`
/// before the DELETE): the plan leaves them as they are, but they are now
/// gone from the source, so a later push of their name re-links to them.
fn already_disabled_and_gone(snap: &crate::model::Snapshot, batch: &SourceBatch) -> Vec<i64> {
    let Some(d) = &batch.delta else { return Vec::new() };
    snap.users
        .iter()
        .filter(|u| *u.source == *batch.source && d.deleted_users.contains(&*u.external_id))
        .filter(|u| u.status == crate::model::Status::Disabled && u.missing_since.is_none())
        .map(|u| u.id)
        .collect()
}

/// The users a plan disables or deletes: (id, username).
fn removals(plan: &Plan) -> Vec<(i64, String, RemovalAction)> {
    let gone = plan.removals.iter().map(|r| {
        let action = if r.kind == RemovalKind::Delete { RemovalAction::Delete } else { RemovalAction::Disable };
        (r.id, r.username.clone(), action)
    });
    let disabled =
        plan.updates.iter().filter(|u| u.disable).map(|u| (u.id, u.username.clone(), RemovalAction::Disable));
    gone.chain(disabled).collect()
}

/// Holds a plan's removals beyond the source's thresholds for the hour,
/// unless an admin approved them.
fn guard(
    cfg: &Config,
    store: &dyn Store,
    scfg: &SourceConfig,
    plan: &Plan,
    origin: &RunOrigin,
) -> Result<(), PushError> {
    let removing = removals(plan);
    if removing.is_empty() {
        return Ok(());
    }
    let now = Timestamp::now();
    let since = now.minus(GUARD_WINDOW);
    let approved: HashSet<i64> = store.approved_push_removals(&scfg.name, since)?.into_iter().collect();
    if removing.iter().all(|(id, _, _)| approved.contains(id)) {
        return Ok(());
    }
    let safety = cfg.safety.with(&scfg.safety);
    let w = store.push_window(&scfg.name, since)?;
    // The active users when the hour began: those active now and those the
    // hour's pushes removed.
    let base = w.active + w.removed;
    let by_percent = (base as f64 * safety.max_delete_percent / 100.0).floor() as u64;
    let limit = by_percent.min(safety.max_delete_count);
    if w.removed + removing.len() as u64 <= limit {
        return Ok(());
    }
    let reason = format!(
        "source \"{}\": {} user(s) disabled or deleted by pushes within the last hour, and this push would remove {} more, above max_delete_percent = {} of {base} active users or max_delete_count = {}; held until an admin approves the blocked push run",
        scfg.name,
        w.removed,
        removing.len(),
        safety.max_delete_percent,
        safety.max_delete_count
    );
    let run_id = hold(store, &scfg.name, since, origin, &removing, &reason)?;
    Err(PushError::Held { run_id, reason })
}

/// Records held removals in the source's blocked push run of the hour.
fn hold(
    store: &dyn Store,
    source: &str,
    since: Timestamp,
    origin: &RunOrigin,
    removing: &[(i64, String, RemovalAction)],
    reason: &str,
) -> Result<i64, StoreError> {
    let now = Timestamp::now();
    let run_id = store.push_run(source, since, origin, now, true)?;
    let known: HashSet<i64> = store.removals_of(run_id)?.into_iter().map(|r| r.target_id).collect();
    let new: Vec<PlannedRemoval> = removing
        .iter()
        .filter(|(id, _, _)| !known.contains(id))
        .map(|(id, name, action)| PlannedRemoval {
            kind: RemovalTarget::User,
            target_id: *id,
            name: name.clone(),
            action: *action,
        })
        .collect();
    let Some(mut record) = store.run_by_id(run_id)? else { return Ok(run_id) };
    record.errors.clear();
    record.warnings.clear();
    record.mode = RunMode::Push;
    record.status = RunStatus::Blocked;
    record.finished_at = Some(now);
    record.counts.disabled = (known.len() + new.len()) as u64;
    record.message = Some(format!("blocked by the push guard: {reason}"));
    store.transaction(&mut |tx| {
        tx.record_removals(run_id, &new)?;
        tx.finish_run(&record)
    })?;
    Ok(run_id)
}

/// Why a blocked push run cannot be approved.
#[derive(Debug, thiserror::Error)]
pub enum ApprovePushError {
    #[error("run {0} is not a blocked push run")]
    NotHeld(i64),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Approves blocked push run `id`: the removals it holds go through when
/// the identity provider retries them (within the hour). Returns them.
pub fn approve(store: &dyn Store, id: i64) -> Result<Vec<PlannedRemoval>, ApprovePushError> {
    let mut record = store.run_by_id(id)?.ok_or(ApprovePushError::NotHeld(id))?;
    if record.mode != RunMode::Push || record.status != RunStatus::Blocked {
        return Err(ApprovePushError::NotHeld(id));
    }
    let removals = store.removals_of(id)?;
    record.errors.clear();
    record.warnings.clear();
    record.status = RunStatus::Ok;
    record.message = Some(format!(
        "approved: {} held removal(s) go through when the identity provider sends them again",
        removals.len()
    ));
    store.transaction(&mut |tx| tx.finish_run(&record))?;
    Ok(removals)
}

#[cfg(test)]
#[path = "push_tests.rs"]
mod tests;
