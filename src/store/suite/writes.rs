//! The suite's write checks: users and groups changed and removed inside
//! transactions, audit rows, users written early and taken back or
//! rewritten, saved positions, field values, and partial snapshots.

use super::{group, user, Store};
use crate::model::records::AuditRecord;
use crate::model::Status;
use crate::store::{SavedState, SnapshotQuery, UserPatch};
use crate::time::Timestamp;

pub(super) fn users_are_updated_renamed_and_deleted(store: &dyn Store) {
    let (before, _) = store.counts().unwrap();
    let mut id = 0;
    store
        .transaction(&mut |tx| tx.insert_user(&user("ulla", Status::Active), Timestamp::now()).map(|i| id = i))
        .unwrap();
    // Times are kept to the millisecond.
    let since = Timestamp::parse("2026-01-02T03:04:05.678Z").unwrap();
    let patch = UserPatch {
        username: Some("Ulrika"),
        dn: Some("uid=ulrika,dc=t"),
        status: Some(Status::Disabled),
        missing_since: Some(Some(since)),
        fields: vec![("full_name", Some("Ulrika Doe")), ("room", Some("12"))],
        dir_values: vec![("room", Some("12"))],
        ..UserPatch::default()
    };
    store.transaction(&mut |tx| tx.update_user(id, &patch, Timestamp::now())).unwrap();
    assert!(store.user_by_name("ulla").unwrap().is_none(), "renamed");
    let u = store.user_by_name("ulrika").unwrap().expect("found by its new name, case folded");
    assert_eq!((u.id, &*u.username, &*u.dn, u.status), (id, "Ulrika", "uid=ulrika,dc=t", Status::Disabled));
    assert_eq!((u.fields.get("full_name"), u.fields.get("room")), (Some("Ulrika Doe"), Some("12")));
    assert_eq!((u.dir_values.get("room"), u.missing_since), (Some("12"), Some(since)));
    // A field set to None is cleared; missing_since Some(None) is "back".
    let patch = UserPatch { fields: vec![("room", None)], missing_since: Some(None), ..UserPatch::default() };
    store.transaction(&mut |tx| tx.update_user(id, &patch, Timestamp::now())).unwrap();
    let u = store.user_by_name("ulrika").unwrap().unwrap();
    assert_eq!((u.fields.get("room"), u.missing_since), (None, None));
    let (during, _) = store.counts().unwrap();
    let disabled =
        |c: &[((String, Status), u64)]| c.iter().find(|(k, _)| *k == ("s".into(), Status::Disabled)).map_or(0, |c| c.1);
    assert_eq!(disabled(&during), disabled(&before) + 1);
    store.transaction(&mut |tx| tx.delete_user(id)).unwrap();
    assert!(store.user_by_name("ulrika").unwrap().is_none());
    assert_eq!(disabled(&store.counts().unwrap().0), disabled(&before));
}

pub(super) fn groups_are_renamed_and_deleted_with_their_memberships(store: &dyn Store) {
    let (mut uid, mut g1, mut g2) = (0, 0, 0);
    store
        .transaction(&mut |tx| {
            uid = tx.insert_user(&user("gus", Status::Active), Timestamp::now())?;
            g1 = tx.insert_group(&group("G1"), Timestamp::now())?;
            g2 = tx.insert_group(&group("G2"), Timestamp::now())?;
            tx.add_user_member(uid, g1)?;
            tx.add_group_member(g1, g2)
        })
        .unwrap();
    assert_eq!(store.groups_of_user(uid).unwrap().all, ["G1", "G2"]);
    store.transaction(&mut |tx| tx.update_group(g2, "Gee", "cn=gee,dc=t", Timestamp::now())).unwrap();
    let gee = store.groups_by_name("gee").unwrap();
    assert_eq!((gee.len(), gee[0].id, gee[0].dn.as_str()), (1, g2, "cn=gee,dc=t"));
    assert!(store.groups_by_name("G2").unwrap().is_empty());
    store.transaction(&mut |tx| tx.remove_group_member(g1, g2)).unwrap();
    assert_eq!(store.groups_of_user(uid).unwrap().all, ["G1"], "no longer nested");
    store.transaction(&mut |tx| tx.remove_user_member(uid, g1)).unwrap();
    assert!(store.groups_of_user(uid).unwrap().all.is_empty());
    store.transaction(&mut |tx| tx.add_user_member(uid, g1)).unwrap();
    store.transaction(&mut |tx| tx.delete_group(g1)).unwrap();
    assert!(store.groups_by_name("G1").unwrap().is_empty());
    assert!(store.groups_of_user(uid).unwrap().all.is_empty(), "a deleted group's memberships go with it");
}

