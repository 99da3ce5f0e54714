//! The suite's run log checks: queued, begun, abandoned and interrupted
//! runs, a finished run's record, a blocked run's removals and plan, and
//! pushes added to a run.

use super::{record, Store};
use crate::model::records::RunRecord;
use crate::model::records::{Counts, RunMode, RunOrigin, RunSources, RunStatus, Trigger};
use crate::model::EntryError;
use crate::store::{PlannedRemoval, RemovalAction, RemovalTarget, RunQuery};
use crate::time::Timestamp;

fn none() -> RunOrigin {
    RunOrigin::default()
}

fn status_of(store: &dyn Store, id: i64) -> RunStatus {
    store.runs(1000).unwrap().into_iter().find(|r| r.id == id).expect("the run is listed").status
}

fn running(store: &dyn Store) -> usize {
    store.runs(1000).unwrap().iter().filter(|r| r.status == RunStatus::Running).count()
}

pub(super) fn queued_runs_begin_or_are_abandoned_and_running_ones_are_interrupted(store: &dyn Store) {
    // Runs earlier checks started and left running.
    let left = running(store);
    let first = store.queue_run(&RunSources::new(["s"]), Timestamp::now(), false, &none()).unwrap();
    let second = store.queue_run(&RunSources::new(["s", "t"]), Timestamp::now(), true, &none()).unwrap();
    assert!(second > first, "ids grow");
    assert_eq!(status_of(store, first), RunStatus::Queued);
    store.begin_run(first, Timestamp::now()).unwrap();
    assert_eq!(status_of(store, first), RunStatus::Running);
    assert_eq!(store.abandon_queued(Timestamp::now(), None).unwrap(), 1, "only the queued one");
    let abandoned = store.runs(1000).unwrap().into_iter().find(|r| r.id == second).unwrap();
    assert_eq!((abandoned.status, abandoned.forced), (RunStatus::Interrupted, true));
    assert_eq!(abandoned.sources, RunSources::new(["s", "t"]), "a run's sources, in order");
    assert!(abandoned.finished_at.is_some() && abandoned.message.is_some(), "{abandoned:?}");
    assert_eq!(running(store), left + 1);
    assert_eq!(store.mark_interrupted(Timestamp::now()).unwrap(), left + 1, "every running one");
    assert_eq!(status_of(store, first), RunStatus::Interrupted);
    assert_eq!(store.mark_interrupted(Timestamp::now()).unwrap(), 0, "nothing is running any more");
}

pub(super) fn a_finished_run_keeps_its_counts_errors_warnings_and_mode(store: &dyn Store) {
    let mut run = record(store);
    run.status = RunStatus::Partial;
    run.counts = Counts { created: 3, updated: 2, disabled: 1, memberships_added: 7, ..Counts::default() };
    run.errors = vec![EntryError::new("uid=x,dc=t", "no username")];
    run.warnings = vec![EntryError::new("uid=y,dc=t", "a look-alike")];
    run.message = Some("source \"b\" failed".into());
    run.mode = RunMode::Incremental;
    store.transaction(&mut |tx| tx.finish_run(&run)).unwrap();
    let back = store.runs(1000).unwrap().into_iter().find(|r| r.id == run.id).unwrap();
    assert_eq!((back.status, back.counts, back.mode), (RunStatus::Partial, run.counts, RunMode::Incremental));
    assert_eq!((back.errors, back.warnings, back.message), (run.errors, run.warnings, run.message));
}

