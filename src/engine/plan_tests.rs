//! Planner tests: every decision of the plan, without any server.

use std::path::Path;

use super::*;
use crate::config::Config;
use crate::engine::batch::Collector;
use crate::model::{AttrValue, EntryKind, RawEntry, StoredGroup, StoredUser};

fn config(extra: &str) -> Config {
    let text = format!(
        "[[sources]]\nname = \"s\"\ntype = \"ldif\"\npath = \"x\"\n[sources.fields]\nusername = \"uid\"\nfull_name = \"cn\"\nemail = \"mail\"\ncard_number = {{ attribute = \"employeeNumber\", on = [\"create\"] }}\n{extra}"
    );
    Config::parse(&text, Path::new("/t.toml")).unwrap()
}

fn user(uid: &str, id: &str, extra: &[(&str, &str)]) -> RawEntry {
    let mut e = RawEntry::new(format!("uid={uid},ou=people,dc=t"));
    e.push("uid", AttrValue::Text(uid.into()));
    e.push("cn", AttrValue::Text(format!("{uid} name")));
    e.push("entryUUID", AttrValue::Text(id.into()));
    for (a, v) in extra {
        e.push(a, AttrValue::Text(v.to_string()));
    }
    e
}

fn group(cn: &str, id: &str, members: &[&str]) -> RawEntry {
    let mut e = RawEntry::new(format!("cn={cn},ou=groups,dc=t"));
    e.push("cn", AttrValue::Text(cn.into()));
    e.push("entryUUID", AttrValue::Text(id.into()));
    for m in members {
        e.push("member", AttrValue::Text(m.to_string()));
    }
    e
}

fn batch(cfg: &Config, entries: Vec<(EntryKind, RawEntry)>) -> SourceBatch {
    let mut c = Collector::new(&cfg.sources[0]);
    for (k, e) in entries {
        c.add(k, e);
    }
    c.finish()
}

fn stored(id: i64, uid: &str, ext: &str, status: Status, fields: &[(&str, &str)]) -> StoredUser {
    StoredUser {
        id,
        source: "s".into(),
        external_id: ext.into(),
        username: uid.into(),
        dn: format!("uid={uid},ou=people,dc=t").into(),
        status,
        missing_since: None,
        dir_values: Default::default(),
        fields: {
            let mut f = crate::model::Fields::default();
            for (k, v) in fields {
                f.insert((*k).into(), v.to_string());
            }
            f
        },
        created_at: Default::default(),
        updated_at: Default::default(),
    }
}

fn full(uid: &str) -> String {
    format!("{uid} name")
}

#[test]
fn diff_pairs_finds_missing_and_surplus_pairs() {
    let desired = vec![(1, 10), (2, 10), (1, 10), (3, 30)];
    let current = vec![(3, 30), (1, 10), (4, 40), (2, 20)];
    let (new, gone) = diff_pairs(desired, current);
    assert_eq!(new, vec![(2, 10)]);
    assert_eq!(gone, vec![(2, 20), (4, 40)]);
    let (new, gone) = diff_pairs(vec![], vec![]);
    assert!(new.is_empty() && gone.is_empty());
}

#[test]
fn first_sync_creates_everything_with_rules_through_nested_groups() {
    let cfg = config("[[rules]]\nwhen_member_of = \"Students\"\nset = { credit = \"10.00\" }\n");
    let b = batch(
        &cfg,
        vec![
            (EntryKind::User, user("amy", "u1", &[("employeeNumber", "7")])),
            (EntryKind::User, user("bob", "u2", &[])),
            (EntryKind::Group, group("Class 5A", "g1", &["uid=amy,ou=people,dc=t"])),
            (EntryKind::Group, group("Students", "g2", &["cn=Class 5A,ou=groups,dc=t"])),
        ],
    );
    let plan = build(&cfg, &Snapshot::default(), &[b]);
    assert_eq!(plan.creates.len(), 2);
    let amy = plan.creates.iter().find(|u| &*u.username == "amy").unwrap();
    assert_eq!(amy.fields.get("credit"), Some("10.00"));
    assert_eq!(amy.fields.get("card_number"), Some("7"));
    let bob = plan.creates.iter().find(|u| &*u.username == "bob").unwrap();
    assert!(!bob.fields.contains_key("credit"));
    assert_eq!(plan.group_creates.len(), 2);
    assert_eq!(plan.member_adds.len(), 2, "amy→Class 5A and Class 5A→Students");
}

