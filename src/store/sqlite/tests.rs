//! SQLite store tests: generation checks, rollback, reopening.

use super::*;
use crate::engine::history::{now, RunStatus};
use crate::engine::plan::{NewUser, Plan};

fn run(store: &SqliteStore) -> RunRecord {
    RunRecord { errors: vec![EntryError::new("uid=x", "why")], ..crate::store::suite::record(store) }
}

fn plan_with(username: &str) -> Plan {
    Plan {
        creates: vec![NewUser {
            source: "s".into(),
            external_id: format!("id-{username}").into(),
            dn: format!("uid={username}").into(),
            username: username.into(),
            fields: Fields::default(),
            dir_values: Fields::default(),
            status: Status::Active,
            rules_applied: vec![],
            seq: 0,
        }],
        ..Plan::default()
    }
}

#[test]
fn apply_checks_the_generation_and_rolls_back_on_error() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("t.db")).unwrap();
    let snap = store.snapshot().unwrap();
    let r = run(&store);
    crate::engine::apply::apply(&store, &plan_with("amy"), snap.generation, &r, now(), &[], &Default::default())
        .unwrap();
    assert_eq!(store.snapshot().unwrap().generation, snap.generation + 1);

    // A plan made from the old snapshot is refused, and nothing of it lands.
    let r2 = run(&store);
    let err =
        crate::engine::apply::apply(&store, &plan_with("bob"), snap.generation, &r2, now(), &[], &Default::default())
            .unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err}");
    let names: Vec<String> = store.snapshot().unwrap().users.into_iter().map(|u| u.username.into()).collect();
    assert_eq!(names, ["amy"]);

    // A failure in the middle (a username already taken) rolls back the whole transaction.
    let gen = store.snapshot().unwrap().generation;
    let mut plan = plan_with("cat");
    plan.creates.extend(plan_with("AMY").creates);
    assert!(crate::engine::apply::apply(&store, &plan, gen, &r2, now(), &[], &Default::default()).is_err());
    let snap = store.snapshot().unwrap();
    assert_eq!(snap.users.len(), 1, "cat was rolled back with the failed run");
    assert_eq!(snap.generation, gen);

    let runs = store.runs(10).unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[1].errors, vec![EntryError::new("uid=x", "why")], "errors are stored with the run");
    assert_eq!(runs[0].status, RunStatus::Running, "the failed apply did not finish its run");
}

#[test]
fn reopening_keeps_data_and_schema_version() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    {
        let store = SqliteStore::open(&path).unwrap();
        let r = run(&store);
        crate::engine::apply::apply(&store, &plan_with("amy"), 0, &r, now(), &[], &Default::default()).unwrap();
    }
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.snapshot().unwrap().users.len(), 1);
    let v: i64 = store.write().query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
    assert_eq!(v as usize, super::schema::MIGRATIONS.len());
}

#[test]
fn sqlite_errors_say_what_is_wrong_and_where() {
    let p = Path::new("/srv/app/dirsync.db");
    let e = |code| rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), None);
    let m = super::open::explain(p, e(rusqlite::ffi::SQLITE_CANTOPEN)).to_string();
    assert!(m.contains("/srv/app/dirsync.db") && m.contains("folder /srv/app") && m.contains("dirsync.db-wal"), "{m}");
    let m = super::open::explain(p, e(rusqlite::ffi::SQLITE_NOTADB)).to_string();
    assert!(m.contains("not a dirsync store"), "{m}");
    let m = super::open::explain(p, e(rusqlite::ffi::SQLITE_CORRUPT)).to_string();
    assert!(m.contains("damaged") && m.contains("backup"), "{m}");
    let full = super::open::explain(p, e(rusqlite::ffi::SQLITE_FULL));
    assert!(matches!(full, StoreError::Unavailable { .. }) && full.to_string().contains("disk is full"), "{full}");
    // The kind is kept: busy can be retried, a constraint is a refused write.
    assert!(matches!(super::open::explain(p, e(rusqlite::ffi::SQLITE_BUSY)), StoreError::Busy { .. }));
    assert!(matches!(super::open::explain(p, e(rusqlite::ffi::SQLITE_CONSTRAINT)), StoreError::Constraint { .. }));
}