pub(super) fn audit_rows_are_read_per_user_newest_first(store: &dyn Store) {
    let amy = store.user_by_name("amy").unwrap().unwrap();
    let row = |field: &str| AuditRecord {
        run_id: None,
        at: Timestamp::now(),
        user_id: Some(amy.id),
        name: "amy".into(),
        action: "update".into(),
        field: Some(field.into()),
        old: Some("old".into()),
        new: None,
        image: None,
    };
    store.transaction(&mut |tx| tx.audit(&row("first")).and_then(|_| tx.audit(&row("second")))).unwrap();
    let got = store.audit_of(amy.id, 2).unwrap();
    assert_eq!(got.iter().map(|r| r.field.as_deref().unwrap()).collect::<Vec<_>>(), ["second", "first"]);
    assert_eq!((got[0].old.as_deref(), got[0].new.as_deref()), (Some("old"), None));
    let all = store.audit_of(amy.id, 100).unwrap();
    assert_eq!(all.last().unwrap().action, "create", "the oldest is the user's creation");
}

pub(super) fn users_written_early_are_taken_back_or_rewritten_in_their_transaction(store: &dyn Store) {
    let cursor = store.changes(0, 100_000).unwrap().last().map_or(0, |c| c.cursor);
    store
        .transaction(&mut |tx| {
            let ids = tx.insert_created(
                &[user("early1", Status::Active), user("early2", Status::Active)],
                None,
                Timestamp::now(),
            )?;
            tx.remove_created(ids[0].0, ids[0].1)?;
            tx.replace_created(ids[1].0, ids[1].1, &user("later2", Status::Disabled), Timestamp::now())
        })
        .unwrap();
    assert!(store.user_by_name("early1").unwrap().is_none() && store.user_by_name("early2").unwrap().is_none());
    let later = store.user_by_name("later2").unwrap().expect("rewritten");
    assert_eq!(later.status, Status::Disabled);
    let feed = store.changes(cursor, 100).unwrap();
    let names: Vec<(&str, &str)> = feed.iter().map(|c| (c.record.action.as_str(), c.record.name.as_str())).collect();
    assert_eq!(names, [("create", "later2")], "the taken-back user leaves no row; the rewritten one's row names it");
}

pub(super) fn saved_positions_are_per_source_and_keep_the_last_full_read(store: &dyn Store) {
    assert!(store.sync_state("s").unwrap().is_none());
    let saved =
        |state: &str| SavedState { state: Some(state.into()), last_full_at: None, fingerprint: Some("f1".into()) };
    store.transaction(&mut |tx| tx.set_sync_state("s", &saved("c1"), true, Timestamp::now())).unwrap();
    let full = store.sync_state("s").unwrap().unwrap();
    assert_eq!((full.state.as_deref(), full.fingerprint.as_deref()), (Some("c1"), Some("f1")));
    let full_at = full.last_full_at.expect("a full read is dated");
    store.transaction(&mut |tx| tx.set_sync_state("s", &saved("c2"), false, Timestamp::now())).unwrap();
    let delta = store.sync_state("s").unwrap().unwrap();
    assert_eq!(
        (delta.state.as_deref(), delta.last_full_at),
        (Some("c2"), Some(full_at)),
        "a delta keeps the full read's date"
    );
    assert!(store.sync_state("other").unwrap().is_none());
}