#[test]
fn unchanged_entries_plan_nothing() {
    let cfg = config("");
    let b = batch(&cfg, vec![(EntryKind::User, user("amy", "u1", &[]))]);
    let snap = Snapshot {
        users: vec![stored(1, "amy", "u1", Status::Active, &[("full_name", &full("amy"))])],
        ..Default::default()
    };
    let plan = build(&cfg, &snap, &[b]);
    assert!(plan.is_empty(), "{plan:?}");
    assert_eq!(plan.unchanged, 1);
}

#[test]
fn rename_keeps_the_record_and_create_only_fields_are_not_overwritten() {
    let cfg = config("");
    let b = batch(&cfg, vec![(EntryKind::User, user("amy.new", "u1", &[("employeeNumber", "999")]))]);
    let snap = Snapshot {
        users: vec![stored(
            1,
            "amy",
            "u1",
            Status::Active,
            &[("full_name", &full("amy")), ("card_number", "7"), ("credit", "5")],
        )],
        ..Default::default()
    };
    let plan = build(&cfg, &snap, &[b]);
    assert!(plan.creates.is_empty() && plan.removals.is_empty());
    let u = &plan.updates[0];
    assert_eq!(u.id, 1);
    assert_eq!(u.rename_to.as_deref(), Some("amy.new"));
    assert!(u.changes.iter().all(|c| c.field != "card_number" && c.field != "credit"), "{:?}", u.changes);
    assert_eq!(plan.renamed(), 1);
    assert_eq!(plan.updated(), 0);
}

#[test]
fn case_only_username_change_is_an_update_not_a_rename() {
    let cfg = config("");
    let b = batch(&cfg, vec![(EntryKind::User, user("Amy", "u1", &[]))]);
    let snap = Snapshot {
        users: vec![stored(1, "amy", "u1", Status::Active, &[("full_name", "Amy name")])],
        ..Default::default()
    };
    let plan = build(&cfg, &snap, &[b]);
    assert_eq!(plan.renamed(), 0);
    assert_eq!(plan.updates[0].changes[0].field, "username");
}

#[test]
fn missing_users_follow_on_missing_and_skipped_users_are_not_missing() {
    for (policy, expect) in
        [("disable", Some(RemovalKind::Disable)), ("delete", Some(RemovalKind::Delete)), ("keep", None)]
    {
        let cfg = config(&format!("[safety]\non_missing = \"{policy}\"\n"));
        let mut bad = user("carl", "u3", &[]);
        bad.attrs.retain(|(n, _)| n != "cn"); // missing required full_name: skipped
        let b = batch(&cfg, vec![(EntryKind::User, user("amy", "u1", &[])), (EntryKind::User, bad)]);
        let snap = Snapshot {
            users: vec![
                stored(1, "amy", "u1", Status::Active, &[("full_name", &full("amy"))]),
                stored(2, "bob", "u2", Status::Active, &[]),
                stored(3, "carl", "u3", Status::Active, &[]),
            ],
            ..Default::default()
        };
        let plan = build(&cfg, &snap, &[b]);
        match expect {
            Some(kind) => {
                assert_eq!(plan.removals.len(), 1, "{policy}");
                assert_eq!((plan.removals[0].id, plan.removals[0].kind), (2, kind));
            }
            None => assert!(plan.removals.is_empty()),
        }
        assert_eq!(plan.sources[0].active_before, 3);
    }
}

#[test]
fn returning_user_is_enabled() {
    let cfg = config("");
    let b = batch(&cfg, vec![(EntryKind::User, user("amy", "u1", &[]))]);
    let snap = Snapshot {
        users: vec![stored(1, "amy", "u1", Status::Disabled, &[("full_name", &full("amy"))])],
        ..Default::default()
    };
    let plan = build(&cfg, &snap, &[b]);
    assert!(plan.updates[0].enable);
}

#[test]
fn recreated_entry_with_same_username_relinks_the_old_record() {
    let cfg = config("");
    let b = batch(&cfg, vec![(EntryKind::User, user("amy", "u-new", &[]))]);
    let snap = Snapshot {
        users: vec![stored(1, "amy", "u-old", Status::Active, &[("full_name", &full("amy"))])],
        ..Default::default()
    };
    let plan = build(&cfg, &snap, &[b]);
    assert!(plan.creates.is_empty() && plan.removals.is_empty(), "{plan:?}");
    assert_eq!(plan.updates[0].relink_to.as_deref(), Some("u-new"));
}

