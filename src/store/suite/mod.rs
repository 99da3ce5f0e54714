//! A test suite written against the [`Store`] trait, not a schema: every
//! backend runs [`run_all`] on a fresh, empty store (SQLite in
//! `store/sqlite/tests.rs`; a new backend in its own tests). It calls every
//! method of [`Store`] and [`StoreTx`](super::StoreTx), write sessions and
//! the lease: reads here, writes in `writes.rs`, the run log in `runs.rs`,
//! the write-back queue in `queue.rs`.

mod hooks;
mod queue;
mod runs;
mod scim;
mod writes;

use super::{Store, StoreError, UserQuery};
use crate::model::records::{Counts, RunMode, RunRecord, RunSources, RunStatus};
use crate::model::{Fields, Status};
use crate::model::{NewGroup, NewUser};
use crate::time::Timestamp;

/// Every check, in order, on one fresh store.
pub fn run_all(store: &dyn Store) {
    fills_and_reads_one_user_by_name(store);
    effective_groups_follow_nesting_and_survive_a_cycle(store);
    users_page_by_cursor_and_filters(store);
    users_by_prefix_with_wildcards_taken_literally(store);
    groups_by_page_name_and_relations(store);
    the_change_feed_is_in_commit_order_without_gaps(store);
    runs_page_by_cursor(store);
    a_failed_transaction_writes_nothing(store);
    one_lease_at_a_time(store);
    a_write_session_commits_all_or_nothing(store);
    writes::a_partial_snapshot_holds_what_a_delta_touches(store);
    writes::users_are_updated_renamed_and_deleted(store);
    writes::groups_are_renamed_and_deleted_with_their_memberships(store);
    writes::audit_rows_are_read_per_user_newest_first(store);
    writes::users_written_early_are_taken_back_or_rewritten_in_their_transaction(store);
    writes::saved_positions_are_per_source_and_keep_the_last_full_read(store);
    writes::field_values_list_core_and_custom_fields_and_the_generation_moves(store);
    writes::a_handle_is_the_same_store_and_it_checks_whole(store);
    writes::a_runs_changes_are_read_in_the_order_written(store);
    runs::queued_runs_begin_or_are_abandoned_and_running_ones_are_interrupted(store);
    runs::a_finished_run_keeps_its_counts_errors_warnings_and_mode(store);
    runs::a_blocked_runs_removals_and_plan_are_kept(store);
    runs::pushes_add_to_a_runs_counts_and_errors(store);
    runs::runs_are_found_by_id_source_and_status(store);
    runs::runs_keep_their_origin_and_a_slot_counts_once_its_run_commits(store);
    queue::the_writeback_queue_goes_pending_failed_conflict_done(store);
    scim::scim_resources_are_found_while_live_and_their_ids_kept(store);
    scim::push_runs_gather_a_window_and_count_its_removals(store);
    hooks::webhook_states_are_kept_whole(store);
    hooks::a_claim_is_held_by_one_owner_until_it_runs_out(store);
}

fn a_write_session_commits_all_or_nothing(store: &dyn Store) {
    let insert = |name: &'static str| -> super::TxWork {
        Box::new(move |tx| tx.insert_user(&user(name, Status::Active), Timestamp::now()).map(drop))
    };
    let mut s = store.write_session().unwrap();
    s.run(insert("s1")).unwrap();
    s.run(insert("s2")).unwrap();
    drop(s); // no commit: rolled back
    assert!(store.user_by_name("s1").unwrap().is_none());
    let mut s = store.write_session().unwrap();
    s.run(insert("s1")).unwrap();
    assert!(s.run(insert("s1")).is_err(), "a refused write is an error");
    s.run(insert("s2")).unwrap();
    s.commit().unwrap();
    assert!(store.user_by_name("s1").unwrap().is_some() && store.user_by_name("s2").unwrap().is_some());
}

fn one_lease_at_a_time(store: &dyn Store) {
    let held = store.lease().expect("free");
    assert!(matches!(store.lease(), Err(StoreError::Locked(_))), "a second holder is refused");
    drop(held);
    drop(store.lease().expect("released on drop"));
}

/// A started run and its record, for tests that apply plans.
pub fn record(store: &dyn Store) -> RunRecord {
    let origin = crate::model::records::RunOrigin::default();
    let id = store.start_run(&RunSources::new(["s"]), Timestamp::now(), false, &origin).unwrap();
    RunRecord {
        id,
        started_at: Timestamp::now(),
        finished_at: Some(Timestamp::now()),
        sources: RunSources::new(["s"]),
        status: RunStatus::Ok,
        forced: false,
        counts: Counts::default(),
        errors: vec![],
        warnings: vec![],
        message: None,
        mode: RunMode::Full,
        origin,
    }
}

