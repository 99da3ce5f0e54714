//! The pipeline's later steps, each named: the plan made and held to the
//! guards (a source they hold back is left out and the plan made again), the
//! outcome settled from it, a blocked run recorded with what it would have
//! removed, the sources' positions, the apply (in the run's early session
//! when there is one), and what a live run's source removed within the hour.

use std::sync::Arc;

use tracing::info;

use super::early::Early;
use super::exec::{heavy, heavy_store, rss_mib};
use super::{approval, cursors_of, record_of, SyncError, SyncOptions, SyncOutcome};
use crate::config::{Config, SourceConfig};
use crate::engine::guards;
use crate::engine::history::{RunRecord, RunStatus};
use crate::engine::plan::{self, Plan};
use crate::engine::sync::outcome::{SourceOutcome, SourceStatus};
use crate::model::{Snapshot, SourceBatch};
use crate::store::{on_store, SavedState, Store};
use crate::time::Timestamp;

/// Plan, then the guards, per source: a source the guards hold back is left
/// out and the plan made again without it, so the others apply. The
/// outcome's `blocked_by` says what held what back.
pub(super) async fn plan_with_guards(
    cfg: &Config,
    opts: &SyncOptions,
    mut snap: Snapshot,
    mut batches: Vec<SourceBatch>,
    outcome: &mut SyncOutcome,
    hour: &std::collections::HashMap<String, guards::HourWindow>,
    t0: std::time::Instant,
) -> (Plan, Snapshot, Vec<SourceBatch>) {
    let mut held: Vec<guards::Block> = Vec::new();
    loop {
        let cfg2 = cfg.clone();
        let plan;
        (plan, snap, batches) = heavy(move || {
            let plan = plan::build(&cfg2, &snap, &batches);
            (plan, snap, batches)
        })
        .await;
        info!(elapsed_ms = t0.elapsed().as_millis() as u64, rss_mib = rss_mib(), "plan built");
        let mut blocks = guards::check(&plan, cfg, opts.force || opts.approved.is_some());
        if !hour.is_empty() {
            blocks.extend(guards::check_live(&plan, cfg, hour, opts.force || opts.approved.is_some()));
        }
        if let Some(a) = &opts.approved {
            blocks.extend(approval::check(a, &plan));
        }
        let whole = blocks.iter().any(|b| b.source.is_none())
            || batches.iter().all(|b| blocks.iter().any(|k| k.source.as_deref() == Some(b.source.as_str())));
        if blocks.is_empty() || whole {
            blocks.extend(std::mem::take(&mut held));
            outcome.blocked_by = blocks;
            return (plan, snap, batches);
        }
        batches.retain(|b| !blocks.iter().any(|k| k.source.as_deref() == Some(b.source.as_str())));
        held.extend(blocks);
    }
}

/// Each source's outcome, the plan's errors and counts, and the run's
/// status: blocked when the guards hold back everything, partial when they
/// hold back (or a read failed for) some sources.
pub(super) fn settle_outcome(
    outcome: &mut SyncOutcome,
    plan: &Plan,
    batches: &[SourceBatch],
    selected: &[&SourceConfig],
    failures: &[String],
) {
    for b in &outcome.blocked_by {
        if let Some(name) = &b.source {
            match outcome.sources.iter_mut().find(|o| &o.name == name) {
                Some(o) => o.message = Some(format!("{}; {}", o.message.take().unwrap_or_default(), b.reason)),
                None => outcome.sources.push(SourceOutcome::new(name, SourceStatus::Blocked, Some(b.reason.clone()))),
            }
        }
    }
    for b in batches {
        if !outcome.sources.iter().any(|o| o.name == b.source) {
            outcome.sources.push(SourceOutcome::new(&b.source, SourceStatus::Ok, None));
        }
    }
    outcome.sources.sort_by_key(|o| selected.iter().position(|s| s.name == o.name));
    outcome.errors.extend(plan.errors.iter().cloned());
    outcome.warnings.extend(plan.warnings.iter().cloned());
    outcome.counts = crate::engine::history::counts_of(plan, batches);
    let held_back: Vec<String> = outcome
        .sources
        .iter()
        .filter(|o| o.status != SourceStatus::Ok)
        .map(|o| format!("source \"{}\" {}: {}", o.name, o.status.as_str(), o.message.as_deref().unwrap_or("")))
        .collect();
    if outcome.blocked_by.iter().any(|b| b.source.is_none()) || held_back.len() == outcome.sources.len() {
        outcome.status = RunStatus::Blocked;
        let failed = failures.iter().map(|f| format!("; {f}")).collect::<String>();
        outcome.message = Some(format!(
            "blocked by the safety guards: {}{failed}; nothing was changed",
            outcome.blocked_by.iter().map(|b| b.reason.as_str()).collect::<Vec<_>>().join("; ")
        ));
    } else if !held_back.is_empty() {
        outcome.status = RunStatus::Partial;
        outcome.message = Some(format!("{}; the other sources were applied", held_back.join("; ")));
    }
}