#[test]
fn username_taken_by_a_live_user_skips_the_newcomer_and_two_users_may_swap() {
    let cfg = config("");
    // bob (u2) still exists with his name; a new entry u3 also claims "bob".
    // Two real entries: the batch keeps both claimants; the planner decides.
    let mut newcomer = user("BOB", "u3", &[]);
    newcomer.dn = "uid=Bob2,ou=people,dc=t".into();
    let b = batch(&cfg, vec![(EntryKind::User, user("bob", "u2", &[])), (EntryKind::User, newcomer)]);
    assert_eq!(b.users.len(), 2);
    let snap = Snapshot {
        users: vec![stored(2, "bob", "u2", Status::Active, &[("full_name", &full("bob"))])],
        ..Default::default()
    };
    let plan = build(&cfg, &snap, &[b]);
    assert!(plan.creates.is_empty());
    // bob is linked to the record by identity: he keeps his name and syncs;
    // only the newcomer is the conflict.
    assert_eq!(plan.errors.len(), 1, "only the newcomer is reported: {:?}", plan.errors);
    assert_eq!(plan.errors[0].dn, "uid=Bob2,ou=people,dc=t");
    assert!(plan.errors[0].reason.contains("already used by user bob"), "{:?}", plan.errors);
    assert_eq!(plan.unchanged, 1, "bob still syncs");

    // amy and bob swap usernames: two renames, no conflict.
    let b = batch(&cfg, vec![(EntryKind::User, user("bob", "u1", &[])), (EntryKind::User, user("amy", "u2", &[]))]);
    let snap = Snapshot {
        users: vec![stored(1, "amy", "u1", Status::Active, &[]), stored(2, "bob", "u2", Status::Active, &[])],
        ..Default::default()
    };
    let plan = build(&cfg, &snap, &[b]);
    assert!(plan.errors.is_empty(), "{:?}", plan.errors);
    assert_eq!(plan.renamed(), 2);
}

#[test]
fn membership_changes_and_skipped_users_keep_theirs() {
    let cfg = config("");
    let mut bad = user("carl", "u3", &[]);
    bad.attrs.retain(|(n, _)| n != "cn");
    let b = batch(
        &cfg,
        vec![
            (EntryKind::User, user("amy", "u1", &[])),
            (EntryKind::User, user("bob", "u2", &[])),
            (EntryKind::User, bad),
            (EntryKind::Group, group("Staff", "g1", &["uid=bob,ou=people,dc=t", "uid=carl,ou=people,dc=t"])),
        ],
    );
    let snap = three_in_staff(["amy", "bob", "carl"], &[(1, 10), (3, 10)]);
    let plan = build(&cfg, &snap, &[b]);
    assert_eq!(plan.member_adds.len(), 1);
    assert_eq!(plan.names_of(&plan.member_adds[0]).0, "bob");
    assert_eq!(plan.member_removes.len(), 1, "amy leaves; skipped carl keeps his membership");
    assert_eq!(plan.names_of(&plan.member_removes[0]).0, "amy");
}

#[test]
fn groups_gone_are_deleted_but_skipped_groups_stay() {
    let cfg = config("");
    let mut bad = group("Broken", "g2", &[]);
    bad.attrs.retain(|(n, _)| n != "cn");
    let b = batch(&cfg, vec![(EntryKind::User, user("amy", "u1", &[])), (EntryKind::Group, bad)]);
    let g = |id, ext: &str, name: &str| StoredGroup {
        id,
        source: "s".into(),
        external_id: ext.into(),
        name: name.into(),
        dn: format!("cn={name}"),
    };
    let snap = Snapshot { groups: vec![g(10, "g1", "Gone"), g(11, "g2", "Broken")], ..Default::default() };
    let plan = build(&cfg, &snap, &[b]);
    assert_eq!(plan.group_deletes.len(), 1);
    assert_eq!(plan.group_deletes[0].name, "Gone");
}

fn delta(deleted_users: &[&str], deleted_groups: &[&str]) -> Option<crate::model::Delta> {
    Some(crate::model::Delta {
        deleted_users: deleted_users.iter().map(|s| s.to_string()).collect(),
        deleted_groups: deleted_groups.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    })
}

fn three_users_in_staff() -> Snapshot {
    three_in_staff(["amy", "bob", "cat"], &[(1, 10), (2, 10)])
}

/// Three stored users (ids 1–3, identities u1–u3) and the group Staff (id 10).
fn three_in_staff(names: [&str; 3], members: &[(i64, i64)]) -> Snapshot {
    Snapshot {
        users: names
            .iter()
            .enumerate()
            .map(|(i, n)| stored(i as i64 + 1, n, &format!("u{}", i + 1), Status::Active, &[("full_name", &full(n))]))
            .collect(),
        groups: vec![StoredGroup {
            id: 10,
            source: "s".into(),
            external_id: "g1".into(),
            name: "Staff".into(),
            dn: "cn=Staff,ou=groups,dc=t".into(),
        }],
        user_groups: members.to_vec(),
        ..Default::default()
    }
}

