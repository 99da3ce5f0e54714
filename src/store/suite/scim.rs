//! The suite's SCIM part: resources found by id, name key and externalId
//! while live and never after their deletion, listed in id order per
//! source, a live userName unique per source, and push runs gathered by
//! source and time with the push guard's window counting their removals.

use crate::model::records::{Counts, RunOrigin, Trigger};
use crate::model::EntryError;
use crate::store::{ScimKey, ScimRow, Store};
use crate::time::Timestamp;

fn resource(id: &str, source: &str, name: &str, ext: Option<&str>) -> ScimRow {
    let at = Timestamp::now();
    ScimRow {
        id: id.into(),
        source: source.into(),
        kind: "User".into(),
        name_key: name.into(),
        external_id: ext.map(str::to_string),
        body: format!("{{\"userName\":\"{name}\"}}"),
        created: at,
        modified: at,
        version: 1,
    }
}

pub(super) fn scim_resources_are_found_while_live_and_their_ids_kept(store: &dyn Store) {
    let put = |r: ScimRow| store.transaction(&mut |tx| tx.scim_put(&r)).unwrap();
    put(resource("a1", "okta", "ada", Some("E-1")));
    put(resource("a2", "okta", "bob", None));
    put(resource("b1", "entra", "ada", Some("e-1")));
    let ids = |rows: Vec<ScimRow>| rows.into_iter().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(ids(store.scim_find("okta", "User", ScimKey::Name, "ada").unwrap()), ["a1"], "per source");
    assert_eq!(ids(store.scim_find("okta", "User", ScimKey::ExternalId, "E-1").unwrap()), ["a1"]);
    assert!(
        store.scim_find("okta", "User", ScimKey::ExternalId, "e-1").unwrap().is_empty(),
        "externalId is case-exact"
    );
    assert!(store.scim_find("okta", "Group", ScimKey::Id, "a1").unwrap().is_empty(), "per kind");
    assert_eq!(ids(store.scim_scan("okta", "User", None, 10).unwrap()), ["a1", "a2"]);
    assert_eq!(ids(store.scim_scan("okta", "User", Some("a1"), 10).unwrap()), ["a2"]);
    assert_eq!(store.scim_count("okta", "User").unwrap(), 2);
    // A second live resource with a taken name is refused; a new version is not.
    assert!(store.transaction(&mut |tx| tx.scim_put(&resource("a3", "okta", "ada", None))).is_err());
    let mut v2 = resource("a1", "okta", "ada", Some("E-2"));
    v2.version = 2;
    put(v2);
    let got = store.scim_find("okta", "User", ScimKey::Id, "a1").unwrap().remove(0);
    assert_eq!((got.version, got.external_id.as_deref()), (2, Some("E-2")));
    let at = Timestamp::now();
    store.transaction(&mut |tx| tx.scim_delete("okta", "a1", at)).unwrap();
    assert!(store.scim_find("okta", "User", ScimKey::Id, "a1").unwrap().is_empty(), "deleted: gone");
    assert_eq!(store.scim_count("okta", "User").unwrap(), 1);
    // Its name is free again; its id is still taken.
    put(resource("a4", "okta", "ada", None));
    assert_eq!(ids(store.scim_find("okta", "User", ScimKey::Name, "ada").unwrap()), ["a4"]);
}

pub(super) fn push_runs_gather_a_window_and_count_its_removals(store: &dyn Store) {
    let origin = RunOrigin::new(Trigger::Scim, "i1");
    let t0 = Timestamp::now();
    let since = t0.minus(std::time::Duration::from_secs(60));
    let id = store.push_run("okta", since, &origin, t0, false).unwrap();
    assert_eq!(store.push_run("okta", since, &origin, t0, false).unwrap(), id, "the same window: the same run");
    assert_ne!(store.push_run("entra", since, &origin, t0, false).unwrap(), id, "another source: another run");
    let other = RunOrigin::new(Trigger::Scim, "i2");
    assert_ne!(store.push_run("okta", since, &other, t0, false).unwrap(), id, "another instance: another run");
    let c = Counts { disabled: 2, updated: 1, ..Counts::default() };
    let audit = |action: &str| crate::model::records::AuditRecord {
        run_id: Some(id),
        at: t0,
        user_id: None,
        name: "x".into(),
        action: action.into(),
        field: None,
        old: None,
        new: None,
        image: None,
    };
    store
        .transaction(&mut |tx| {
            tx.add_to_run(id, &c, &[EntryError::new("Users/1", "why")], t0)?;
            tx.add_to_run(id, &c, &[], t0)?;
            tx.audit(&audit("disable"))?;
            tx.audit(&audit("disable"))?;
            tx.audit(&audit("update"))
        })
        .unwrap();
    let run = store.run_by_id(id).unwrap().unwrap();
    assert_eq!((run.counts.disabled, run.counts.updated, run.errors.len()), (4, 2, 1));
    assert_eq!(run.mode.as_str(), "push");
    assert_eq!(store.push_window("okta", since).unwrap().removed, 2);
    assert_eq!(store.push_window("okta", t0.plus(std::time::Duration::from_secs(1))).unwrap().removed, 0);
    let later = t0.plus(std::time::Duration::from_secs(120));
    let next = store.push_run("okta", later.minus(std::time::Duration::from_secs(60)), &origin, later, false).unwrap();
    assert_ne!(next, id, "a new window: a new run");
    // Held removals gather in a blocked push run; once it is approved (ok)
    // they are listed as approved.
    let held = store.push_run("okta", since, &origin, t0, true).unwrap();
    assert!(held != id && held != next);
    let removal = crate::store::PlannedRemoval {
        kind: crate::store::RemovalTarget::User,
        target_id: 42,
        name: "x".into(),
        action: crate::store::RemovalAction::Disable,
    };
    store.transaction(&mut |tx| tx.record_removals(held, std::slice::from_ref(&removal))).unwrap();
    assert!(store.approved_push_removals("okta", since).unwrap().is_empty(), "blocked: not approved yet");
    let mut r = store.run_by_id(held).unwrap().unwrap();
    r.status = crate::model::records::RunStatus::Ok;
    r.errors.clear();
    store.transaction(&mut |tx| tx.finish_run(&r)).unwrap();
    assert_eq!(store.approved_push_removals("okta", since).unwrap(), [42]);
    assert!(store.approved_push_removals("entra", since).unwrap().is_empty());
}