fn user(name: &str, status: Status) -> NewUser {
    let mut fields = Fields::default();
    fields.insert("full_name".into(), format!("{name} Doe"));
    NewUser {
        source: "s".into(),
        external_id: format!("id-{name}").into(),
        dn: format!("uid={name},dc=t").into(),
        username: name.into(),
        fields,
        dir_values: Fields::default(),
        status,
        rules_applied: vec![],
        seq: 0,
    }
}

fn group(name: &str) -> NewGroup {
    NewGroup { source: "s".into(), external_id: format!("g-{name}"), name: name.into(), dn: format!("cn={name},dc=t") }
}

/// amy ∈ A, bob ∈ C, A ∈ B ∈ C ∈ A (a cycle), josé (NFC), dora disabled:
/// written through the store's own transaction, as a run's apply writes.
fn fill(store: &dyn Store) {
    let users = [
        user("amy", Status::Active),
        user("Bob", Status::Active),
        user("jos\u{e9}", Status::Active),
        user("dora", Status::Disabled),
    ];
    let run = record(store);
    store
        .transaction(&mut |tx| {
            let generation = tx.generation()?;
            tx.set_generation(generation + 1)?;
            let u: Vec<i64> =
                tx.insert_created(&users, Some(run.id), Timestamp::now())?.into_iter().map(|(id, _)| id).collect();
            let mut g = Vec::new();
            for name in ["A", "B", "C"] {
                g.push(tx.insert_group(&group(name), Timestamp::now())?);
            }
            tx.add_user_member(u[0], g[0])?;
            tx.add_user_member(u[1], g[2])?;
            tx.add_group_member(g[0], g[1])?;
            tx.add_group_member(g[1], g[2])?;
            tx.add_group_member(g[2], g[0])?;
            tx.finish_run(&run)
        })
        .unwrap();
}

fn fills_and_reads_one_user_by_name(store: &dyn Store) {
    fill(store);
    let amy = store.user_by_name("AMY").unwrap().expect("case folded");
    assert_eq!((&*amy.username, amy.status), ("amy", Status::Active));
    let jose = store.user_by_name("jose\u{301}").unwrap().expect("NFD finds NFC");
    assert_eq!(&*jose.username, "jos\u{e9}");
    assert!(store.user_by_name("nobody").unwrap().is_none());
}

fn effective_groups_follow_nesting_and_survive_a_cycle(store: &dyn Store) {
    let amy = store.user_by_name("amy").unwrap().unwrap();
    let g = store.groups_of_user(amy.id).unwrap();
    assert_eq!(g.direct, ["A"]);
    assert_eq!(g.all, ["A", "B", "C"], "A ∈ B ∈ C, and C ∈ A ends the walk");
    let dora = store.user_by_name("dora").unwrap().unwrap();
    assert!(store.groups_of_user(dora.id).unwrap().all.is_empty());
    // Membership by ids, through the nesting and its cycle.
    let id_of = |n: &str| store.groups_by_name(n).unwrap()[0].id;
    assert!(store.is_member(amy.id, id_of("C")).unwrap(), "A ∈ B ∈ C");
    assert!(!store.is_member(dora.id, id_of("A")).unwrap());
    // A page's groups at once: the same answers as one user at a time.
    let users = store.users_page(&UserQuery { limit: 100, ..UserQuery::default() }).unwrap();
    let ids: Vec<i64> = users.iter().map(|u| u.id).collect();
    let all = store.groups_of_users(&ids).unwrap();
    assert_eq!(all.len(), ids.len());
    for id in ids {
        assert_eq!(all[&id], store.groups_of_user(id).unwrap(), "user {id}");
    }
}

fn users_page_by_cursor_and_filters(store: &dyn Store) {
    let names = |q: UserQuery| -> Vec<String> {
        store.users_page(&q).unwrap().into_iter().map(|u| u.username.into()).collect()
    };
    assert_eq!(names(UserQuery { limit: 2, ..UserQuery::default() }), ["amy", "Bob"]);
    assert_eq!(names(UserQuery { limit: 2, after: Some("bob".into()), ..UserQuery::default() }), ["dora", "jos\u{e9}"]);
    assert_eq!(names(UserQuery { limit: 10, status: Some(Status::Disabled), ..UserQuery::default() }), ["dora"]);
    // Effective members of B: A's and C's (nested, cycle included).
    assert_eq!(names(UserQuery { limit: 10, group: Some("b".into()), ..UserQuery::default() }), ["amy", "Bob"]);
    assert!(names(UserQuery { limit: 10, source: Some("other".into()), ..UserQuery::default() }).is_empty());
    // Direct members only: B has none, C has Bob.
    assert!(names(UserQuery { limit: 10, group: Some("B".into()), direct: true, ..UserQuery::default() }).is_empty());
    assert_eq!(names(UserQuery { limit: 10, group: Some("c".into()), direct: true, ..UserQuery::default() }), ["Bob"]);
}