pub(super) fn a_blocked_runs_removals_and_plan_are_kept(store: &dyn Store) {
    let run = record(store);
    let other = record(store);
    let removals = vec![
        PlannedRemoval { kind: RemovalTarget::User, target_id: 7, name: "amy".into(), action: RemovalAction::Disable },
        PlannedRemoval { kind: RemovalTarget::Group, target_id: 3, name: "A".into(), action: RemovalAction::Delete },
    ];
    store
        .transaction(&mut |tx| {
            tx.record_removals(run.id, &removals)?;
            tx.record_plan(run.id, r#"{"creates":{"total":0}}"#)
        })
        .unwrap();
    assert_eq!(store.removals_of(run.id).unwrap(), removals);
    assert_eq!(store.plan_of(run.id).unwrap().as_deref(), Some(r#"{"creates":{"total":0}}"#));
    assert!(store.removals_of(other.id).unwrap().is_empty() && store.plan_of(other.id).unwrap().is_none());
}

pub(super) fn pushes_add_to_a_runs_counts_and_errors(store: &dyn Store) {
    let run = record(store);
    store.transaction(&mut |tx| tx.finish_run(&run)).unwrap();
    store.record_push(run.id, [2, 1, 0], &[EntryError::new("uid=amy,dc=t", "refused (50)")]).unwrap();
    store.record_push(run.id, [1, 0, 1], &[]).unwrap();
    let back = store.runs(1000).unwrap().into_iter().find(|r| r.id == run.id).unwrap();
    assert_eq!((back.counts.pushed, back.counts.push_failed, back.counts.conflicts), (3, 1, 1));
    assert_eq!(back.errors, [EntryError::new("uid=amy,dc=t", "refused (50)")]);
}

pub(super) fn runs_are_found_by_id_source_and_status(store: &dyn Store) {
    let a = store.queue_run(&RunSources::new(["hr"]), Timestamp::now(), false, &none()).unwrap();
    let b = store.queue_run(&RunSources::new(["corp", "hr-old"]), Timestamp::now(), false, &none()).unwrap();
    store.begin_run(b, Timestamp::now()).unwrap();
    assert_eq!(store.run_by_id(a).unwrap().map(|r| r.id), Some(a));
    assert!(store.run_by_id(b + 1000).unwrap().is_none());
    let ids = |source: Option<&str>, status: Option<RunStatus>| -> Vec<i64> {
        let q = RunQuery { limit: 1000, source: source.map(Into::into), status, ..RunQuery::default() };
        store.runs_page(&q).unwrap().into_iter().map(|r| r.id).collect()
    };
    assert_eq!(ids(Some("hr"), None), [a], "a whole name, not a part of another (hr-old)");
    assert_eq!(ids(Some("hr-old"), None), [b]);
    assert_eq!(ids(Some("corp"), Some(RunStatus::Running)), [b]);
    assert!(ids(Some("corp"), Some(RunStatus::Queued)).is_empty());
    assert!(ids(Some("%"), None).is_empty() && ids(Some("h_"), None).is_empty(), "no wildcards");
    assert!(ids(None, Some(RunStatus::Queued)).contains(&a));
}

pub(super) fn runs_keep_their_origin_and_a_slot_counts_once_its_run_commits(store: &dyn Store) {
    let slot = Timestamp::parse("2026-12-06T10:15:00Z").unwrap();
    let origin = RunOrigin { trigger: Some(Trigger::Schedule), slot: Some(slot), instance: Some("a:8080".into()) };
    let sources = RunSources::new(["hr", "lab"]);
    let id = store.queue_run(&sources, Timestamp::now(), false, &origin).unwrap();
    let back = store.run_by_id(id).unwrap().unwrap();
    assert_eq!(back.origin, origin);
    assert!(!store.slot_done("hr", slot).unwrap());
    // A run that rolls back leaves its slot to be run again.
    let mut run = RunRecord { id, origin: origin.clone(), sources: sources.clone(), ..record(store) };
    let failed = store.transaction(&mut |tx| {
        tx.finish_run(&run)?;
        Err(crate::store::StoreError::Provisioning("rolled back".into()))
    });
    assert!(failed.is_err());
    assert!(!store.slot_done("hr", slot).unwrap() && !store.slot_done("lab", slot).unwrap());
    run.status = RunStatus::Failed;
    store.transaction(&mut |tx| tx.finish_run(&run)).unwrap();
    assert!(store.slot_done("hr", slot).unwrap() && store.slot_done("lab", slot).unwrap());
    assert!(!store.slot_done("hr", slot.plus(std::time::Duration::from_secs(60))).unwrap(), "another slot");
    // Finishing the same slot again (a late instance) is not an error.
    let late = RunRecord { id: record(store).id, origin: origin.clone(), sources, ..record(store) };
    store.transaction(&mut |tx| tx.finish_run(&late)).unwrap();
    // Queued runs: discarded only while queued; abandoned per instance.
    let b = RunOrigin { instance: Some("b:8080".into()), ..origin.clone() };
    let (qa, qb) = (
        store.queue_run(&RunSources::new(["hr"]), Timestamp::now(), false, &origin).unwrap(),
        store.queue_run(&RunSources::new(["hr"]), Timestamp::now(), false, &b).unwrap(),
    );
    assert_eq!(store.abandon_queued(Timestamp::now(), Some("b:8080")).unwrap(), 1);
    assert_eq!((status_of(store, qa), status_of(store, qb)), (RunStatus::Queued, RunStatus::Interrupted));
    store.discard_queued(qa).unwrap();
    assert!(store.run_by_id(qa).unwrap().is_none(), "a queued run is discarded");
    store.discard_queued(qb).unwrap();
    assert!(store.run_by_id(qb).unwrap().is_some(), "a run that ended is kept");
    // Nobody present has an equal run queued: a new one is queued.
    let (id, new) = store.queue_or_join(&RunSources::new(["hr"]), Timestamp::now(), &origin).unwrap();
    assert!(new && status_of(store, id) == RunStatus::Queued);
}
