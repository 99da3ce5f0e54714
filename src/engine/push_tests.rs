//! Pushes against a real SQLite store: create, update, deactivate, delete
//! and re-link; a username another source owns; the push guard's hour.

use serde_json::json;

use super::*;
use crate::model::records::Trigger;
use crate::model::Status;
use crate::store::sqlite::SqliteStore;

const TOKEN: &str = "0123456789abcdef0123456789abcdef";

fn setup(extra: &str) -> (tempfile::TempDir, Config, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("t.token"), TOKEN).unwrap();
    std::fs::write(
        dir.path().join("hr.ldif"),
        "dn: uid=hank,dc=x\nobjectClass: inetOrgPerson\nuid: hank\ncn: Hank\nentryUUID: h-1\n\n",
    )
    .unwrap();
    let text = format!(
        "[[sources]]\nname = \"hr\"\ntype = \"ldif\"\npath = \"hr.ldif\"\npriority = 1\n[sources.fields]\nusername = \"uid\"\nfull_name = \"cn\"\n\
         [[sources]]\nname = \"idp\"\ntype = \"scim\"\ntoken_file = \"t.token\"\npriority = 2\n{extra}"
    );
    let cfg = Config::parse(&text, &dir.path().join("dirsync.toml")).unwrap();
    let store = SqliteStore::open(&dir.path().join("t.db")).unwrap();
    (dir, cfg, store)
}

fn origin() -> RunOrigin {
    RunOrigin::new(Trigger::Scim, "test")
}

fn upsert(cfg: &Config, store: &SqliteStore, id: &str, body: serde_json::Value) -> Result<Pushed, PushError> {
    let paths = crate::sources::scim::mapped_paths(&cfg.sources[1]);
    let entry = crate::sources::scim::user_entry(id, &body, &paths);
    push(cfg, store, "idp", Change::Upsert(EntryKind::User, entry), None, &origin(), &OpenRuns::default())
}

fn gone(cfg: &Config, store: &SqliteStore, id: &str) -> Result<Pushed, PushError> {
    push(cfg, store, "idp", Change::Gone(EntryKind::User, id.into()), None, &origin(), &OpenRuns::default())
}

#[test]
fn a_push_creates_updates_deactivates_and_deletes_through_one_push_run() {
    let (_d, cfg, store) = setup("[sources.safety]\nmax_delete_percent = 100\n");
    let ada = json!({"userName": "ada", "name": {"givenName": "Ada", "familyName": "Lovelace"},
        "emails": [{"value": "ada@example.com", "primary": true}], "active": true});
    let p = upsert(&cfg, &store, "s-1", ada.clone()).unwrap();
    assert_eq!(p.counts.created, 1);
    let u = store.user_by_name("ada").unwrap().expect("created");
    assert_eq!(u.fields.get("full_name"), Some("Ada Lovelace"), "given and family names when nothing else");
    assert_eq!(u.fields.get("email"), Some("ada@example.com"));
    let mut changed = ada.clone();
    changed["name"]["formatted"] = json!("Countess Ada");
    let p2 = upsert(&cfg, &store, "s-1", changed.clone()).unwrap();
    assert_eq!((p2.counts.updated, p2.run_id), (1, p.run_id), "one push run for the window");
    changed["active"] = json!(false);
    assert_eq!(upsert(&cfg, &store, "s-1", changed).unwrap().counts.disabled, 1);
    assert_eq!(store.user_by_name("ada").unwrap().unwrap().status, Status::Disabled);
    let run = store.run_by_id(p.run_id).unwrap().unwrap();
    assert_eq!((run.mode, run.counts.created, run.counts.updated, run.counts.disabled), (RunMode::Push, 1, 1, 1));
    let actions: Vec<String> = store.run_changes(p.run_id, 10).unwrap().into_iter().map(|a| a.action).collect();
    assert_eq!(actions, ["create", "update", "disable"]);
    // Deleted, then pushed again under a new id: the same dirsync user, re-linked.
    gone(&cfg, &store, "s-1").unwrap();
    let p4 = upsert(&cfg, &store, "s-2", ada).unwrap();
    let again = store.user_by_name("ada").unwrap().unwrap();
    assert_eq!((again.id, again.status, &*again.external_id), (u.id, Status::Active, "s-2"), "{p4:?}");
}