fn runs_page_by_cursor(store: &dyn Store) {
    record(store);
    record(store);
    let all = store.runs(100).unwrap();
    assert!(all.len() >= 2 && all.windows(2).all(|w| w[0].id > w[1].id), "newest first");
    let page = store.runs_page(&super::RunQuery { before: Some(all[0].id), limit: 1, ..Default::default() }).unwrap();
    assert_eq!(page.len(), 1);
    assert_eq!(page[0].id, all[1].id);
}

fn a_failed_transaction_writes_nothing(store: &dyn Store) {
    let before = store.snapshot().unwrap();
    let late = [user("late", Status::Active)];
    let r = store.transaction(&mut |tx| {
        tx.set_generation(before.generation + 1)?;
        tx.insert_created(&late, None, Timestamp::now())?;
        // What an apply answers when the store changed since its plan.
        Err(StoreError::Conflict { expected: before.generation - 1, found: before.generation })
    });
    assert!(matches!(r, Err(StoreError::Conflict { .. })), "{r:?}");
    assert!(store.user_by_name("late").unwrap().is_none());
    assert_eq!(store.snapshot().unwrap().generation, before.generation);
}

fn users_by_prefix_with_wildcards_taken_literally(store: &dyn Store) {
    let names = |p: &str| -> Vec<String> {
        let q = UserQuery { limit: 10, prefix: Some(p.into()), ..UserQuery::default() };
        store.users_page(&q).unwrap().into_iter().map(|u| u.username.into()).collect()
    };
    assert_eq!(names("B"), ["Bob"], "case folded");
    assert_eq!(names("JOSE\u{301}"), ["jos\u{e9}"], "Unicode forms folded");
    assert_eq!(names("amy d"), ["amy"], "a full name's prefix, case ignored");
    // Unescaped, "_" and "%" would match every full name.
    assert!(names("%").is_empty() && names("_").is_empty(), "LIKE wildcards are literal");
    assert!(names("zz").is_empty());
}

fn groups_by_page_name_and_relations(store: &dyn Store) {
    let page = store.groups_page(None, 2).unwrap();
    assert_eq!(page.iter().map(|g| g.name.as_str()).collect::<Vec<_>>(), ["A", "B"]);
    let last = page.last().unwrap();
    let next = store.groups_page(Some((&last.name, last.id)), 2).unwrap();
    assert_eq!(next.iter().map(|g| g.name.as_str()).collect::<Vec<_>>(), ["C"]);
    let c = store.groups_by_name("c").unwrap();
    assert_eq!(c.len(), 1);
    let r = store.group_relations(c[0].id).unwrap();
    // C: Bob directly; amy through A ∈ B ∈ C; C ∈ A, B ∈ C.
    assert_eq!((r.direct_members, r.all_members), (1, 2), "{r:?}");
    assert_eq!((r.member_of.as_slice(), r.subgroups.as_slice()), (&["A".to_string()][..], &["B".to_string()][..]));
    assert!(store.groups_by_name("nope").unwrap().is_empty());
}

fn the_change_feed_is_in_commit_order_without_gaps(store: &dyn Store) {
    let all = store.changes(0, 10_000).unwrap();
    assert!(!all.is_empty() && all.windows(2).all(|w| w[0].cursor < w[1].cursor));
    assert!(all.iter().any(|c| c.record.action == "create" && c.record.name == "amy"));
    // Paged: every change once, in the same order.
    let mut paged = Vec::new();
    let mut cursor = 0;
    loop {
        let page = store.changes(cursor, 3).unwrap();
        let Some(last) = page.last() else { break };
        cursor = last.cursor;
        paged.extend(page.into_iter().map(|c| c.cursor));
    }
    assert_eq!(paged, all.iter().map(|c| c.cursor).collect::<Vec<_>>());
    assert!(store.changes(cursor, 10).unwrap().is_empty(), "nothing after the last");
}