#[test]
fn a_delta_touches_only_what_it_names() {
    let cfg = config("");
    // amy got an email address; cat was deleted; bob is not mentioned at all.
    let mut b = batch(&cfg, vec![(EntryKind::User, user("amy", "u1", &[("mail", "amy@example.com")]))]);
    b.delta = delta(&["u3"], &[]);
    let plan = build(&cfg, &three_users_in_staff(), &[b]);
    assert_eq!(plan.updates.len(), 1, "{plan:?}");
    assert_eq!(plan.removals.len(), 1);
    assert_eq!(plan.removals[0].username, "cat");
    assert!(plan.member_removes.is_empty() && plan.group_deletes.is_empty(), "bob and Staff are untouched: {plan:?}");
    assert!(plan.sources[0].incremental);
}

#[test]
fn a_changed_group_in_a_delta_resolves_unchanged_members_from_the_store() {
    let cfg = config("");
    // Staff now lists bob (unchanged, only in the store) and cat; amy left.
    let b = {
        let mut b = batch(
            &cfg,
            vec![(EntryKind::Group, group("Staff", "g1", &["uid=bob,ou=people,dc=t", "uid=cat,ou=people,dc=t"]))],
        );
        b.delta = delta(&[], &[]);
        b
    };
    let plan = build(&cfg, &three_users_in_staff(), &[b]);
    let adds: Vec<&str> = plan.member_adds.iter().map(|m| plan.names_of(m).0).collect();
    let removes: Vec<&str> = plan.member_removes.iter().map(|m| plan.names_of(m).0).collect();
    assert_eq!(adds, ["cat"]);
    assert_eq!(removes, ["amy"]);
    assert!(plan.removals.is_empty());
}

#[test]
fn a_present_phase_removes_what_is_not_present() {
    let cfg = config("");
    let mut b = batch(&cfg, vec![]);
    let mut d = delta(&[], &[]).unwrap();
    d.present_users = Some(["u1".to_string(), "u2".to_string()].into_iter().collect());
    d.present_groups = Some(["g1".to_string()].into_iter().collect());
    b.delta = Some(d);
    let plan = build(&cfg, &three_users_in_staff(), &[b]);
    assert_eq!(plan.removals.iter().map(|r| r.username.as_str()).collect::<Vec<_>>(), ["cat"]);
    assert!(plan.group_deletes.is_empty());
}

#[test]
fn in_a_delta_a_new_identity_relinks_only_a_reported_deletion() {
    let cfg = config("");
    // A new entry "bob" while the old bob was not reported deleted: a conflict.
    let mut b = batch(&cfg, vec![(EntryKind::User, user("bob", "u9", &[]))]);
    b.delta = delta(&[], &[]);
    let plan = build(&cfg, &three_users_in_staff(), &[b]);
    assert!(plan.creates.is_empty() && plan.updates.is_empty());
    assert_eq!(plan.errors.len(), 1, "{plan:?}");
    // Reported deleted: re-linked.
    let mut b = batch(&cfg, vec![(EntryKind::User, user("bob", "u9", &[]))]);
    b.delta = delta(&["u2"], &[]);
    let plan = build(&cfg, &three_users_in_staff(), &[b]);
    assert_eq!(plan.updates[0].relink_to.as_deref(), Some("u9"));
    assert!(plan.removals.is_empty());
}

#[test]
fn a_skipped_entry_without_identity_protects_the_user_it_could_be() {
    // id_attribute = employeeNumber; carol's entry lost it, dave's too (and his DN changed).
    let text = "[[sources]]\nname = \"s\"\ntype = \"ldif\"\npath = \"x\"\nid_attribute = \"employeeNumber\"\n[sources.fields]\nusername = \"uid\"\nfull_name = \"cn\"\n";
    let cfg = Config::parse(text, Path::new("/t.toml")).unwrap();
    assert_eq!(cfg.sources[0].query().id_attribute, "employeenumber");
    let with_id = |uid: &str, n: &str| user(uid, "x", &[("employeeNumber", n)]);
    let mut carol = user("carol", "x", &[]);
    carol.attrs.retain(|(n, _)| n != "employeenumber");
    let mut dave = user("dave", "x", &[]);
    dave.dn = "uid=dave,ou=moved,dc=t".into();
    let b =
        batch(&cfg, vec![(EntryKind::User, with_id("amy", "1")), (EntryKind::User, carol), (EntryKind::User, dave)]);
    assert_eq!(b.errors.len(), 2, "{:?}", b.errors);
    let snap = Snapshot {
        users: vec![
            stored(1, "amy", "1", Status::Active, &[("full_name", &full("amy"))]),
            stored(2, "carol", "2", Status::Active, &[]),
            stored(3, "dave", "3", Status::Active, &[]),
            stored(4, "gone", "4", Status::Active, &[]),
        ],
        ..Default::default()
    };
    let plan = build(&cfg, &snap, &[b]);
    let removed: Vec<&str> = plan.removals.iter().map(|r| r.username.as_str()).collect();
    assert_eq!(removed, ["gone"], "carol (same DN) and dave (same username) stay: {plan:?}");
}