pub(super) fn field_values_list_core_and_custom_fields_and_the_generation_moves(store: &dyn Store) {
    store
        .transaction(&mut |tx| {
            let mut u = user("fay", Status::Active);
            u.fields.insert("code".into(), "4711".into());
            tx.insert_user(&u, Timestamp::now())?;
            let names = tx.field_values("full_name")?;
            assert!(names.iter().any(|n| n == "amy Doe") && names.iter().any(|n| n == "fay Doe"), "{names:?}");
            assert_eq!(tx.field_values("code")?, ["4711"]);
            assert!(tx.field_values("nothing")?.is_empty());
            let g = tx.generation()?;
            tx.set_generation(g + 5)?;
            assert_eq!(tx.generation()?, g + 5);
            Ok(())
        })
        .unwrap();
}

pub(super) fn a_partial_snapshot_holds_what_a_delta_touches(store: &dyn Store) {
    let full = store.snapshot().unwrap();
    let q = SnapshotQuery { user_ids: vec![("s".into(), "id-amy".into())], ..SnapshotQuery::default() };
    let part = store.partial_snapshot(&q).unwrap();
    assert_eq!(part.generation, full.generation);
    let names: Vec<&str> = part.users.iter().map(|u| &*u.username).collect();
    assert_eq!(names, ["amy"], "only the named user");
    assert_eq!(part.groups.len(), full.groups.len(), "every group");
    let amy = part.users[0].id;
    assert!(part.user_groups.iter().all(|(u, _)| *u == amy) && !part.user_groups.is_empty(), "amy's memberships");
    let active = part.active_by_source.expect("a partial snapshot counts active users per source");
    let counted = full.users.iter().filter(|u| &*u.source == "s" && u.status == Status::Active).count();
    assert_eq!(active.get("s").copied(), Some(counted));
    // A user named by username key, and the members of a changed group.
    let q = SnapshotQuery {
        username_keys: vec!["bob".into()],
        group_ids: vec![("s".into(), "g-A".into())],
        ..SnapshotQuery::default()
    };
    let mut names: Vec<String> =
        store.partial_snapshot(&q).unwrap().users.into_iter().map(|u| u.username.to_string()).collect();
    names.sort();
    assert_eq!(names, ["Bob", "amy"]);
}

pub(super) fn a_handle_is_the_same_store_and_it_checks_whole(store: &dyn Store) {
    let h = store.handle();
    let via_handle = std::thread::spawn(move || h.user_by_name("amy").unwrap().map(|u| u.id)).join().unwrap();
    assert_eq!(via_handle, store.user_by_name("amy").unwrap().map(|u| u.id));
    store.integrity_check().unwrap();
}

pub(super) fn a_runs_changes_are_read_in_the_order_written(store: &dyn Store) {
    let run = super::record(store);
    let users = [user("rc1", Status::Active), user("rc2", Status::Active), user("rc3", Status::Active)];
    store.transaction(&mut |tx| tx.insert_created(&users, Some(run.id), Timestamp::now()).map(drop)).unwrap();
    let all = store.run_changes(run.id, 100).unwrap();
    let names: Vec<(&str, &str)> = all.iter().map(|c| (c.action.as_str(), c.name.as_str())).collect();
    assert_eq!(names, [("create", "rc1"), ("create", "rc2"), ("create", "rc3")]);
    assert!(all.iter().all(|c| c.run_id == Some(run.id)));
    assert_eq!(store.run_changes(run.id, 2).unwrap().len(), 2, "at most the limit");
    assert!(store.run_changes(run.id + 1000, 10).unwrap().is_empty());
}