/// A blocked run: recorded with the removals an approval would approve and
/// the plan's summary; nothing applied.
pub(super) async fn record_blocked(
    store: &dyn Store,
    mut outcome: SyncOutcome,
    plan: Plan,
    started: Timestamp,
    forced: bool,
) -> Result<SyncOutcome, SyncError> {
    let removals = approval::planned_removals(&plan);
    let summary = serde_json::to_string(&crate::engine::plan::summary::PlanSummary::of(&plan)).expect("serializable");
    outcome.plan = Some(plan);
    if let Some(id) = outcome.run_id {
        let record = record_of(&outcome, started, forced);
        on_store(store, move |s| {
            s.transaction(&mut |tx| {
                tx.record_removals(id, &removals)?;
                tx.record_plan(id, &summary)?;
                tx.finish_run(&record)
            })
        })
        .await?;
    }
    Ok(outcome)
}

/// Where each applied source leaves off. One user's read saves no
/// position: the next incremental read goes on from where the last one left.
pub(super) fn positions_of(
    batches: &[SourceBatch],
    selected: &[&SourceConfig],
    opts: &SyncOptions,
) -> Vec<(String, SavedState, bool)> {
    batches
        .iter()
        .filter(|_| opts.user.is_none() && opts.touched.is_none())
        .filter_map(|b| Some((b, *selected.iter().find(|s| s.name == b.source)?)))
        .map(|(b, s)| {
            let saved =
                SavedState { state: b.next_state.clone(), fingerprint: Some(s.fingerprint()), last_full_at: None };
            (b.source.clone(), saved, b.delta.is_none())
        })
        .collect()
}

/// Applies the plan with the run's record and the sources' positions in one
/// transaction: a new one, or the session holding the rows written early
/// (then committed). Returns the plan, for the outcome.
pub(super) async fn apply_plan(
    store: &dyn Store,
    cfg: &Config,
    plan: Plan,
    session: Option<Early>,
    (generation, record, finished): (i64, RunRecord, Timestamp),
    positions: Vec<(String, SavedState, bool)>,
) -> Result<Plan, SyncError> {
    let cfg2 = cfg.clone();
    match session {
        None => {
            let (applied, plan) = heavy_store(store, move |s| {
                let cursors = cursors_of(&positions);
                let prov = crate::engine::apply::Provisioning::from_config(&cfg2);
                (crate::engine::apply::apply(s, &plan, generation, &record, finished, &cursors, &prov), plan)
            })
            .await;
            applied?;
            Ok(plan)
        }
        // The same apply in the session that holds the early rows, then its commit.
        Some((mut session, written)) => {
            let plan = Arc::new(plan);
            let p = plan.clone();
            heavy(move || {
                session.run(Box::new(move |tx| {
                    let cursors = cursors_of(&positions);
                    let prov = crate::engine::apply::Provisioning::from_config(&cfg2);
                    crate::engine::apply::apply_with(
                        tx,
                        &p,
                        generation,
                        &record,
                        finished,
                        &cursors,
                        &prov,
                        Some(&written),
                    )
                }))?;
                session.commit()
            })
            .await?;
            Ok(Arc::try_unwrap(plan).unwrap_or_else(|p| (*p).clone()))
        }
    }
}

/// For a live run, what each source's live runs removed within the hour.
pub(super) async fn live_hour(
    store: &dyn Store,
    opts: &SyncOptions,
    batches: &[SourceBatch],
) -> Result<std::collections::HashMap<String, crate::engine::guards::HourWindow>, crate::store::StoreError> {
    let mut out = std::collections::HashMap::new();
    if !opts.live {
        return Ok(out);
    }
    let since = crate::engine::history::now().minus(std::time::Duration::from_secs(3600));
    for b in batches {
        let name = b.source.clone();
        let w = on_store(store, move |s| s.push_window(&name, since)).await?;
        out.insert(b.source.clone(), crate::engine::guards::HourWindow { removed: w.removed, active: w.active });
    }
    Ok(out)
}