#[test]
fn a_look_alike_newcomer_is_the_conflict_and_the_linked_user_keeps_syncing() {
    let cfg = config("");
    // "Kate" with a Kelvin sign folds to "kate".
    let mut kelvin = user("\u{212a}ate", "u9", &[]);
    kelvin.dn = "uid=\u{212a}ate,ou=guests,dc=t".into();
    let b =
        batch(&cfg, vec![(EntryKind::User, user("kate", "u1", &[("mail", "kate@x.org")])), (EntryKind::User, kelvin)]);
    let snap = Snapshot {
        users: vec![stored(1, "kate", "u1", Status::Active, &[("full_name", &full("kate"))])],
        ..Default::default()
    };
    let plan = build(&cfg, &snap, &[b]);
    assert!(plan.creates.is_empty(), "{plan:?}");
    assert_eq!(plan.errors.len(), 1, "{:?}", plan.errors);
    assert!(plan.errors[0].dn.contains('\u{212a}'), "the newcomer is reported: {:?}", plan.errors);
    assert_eq!(plan.updates.len(), 1, "kate's new email is applied");
    assert_eq!(plan.updates[0].changes[0].new.as_deref(), Some("kate@x.org"));
}

#[test]
fn a_deleted_group_removes_and_counts_every_membership() {
    let cfg = config("");
    // The three stored users are all still there; their group is gone.
    let users = [("amy", "u1"), ("bob", "u2"), ("cat", "u3")].map(|(n, id)| (EntryKind::User, user(n, id, &[])));
    let b = batch(&cfg, users.into_iter().collect());
    let plan = build(&cfg, &three_users_in_staff(), &[b]);
    assert_eq!(plan.group_deletes.len(), 1);
    let removed: Vec<(&str, &str)> = plan.member_removes.iter().map(|m| plan.names_of(m)).collect();
    assert_eq!(removed, [("amy", "Staff"), ("bob", "Staff")]);
}

#[test]
fn two_new_entries_with_one_username_are_both_skipped_every_run() {
    let cfg = config("");
    let mut twin = user("jsmith", "u2", &[]);
    twin.dn = "uid=jsmith,ou=staff,dc=t".into();
    let b = batch(&cfg, vec![(EntryKind::User, user("JSmith", "u1", &[])), (EntryKind::User, twin)]);
    let plan = build(&cfg, &Snapshot::default(), &[b]);
    assert!(plan.creates.is_empty(), "{plan:?}");
    assert_eq!(plan.errors.len(), 2, "{:?}", plan.errors);
    assert!(plan.errors.iter().all(|e| e.reason.contains("duplicate username \"jsmith\"")), "{:?}", plan.errors);
}

#[test]
fn a_delta_resolves_members_named_by_external_id_against_the_store() {
    let cfg = config("");
    // The group changed; its member amy did not, so she is only in the store.
    let mut g = group("Staff", "g1", &[]);
    g.facts.members.push(crate::model::MemberRef::ExternalId("u1".into()));
    let mut b = batch(&cfg, vec![(EntryKind::Group, g)]);
    b.delta = Some(crate::model::Delta::default());
    assert_eq!(b.unresolved_ids, [(0, "u1".to_string())]);
    let mut snap = three_users_in_staff();
    snap.user_groups.clear();
    snap.groups[0].external_id = "g1".into();
    let plan = build(&cfg, &snap, &[b]);
    let added: Vec<(&str, &str)> = plan.member_adds.iter().map(|m| plan.names_of(m)).collect();
    assert_eq!(added, [("amy", "Staff")]);
    assert!(plan.removals.is_empty() && plan.member_removes.is_empty(), "{plan:?}");
}
