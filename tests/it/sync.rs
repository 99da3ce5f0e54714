//! Sync behaviour against a real slapd: first sync, field mapping, nested
//! groups, rules, updates, renames, removal, re-appearance, dry runs,
//! idempotence and bad entries.

use crate::harness::*;

const RULES: &str = r#"
[[rules]]
when_member_of = "Staff"
set = { credit = "50.00" }

[[rules]]
when_member_of = "Students"
set = { credit = "10.00" }

[safety]
max_delete_percent = 50
"#;

fn school(slapd: &Slapd) {
    let mut ldif = String::new();
    ldif += &person(
        "alice",
        "Alice Archer",
        "l: Paris\nroomNumber: B12\nemployeeNumber: 1001\ntelephoneNumber: +33 (1) 23-45\ndepartmentNumber: Science",
    );
    ldif += &person("bob", "Bob Baker", "employeeNumber: 1002");
    ldif += &person("carol", "Carol Clark", "");
    ldif += &group("Teachers", &["uid=alice"]);
    ldif += &group("Staff", &["cn=Teachers", "uid=bob"]);
    ldif += &group("Students", &["uid=carol", "uid=ghost"]);
    slapd.modify(&ldif);
}

#[test]
fn first_sync_maps_fields_groups_nested_membership_and_rules() {
    let slapd = Slapd::start();
    school(&slapd);
    let env = Env::ldap(&slapd, "", RULES);
    let (code, out) = env.sync(&[]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(out["status"], "ok");
    assert!(out["run_id"].as_i64().unwrap() > 0);
    assert_eq!(count(&out, "created"), 3);
    assert_eq!(count(&out, "groups_created"), 3);
    assert_eq!(count(&out, "skipped"), 0);
    assert!(out["errors"].as_array().unwrap().is_empty());

    let users = env.users();
    assert_eq!(usernames(&users), ["alice", "bob", "carol"]);
    let alice = &users[0];
    for key in [
        "username",
        "external_id",
        "source",
        "status",
        "full_name",
        "email",
        "department",
        "office",
        "card_number",
        "card_number2",
        "fields",
        "groups",
        "all_groups",
        "created_at",
        "updated_at",
    ] {
        assert!(alice.get(key).is_some(), "users JSON lacks {key}: {alice}");
    }
    assert_eq!(alice["source"], "corp");
    assert_eq!(alice["status"], "active");
    assert_eq!(alice["full_name"], "Alice Archer");
    assert_eq!(alice["email"], "alice@example.com");
    assert_eq!(alice["department"], "Science");
    assert_eq!(alice["office"], "Paris B12");
    assert_eq!(alice["card_number"], "1001");
    assert_eq!(alice["fields"]["extension"], "3312345");
    assert_eq!(alice["fields"]["credit"], "50.00", "Staff rule through nested Teachers");
    assert_eq!(alice["groups"], serde_json::json!(["Teachers"]));
    assert_eq!(alice["all_groups"], serde_json::json!(["Staff", "Teachers"]));
    assert_eq!(alice["external_id"].as_str().unwrap().len(), 36, "entryUUID");
    assert_eq!(users[1]["fields"]["credit"], "50.00");
    assert_eq!(users[2]["fields"]["credit"], "10.00");
    assert_eq!(users[2]["all_groups"], serde_json::json!(["Students"]), "dangling member uid=ghost ignored");

    let staff = env.run(&["users", "list", "--json", "--group", "staff"]).json();
    assert_eq!(usernames(staff.as_array().unwrap()), ["alice", "bob"]);
    let groups = env.run(&["groups", "list", "--json"]).json();
    assert_eq!(groups.as_array().unwrap().len(), 3);

    // Nothing changed in the directory: nothing changes in the store, whether
    // the next read is incremental (slapd has syncprov) or full.
    for args in [&[][..], &["--full"][..]] {
        let (code, again) = env.sync(args);
        assert_eq!(code, 0);
        for k in ["created", "updated", "renamed", "disabled", "deleted", "memberships_added", "memberships_removed"] {
            assert_eq!(count(&again, k), 0, "{k} on a no-change sync {args:?}: {again}");
        }
        let (mode, unchanged) = if args.is_empty() { ("incremental", 0) } else { ("full", 3) };
        assert_eq!(again["mode"], mode);
        assert_eq!(count(&again, "unchanged"), unchanged);
    }
    let runs = env.runs();
    assert_eq!(runs.len(), 3);
    assert_eq!(runs[0]["status"], "ok");
    assert_eq!(runs[0]["mode"], "full");
    assert_eq!(runs[2]["created"], 3, "newest first");
}

#[test]
fn update_rename_removal_and_return() {
    let slapd = Slapd::start();
    school(&slapd);
    let env = Env::ldap(&slapd, "", RULES);
    assert_eq!(env.sync(&[]).0, 0);
    let bob_before = env.user("bob");
    // (slapd's memberof overlay renames bob in cn=Staff by itself.)

    slapd.modify(&format!(
        "dn: uid=alice,ou=people,{SUFFIX}\nchangetype: modify\nreplace: mail\nmail: alice.archer@example.com\n-\nreplace: employeeNumber\nemployeeNumber: 9999\n\n\
         dn: uid=bob,ou=people,{SUFFIX}\nchangetype: modrdn\nnewrdn: uid=robert\ndeleteoldrdn: 1\n\n\
         dn: cn=Students,ou=groups,{SUFFIX}\nchangetype: modify\ndelete: member\nmember: uid=carol,ou=people,{SUFFIX}\n\n\
         dn: uid=carol,ou=people,{SUFFIX}\nchangetype: delete\n"
    ));
    let (code, out) = env.sync(&[]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        (count(&out, "updated"), count(&out, "renamed"), count(&out, "disabled"), count(&out, "created")),
        (1, 1, 1, 0),
        "{out}"
    );

    let alice = env.user("alice");
    assert_eq!(alice["email"], "alice.archer@example.com");
    assert_eq!(alice["card_number"], "1001", "create-only field is never overwritten");
    let robert = env.user("ROBERT");
    assert_eq!(robert["username"], "robert");
    assert_eq!(robert["external_id"], bob_before["external_id"], "renamed in place");
    assert_eq!(robert["created_at"], bob_before["created_at"]);
    assert_eq!(robert["fields"]["credit"], "50.00", "local values survive a rename");
    assert_eq!(robert["all_groups"], serde_json::json!(["Staff"]));
    assert_eq!(env.run(&["users", "show", "bob", "--json"]).code, 1, "the old name is gone");
    let carol = env.user("carol");
    assert_eq!(carol["status"], "disabled");
    assert_eq!(carol["groups"], serde_json::json!([]));

    // carol comes back (a new entry, so a new entryUUID): the old record is re-linked and enabled.
    slapd.modify(&person("carol", "Carol Clark", ""));
    let (code, out) = env.sync(&[]);
    assert_eq!(code, 0);
    assert_eq!((count(&out, "created"), count(&out, "updated")), (0, 1), "{out}");
    let back = env.user("carol");
    assert_eq!(back["status"], "active");
    assert_eq!(back["created_at"], carol["created_at"]);
    assert_ne!(back["external_id"], carol["external_id"]);
    assert_eq!(back["fields"]["credit"], "10.00", "kept from the first creation");

    let shown = env.run(&["users", "show", "robert"]);
    assert!(shown.stdout.contains("rename"), "history shows the rename:\n{}", shown.stdout);
}

#[test]
fn dry_run_shows_the_plan_and_changes_nothing() {
    let slapd = Slapd::start();
    school(&slapd);
    let env = Env::ldap(&slapd, "", RULES);
    let r = env.run(&["sync", "--dry-run"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("+ create   alice"), "{}", r.stdout);
    assert!(r.stdout.contains("+ member   alice → Teachers"), "{}", r.stdout);
    // Nothing at all: no store, so no user and no run (reading commands say
    // there is no store yet).
    assert!(!env.store_exists(), "a dry run created the store");
    assert_eq!(env.run(&["users", "list"]).code, 1);

    assert_eq!(env.sync(&[]).0, 0);
    slapd.modify(&format!("dn: uid=carol,ou=people,{SUFFIX}\nchangetype: delete\n"));
    let (code, out) = env.sync(&["--dry-run"]);
    assert_eq!(code, 0);
    assert_eq!(out["dry_run"], true);
    assert_eq!(count(&out, "disabled"), 1);
    assert_eq!(out["plan"]["removals"][0]["username"], "carol");
    assert_eq!(env.user("carol")["status"], "active", "dry run disabled a user");
    assert_eq!(env.runs().len(), 1);
}

#[test]
fn bad_entries_are_skipped_with_dn_and_reason_and_never_flip_flop() {
    let slapd = Slapd::start();
    let mut ldif = format!("dn: ou=staff,{SUFFIX}\nobjectClass: organizationalUnit\nou: staff\n\n");
    ldif += &person("good", "Good User", "employeeType: full");
    ldif += &person("jsmith", "John Smith", "employeeType: full");
    ldif += &format!("dn: uid=JSmith,ou=staff,{SUFFIX}\nobjectClass: inetOrgPerson\nuid: JSmith\ncn: Jane Smith\nsn: Smith\nemployeeType: full\n\n");
    ldif += &person("notype", "No Type", "");
    ldif += &person("badmail", "Bad Mail", "employeeType: part\n");
    slapd.modify(&ldif);
    slapd.modify(&format!(
        "dn: uid=badmail,ou=people,{SUFFIX}\nchangetype: modify\nreplace: mail\nmail: not-an-email\n"
    ));
    let env = Env::ldap(&slapd, "", "contract = { attribute = \"employeeType\", required = true }\n");
    for round in 0..2 {
        // Round 1 reads in full again: the same entries are skipped the same way.
        let (code, out) = env.sync(if round == 0 { &[] } else { &["--full"] });
        assert_eq!(code, 0, "skipped entries are warnings: {out}");
        assert_eq!(count(&out, "skipped"), 3, "round {round}: {out}");
        let errors = out["errors"].as_array().unwrap();
        let find = |dn: &str| {
            errors
                .iter()
                .find(|e| e["dn"].as_str().unwrap().eq_ignore_ascii_case(dn))
                .map(|e| e["reason"].as_str().unwrap().to_string())
        };
        let r = find(&format!("uid=jsmith,ou=people,{SUFFIX}")).expect("jsmith reported");
        assert!(r.contains("duplicate username") && r.to_lowercase().contains("ou=staff"), "{r}");
        assert!(find(&format!("uid=JSmith,ou=staff,{SUFFIX}")).is_some(), "both claimants reported: {errors:?}");
        let r = find(&format!("uid=notype,ou=people,{SUFFIX}")).expect("notype reported");
        assert!(r.contains("missing required field contract (attribute employeetype)"), "{r}");
        let warnings = out["warnings"].as_array().unwrap();
        assert!(
            warnings.iter().any(|w| w["reason"].as_str().unwrap().contains("not an email address")),
            "{warnings:?}"
        );
        assert_eq!(usernames(&env.users()), ["badmail", "good"], "round {round}");
    }
    assert_eq!(env.user("badmail")["email"], serde_json::Value::Null, "invalid optional value dropped");
    let runs = env.runs();
    assert_eq!(runs[0]["errors"].as_array().unwrap().len(), 3, "errors recorded in the run's history");
    let entry_warnings = runs[0]["warnings"].as_array().unwrap().iter().filter(|w| !w["dn"].is_null()).count();
    assert_eq!(entry_warnings, 1, "{}", runs[0]["warnings"]);
}

#[test]
fn memberuid_groups_resolve_by_username() {
    let slapd = Slapd::start();
    let mut ldif = person("amy", "Amy Adams", "");
    ldif += &person("ben", "Ben Burns", "");
    ldif += &format!("dn: cn=devs,ou=groups,{SUFFIX}\nobjectClass: posixGroup\ncn: devs\ngidNumber: 5000\nmemberUid: AMY\nmemberUid: nobody\n\n");
    slapd.modify(&ldif);
    let env = Env::ldap(&slapd, "group_filter = \"(objectClass=posixGroup)\"\nmember_attribute = \"memberUid\"", "");
    assert_eq!(env.sync(&[]).0, 0);
    assert_eq!(env.user("amy")["groups"], serde_json::json!(["devs"]));
    assert_eq!(env.user("ben")["groups"], serde_json::json!([]));
}

#[test]
fn rules_apply_on_create_only() {
    let slapd = Slapd::start();
    school(&slapd);
    let env = Env::ldap(&slapd, "", RULES);
    assert_eq!(env.sync(&[]).0, 0);
    assert_eq!(env.user("carol")["fields"]["credit"], "10.00");
    // carol moves from Students to Staff, dave is new in Staff.
    slapd.modify(&format!(
        "dn: cn=Students,ou=groups,{SUFFIX}\nchangetype: modify\ndelete: member\nmember: uid=carol,ou=people,{SUFFIX}\n\n\
         dn: cn=Staff,ou=groups,{SUFFIX}\nchangetype: modify\nadd: member\nmember: uid=carol,ou=people,{SUFFIX}\n\n"
    ));
    slapd.modify(&person("dave", "Dave Dunn", ""));
    slapd.modify(&format!(
        "dn: cn=Staff,ou=groups,{SUFFIX}\nchangetype: modify\nadd: member\nmember: uid=dave,ou=people,{SUFFIX}\n"
    ));
    let (code, out) = env.sync(&[]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(count(&out, "created"), 1);
    assert_eq!(count(&out, "memberships_added"), 2);
    assert_eq!(count(&out, "memberships_removed"), 1);
    let carol = env.user("carol");
    assert_eq!(carol["all_groups"], serde_json::json!(["Staff"]));
    assert_eq!(carol["fields"]["credit"], "10.00", "rules do not run again on update");
    assert_eq!(env.user("dave")["fields"]["credit"], "50.00");
}