#[test]
fn a_username_a_higher_priority_source_owns_is_taken_and_nothing_changes() {
    let (d, cfg, store) = setup("");
    crate::engine::sync::run(&cfg, &store, &Default::default(), Default::default()).now_or_never_blocking();
    assert!(store.user_by_name("hank").unwrap().is_some());
    let e = upsert(&cfg, &store, "s-9", json!({"userName": "HANK", "displayName": "Impostor"})).unwrap_err();
    assert!(matches!(e, PushError::Taken(_)), "{e:?}");
    assert_eq!(store.user_by_name("hank").unwrap().unwrap().fields.get("full_name"), Some("Hank"));
    drop(d);
}

#[test]
fn a_value_that_fails_validation_is_invalid_and_names_the_field() {
    let (_d, cfg, store) = setup("");
    let e = upsert(&cfg, &store, "s-1", json!({"displayName": "No Name"})).unwrap_err();
    match e {
        PushError::Invalid(m) => assert!(m.to_lowercase().contains("username"), "{m}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_push_guard_holds_removals_beyond_the_hours_threshold_until_approved() {
    let (_d, cfg, store) = setup("[sources.safety]\nmax_delete_percent = 20\n");
    for i in 0..10 {
        upsert(&cfg, &store, &format!("s-{i}"), json!({"userName": format!("u{i}"), "displayName": "U"})).unwrap();
    }
    gone(&cfg, &store, "s-0").unwrap();
    gone(&cfg, &store, "s-1").unwrap();
    let held = match gone(&cfg, &store, "s-2").unwrap_err() {
        PushError::Held { run_id, reason } => {
            assert!(reason.contains("max_delete_percent = 20"), "{reason}");
            run_id
        }
        other => panic!("{other:?}"),
    };
    let deact = upsert(&cfg, &store, "s-3", json!({"userName": "u3", "displayName": "U", "active": false}));
    assert!(matches!(deact, Err(PushError::Held { run_id, .. }) if run_id == held), "one blocked run gathers them");
    assert_eq!(store.user_by_name("u2").unwrap().unwrap().status, Status::Active, "held: nothing changed");
    let blocked = store.run_by_id(held).unwrap().unwrap();
    assert_eq!((blocked.status, blocked.mode), (RunStatus::Blocked, RunMode::Push));
    let names: Vec<String> = store.removals_of(held).unwrap().into_iter().map(|r| r.name).collect();
    assert_eq!(names, ["u2", "u3"]);
    assert_eq!(approve(&store, held).unwrap().len(), 2);
    gone(&cfg, &store, "s-2").unwrap();
    upsert(&cfg, &store, "s-3", json!({"userName": "u3", "displayName": "U", "active": false})).unwrap();
    assert_eq!(store.user_by_name("u3").unwrap().unwrap().status, Status::Disabled);
    // Not approved: still held.
    assert!(matches!(gone(&cfg, &store, "s-4"), Err(PushError::Held { .. })));
    assert!(matches!(approve(&store, held), Err(ApprovePushError::NotHeld(_))), "approved once");
}

/// Runs a future to its end on a runtime of its own (the sync is async).
trait Blocking {
    fn now_or_never_blocking(self);
}

impl<F: std::future::Future<Output = Result<crate::engine::sync::SyncOutcome, crate::engine::sync::SyncError>>> Blocking
    for F
{
    fn now_or_never_blocking(self) {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let o = rt.block_on(self).unwrap();
        assert_eq!(o.status, RunStatus::Ok, "{o:?}");
    }
}