#[test]
fn an_older_store_is_rekeyed_once_by_migration_4() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    {
        let store = SqliteStore::open(&path).unwrap();
        let r = run(&store);
        crate::engine::apply::apply(&store, &plan_with("Jose\u{301}"), 0, &r, now(), &[], &Default::default()).unwrap();
        // As a version-3 store wrote it: lower-cased, not folded; no dn_key.
        store
            .write()
            .execute_batch(
                "UPDATE users SET username_key = lower(username), dn_key = NULL; DROP TABLE run_removals; DROP TABLE run_plans; DROP INDEX audit_run; DROP TABLE schedule_slots; DROP TABLE scim_resources; DROP INDEX runs_source_mode; DROP TABLE webhooks; DROP TABLE claims; ALTER TABLE audit DROP COLUMN image; ALTER TABLE runs DROP COLUMN triggered_by; ALTER TABLE runs DROP COLUMN slot; ALTER TABLE runs DROP COLUMN instance; PRAGMA user_version = 3;",
            )
            .unwrap();
    }
    let store = SqliteStore::open(&path).unwrap();
    let (key, dn_key): (String, Option<String>) =
        store.write().query_row("SELECT username_key, dn_key FROM users", [], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
    assert_eq!(key, crate::model::name_key("jos\u{e9}"));
    assert!(dn_key.is_some());
    let v: i64 = store.write().query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
    assert_eq!(v as usize, super::schema::MIGRATIONS.len(), "and every later migration ran");
}

#[test]
fn a_cloned_handle_reads_from_other_threads_while_one_writes() {
    fn shareable<T: Send + Sync + Clone + 'static>() {}
    shareable::<SqliteStore>();
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("t.db")).unwrap();
    let r = run(&store);
    crate::engine::apply::apply(&store, &plan_with("amy"), 0, &r, now(), &[], &Default::default()).unwrap();
    let before = store.snapshot().unwrap().generation;
    // A write transaction held open on one thread...
    let (started_tx, started) = std::sync::mpsc::channel();
    let (release, release_rx) = std::sync::mpsc::channel::<()>();
    let w = store.clone();
    let writer = std::thread::spawn(move || {
        w.transaction(&mut |tx| {
            tx.set_generation(99)?;
            started_tx.send(()).unwrap();
            release_rx.recv().unwrap();
            Ok(())
        })
    });
    started.recv().unwrap();
    // ...does not stop reads on others, which see the committed state.
    let readers: Vec<_> = (0..6)
        .map(|_| {
            let r = store.clone();
            std::thread::spawn(move || r.snapshot().unwrap())
        })
        .collect();
    for h in readers {
        let snap = h.join().unwrap();
        assert_eq!((snap.generation, snap.users.len()), (before, 1));
    }
    release.send(()).unwrap();
    writer.join().unwrap().unwrap();
    assert_eq!(store.snapshot().unwrap().generation, 99);
}

#[test]
fn the_store_suite_passes_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    crate::store::suite::run_all(&SqliteStore::open(&dir.path().join("suite.db")).unwrap());
    crate::store::suite::run_all(&SqliteStore::open_for_dry_run(&dir.path().join("absent.db")).unwrap());
}

#[test]
fn a_stored_field_of_another_type_than_text_is_an_error_not_an_absent_value() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let store = SqliteStore::open(&path).unwrap();
    let gen = store.snapshot().unwrap().generation;
    let r = run(&store);
    let mut plan = plan_with("amy");
    plan.creates[0].fields.insert("full_name".into(), "Amy".into());
    crate::engine::apply::apply(&store, &plan, gen, &r, now(), &[], &Default::default()).unwrap();
    assert_eq!(store.snapshot().unwrap().users[0].fields.get("full_name"), Some("Amy"));
    // Edited behind dirsync's back: a value it never writes.
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute("UPDATE users SET full_name = x'4142'", []).unwrap(); // a blob: TEXT affinity keeps it one
    drop(conn);
    assert!(store.snapshot().is_err(), "an unreadable field must not read as absent (the sync would overwrite it)");
}
