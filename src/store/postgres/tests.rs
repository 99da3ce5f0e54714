use super::testing::fresh_database;
use super::PgStore;
use crate::store::{Store, StoreError};

#[test]
fn the_store_suite_passes_on_postgresql() {
    crate::store::suite::run_all(&PgStore::open(&fresh_database()).unwrap());
}

#[test]
fn a_store_newer_than_this_build_is_refused_and_an_empty_database_is_not_created() {
    let cfg = fresh_database();
    assert!(matches!(PgStore::open_existing(&cfg), Err(StoreError::NotCreated { .. })));
    assert!(!PgStore::check(&cfg).unwrap());
    assert_eq!(PgStore::migrate(&cfg).unwrap(), (0, crate::store::SCHEMA_VERSION));
    assert_eq!(PgStore::migrate(&cfg).unwrap(), (crate::store::SCHEMA_VERSION, crate::store::SCHEMA_VERSION));
    super::testing::psql(&cfg.url, "UPDATE dirsync_schema SET version = 99");
    let e = PgStore::open(&cfg).err().expect("refused");
    assert!(matches!(e, StoreError::TooNew { found: 99, .. }), "{e}");
    assert!(e.to_string().contains("upgrade dirsync"), "{e}");
}

#[test]
fn the_password_never_shows_in_the_stores_name_or_errors() {
    let mut cfg = fresh_database();
    cfg.url = cfg.url.replace("postgres:secret@", "postgres:hunter2wrong@");
    assert!(!cfg.describe().contains("hunter2wrong"), "{}", cfg.describe());
    assert!(!format!("{cfg:?}").contains("hunter2wrong"));
    let e = PgStore::open(&cfg).err().expect("a wrong password is refused").to_string();
    assert!(!e.contains("hunter2wrong"), "{e}");
    assert!(e.contains("password"), "{e}");
}

#[test]
fn concurrent_writers_never_let_the_feed_skip_a_late_commit() {
    // A long transaction writes an audit row first; another commits one
    // while the first is open. A reader that saw the second must not be
    // past the first's row when it commits.
    let cfg = fresh_database();
    let store = PgStore::open(&cfg).unwrap();
    let audit = |name: &str| crate::model::records::AuditRecord {
        run_id: None,
        at: crate::time::Timestamp::now(),
        user_id: None,
        name: name.into(),
        action: "note".into(),
        field: None,
        old: None,
        new: None,
        image: None,
    };
    let mut long = store.write_session().unwrap();
    let a = audit("first");
    long.run(Box::new(move |tx| tx.audit(&a))).unwrap();
    // The first's row is sent (the session flushes at the end of each call).
    let s2 = store.clone();
    let second = std::thread::spawn(move || s2.transaction(&mut |tx| tx.audit(&audit("second"))));
    // The second writer is waiting for the first's feed lock (the server says so).
    let t0 = std::time::Instant::now();
    let waiting = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())";
    while super::testing::psql(&cfg.url, waiting) != "1" {
        assert!(t0.elapsed() < std::time::Duration::from_secs(10), "the second writer never waited");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(store.changes(0, 10).unwrap().is_empty(), "nothing committed yet");
    long.commit().unwrap();
    second.join().unwrap().unwrap();
    let seen: Vec<String> = store.changes(0, 10).unwrap().into_iter().map(|c| c.record.name).collect();
    assert_eq!(seen, ["first", "second"]);
}

#[test]
fn queued_runs_of_a_present_instance_are_kept_and_of_a_gone_one_abandoned() {
    use crate::model::records::{RunOrigin, RunSources, Trigger};
    let store = PgStore::open(&fresh_database()).unwrap();
    let now = crate::time::Timestamp::now;
    let origin = |i: &str| RunOrigin::new(Trigger::Api, i);
    let alive = store.queue_run(&RunSources::new(["s"]), now(), false, &origin("alive:1")).unwrap();
    let gone = store.queue_run(&RunSources::new(["s"]), now(), false, &origin("gone:1")).unwrap();
    let present = store.presence("alive:1").unwrap();
    assert_eq!(store.abandon_queued(now(), None).unwrap(), 1);
    let status = |id| store.run_by_id(id).unwrap().unwrap().status;
    use crate::model::records::RunStatus;
    assert_eq!((status(alive), status(gone)), (RunStatus::Queued, RunStatus::Interrupted));
    drop(present);
    assert_eq!(store.abandon_queued(now(), None).unwrap(), 1, "its presence ended with its connection");
}

#[test]
fn a_membership_that_points_nowhere_fails_the_integrity_check() {
    let cfg = fresh_database();
    let store = PgStore::open(&cfg).unwrap();
    store.integrity_check().unwrap();
    // Memberships carry no foreign keys on this backend: the check looks.
    super::testing::psql(&cfg.url, "INSERT INTO user_groups (user_id, group_id) VALUES (4242, 4343)");
    let e = store.integrity_check().unwrap_err().to_string();
    assert!(e.contains("1 rows point at users or groups that do not exist"), "{e}");
    let e = PgStore::check(&cfg).unwrap_err().to_string();
    assert!(e.contains("point at users or groups"), "`dirsync check` runs it too: {e}");
}
