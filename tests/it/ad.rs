//! Active Directory against a real Samba AD DC (one per test run; each test
//! has its own OU): defaults, objectGUID, disabled accounts, primary groups,
//! nested groups with a cycle, a 2,000-member group, scope groups, bind errors.

use crate::harness::*;

#[test]
fn ad_defaults_disabled_accounts_primary_group_and_a_nesting_cycle() {
    samba();
    let ou = ad_ou(
        "adt1",
        &[("t1ann", "Ann Archer", 544), ("t1ben", "Ben Baker", 544), ("t1cid", "Cid Clark", 546)],
        &[("t1A", &["Ann Archer", "t1B"]), ("t1B", &["Ben Baker", "t1A"])],
    );
    let users_cn = format!("CN=Users,{AD_DOMAIN}");
    let env = ad_env(&[&ou, &users_cn], "", "[safety]\nmax_delete_percent = 100\n");
    let (code, out) = env.sync(&[]);
    assert_eq!(code, 0, "{out}");
    let names = usernames(&env.users());
    assert!(names.contains(&"t1ann".to_string()) && names.contains(&"t1ben".to_string()), "{names:?}");
    assert!(!names.contains(&"t1cid".to_string()), "disabled accounts are not imported by default: {names:?}");
    assert!(names.iter().any(|n| n == "Administrator"), "a second base DN (CN=Users) is read: {names:?}");

    let ann = env.user("t1ann");
    let guid = ann["external_id"].as_str().unwrap();
    assert!(
        guid.len() == 36 && guid.chars().filter(|c| *c == '-').count() == 4 && guid == guid.to_lowercase(),
        "objectGUID as a GUID string: {guid}"
    );
    assert_eq!(ann["full_name"], "Ann Archer");
    assert_eq!(ann["email"], "t1ann@example.com");
    let all: Vec<&str> = ann["all_groups"].as_array().unwrap().iter().map(|g| g.as_str().unwrap()).collect();
    assert!(all.contains(&"Domain Users"), "primary group (primaryGroupID 513) counts: {all:?}");
    assert!(all.contains(&"t1A") && all.contains(&"t1B"), "A ∈ B ∈ A resolves without hanging: {all:?}");

    // Disabled in AD → disabled here; enabled again → active.
    ad_modify(&format!(
        "dn: CN=Ben Baker,{ou}\nchangetype: modify\nreplace: userAccountControl\nuserAccountControl: 546\n"
    ));
    let (code, out) = env.sync(&[]);
    assert_eq!((code, count(&out, "disabled")), (0, 1), "{out}");
    assert_eq!(env.user("t1ben")["status"], "disabled");
    ad_modify(&format!(
        "dn: CN=Ben Baker,{ou}\nchangetype: modify\nreplace: userAccountControl\nuserAccountControl: 544\n"
    ));
    let (code, out) = env.sync(&[]);
    assert_eq!((code, count(&out, "updated")), (0, 1), "{out}");
    assert_eq!(env.user("t1ben")["status"], "active");
    let (_, out) = env.sync(&["--full"]);
    for k in ["created", "updated", "renamed", "disabled", "deleted", "memberships_added", "memberships_removed"] {
        assert_eq!(count(&out, k), 0, "{k}: {out}");
    }
}

#[test]
fn ad_group_of_2000_members_is_read_whole() {
    samba();
    let users: Vec<(String, String)> = (0..2000).map(|i| (format!("t2u{i:04}"), format!("User {i:04}"))).collect();
    let user_refs: Vec<(&str, &str, u32)> = users.iter().map(|(s, c)| (s.as_str(), c.as_str(), 544)).collect();
    let members: Vec<&str> = users.iter().map(|(_, c)| c.as_str()).collect();
    let ou = ad_ou("adt2", &user_refs, &[("Big", &members)]);
    let env = ad_env(&[&ou], "page_size = 500", "");
    let (code, out) = env.sync(&[]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(count(&out, "created"), 2000);
    let groups = env.run(&["groups", "list", "--json"]).json();
    let big = groups.as_array().unwrap().iter().find(|g| g["name"] == "Big").expect("group Big");
    assert_eq!(big["members"], 2000, "every member of a 2,000-member group");
}

#[test]
fn ad_import_disabled_and_scope_groups() {
    samba();
    let ou = ad_ou(
        "adt3",
        &[("t3amy", "Amy Adams", 544), ("t3bob", "Bob Burns", 544), ("t3cat", "Cat Cole", 546)],
        &[("Printing", &["Amy Adams", "Cat Cole"])],
    );
    let env =
        ad_env(&[&ou], "import_disabled = true\nscope_groups = [\"Printing\"]", "[safety]\nmax_delete_percent = 100\n");
    let (code, out) = env.sync(&[]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(usernames(&env.users()), ["t3amy", "t3cat"], "only members of Printing");
    assert_eq!(env.user("t3cat")["status"], "disabled", "import_disabled creates it disabled");
    ad_modify(&format!("dn: CN=Printing,{ou}\nchangetype: modify\ndelete: member\nmember: CN=Amy Adams,{ou}\n"));
    let (code, out) = env.sync(&[]);
    assert_eq!((code, count(&out, "disabled")), (0, 1), "leaving the scope group is leaving: {out}");
    assert_eq!(out["mode"], "full", "scope groups always read in full");

    let bad = ad_env(&[&ou], "scope_groups = [\"No Such Group\"]", "");
    let (code, out) = bad.sync(&[]);
    assert_eq!(code, 1, "{out}");
    assert!(out["message"].as_str().unwrap().contains("scope group \"No Such Group\" was not found"), "{out}");
}

#[test]
fn ad_bind_errors_name_the_ad_reason_without_the_password() {
    samba();
    let env = ad_env(&[AD_DOMAIN], "", "");
    std::fs::write(env.dir.path().join("ad-secret.txt"), "Not-The-Pa55word\n").unwrap();
    let r = env.run(&["-vv", "sync", "--json"]);
    assert_eq!(r.code, 1);
    let msg = r.json()["message"].as_str().unwrap().to_string();
    assert!(msg.contains("AD: invalid credentials (data 52e)") && msg.contains(AD_ADMIN), "{msg}");
    assert!(!r.stdout.contains("Not-The-Pa55word") && !r.stderr.contains("Not-The-Pa55word"));
}

#[test]
fn ad_incremental_by_usn_sees_exactly_what_changed() {
    samba();
    let ou = ad_ou(
        "adt4",
        &[("t4amy", "Amy Ames", 544), ("t4bob", "Bob Best", 544), ("t4cal", "Cal Cruz", 544)],
        &[("Team", &["Amy Ames", "Bob Best"])],
    );
    let env = ad_env(&[&ou], "", "[safety]\nmax_delete_percent = 50\n");
    let (code, out) = env.sync(&[]);
    assert_eq!((code, out["mode"].as_str(), count(&out, "created")), (0, Some("full"), 3), "{out}");
    let changes = |v: &serde_json::Value| {
        ["created", "updated", "renamed", "disabled", "memberships_added", "memberships_removed"].map(|k| count(v, k))
    };
    let inc = |env: &Env| {
        let (code, out) = env.sync(&[]);
        assert_eq!((code, out["mode"].as_str()), (0, Some("incremental")), "{out}");
        out
    };
    assert_eq!(changes(&inc(&env)), [0; 6], "nothing changed");

    ad_modify(&format!(
        "dn: CN=Dan Dale,{ou}\nobjectClass: user\nsAMAccountName: t4dan\nuserAccountControl: 544\n\n\
         dn: CN=Bob Best,{ou}\nchangetype: modify\nreplace: mail\nmail: bob@new.example\n\n\
         dn: CN=Cal Cruz,{ou}\nchangetype: modify\nreplace: sAMAccountName\nsAMAccountName: t4cally\n\n\
         dn: CN=Team,{ou}\nchangetype: modify\nadd: member\nmember: CN=Dan Dale,{ou}\n"
    ));
    let out = inc(&env);
    assert_eq!(changes(&out), [1, 1, 1, 0, 1, 0], "add, modify, rename, membership: {out}");
    assert_eq!(env.user("t4bob")["email"], "bob@new.example");
    assert_eq!(env.user("t4amy")["groups"], serde_json::json!(["Team"]), "unchanged member kept");

    ad_modify(&format!("dn: CN=Amy Ames,{ou}\nchangetype: delete\n"));
    let out = inc(&env);
    assert_eq!(changes(&out), [0, 0, 0, 1, 0, 1], "deletion found in Deleted Objects, and she leaves Team: {out}");
    assert_eq!(env.user("t4amy")["status"], "disabled");

    // Another DC (or a restore): the saved USN means nothing there.
    env.rewrite_saved_state(|state| {
        let mut v: serde_json::Value = serde_json::from_str(state).unwrap();
        v["invocation_id"] = "00000000-0000-0000-0000-000000000000".into();
        v.to_string()
    });
    let (code, out) = env.sync(&[]);
    assert_eq!((code, out["mode"].as_str()), (0, Some("full")), "{out}");
    assert_eq!(changes(&out), [0; 6], "the full read agrees with the increments: {out}");
}

#[test]
fn ad_write_back_of_an_app_owned_attribute() {
    samba();
    let ou = ad_ou("adt5", &[("t5eve", "Eve Evans", 544), ("t5fay", "Fay Ford", 544)], &[]);
    let env = ad_env(
        &[&ou],
        "",
        "[sources.fields]\nusername = \"sAMAccountName\"\nfull_name = \"cn\"\nprint_code = { attribute = \"employeeID\", owner = \"app\" }\n\n[sources.writeback]\nenabled = true\n",
    );
    let (code, out) = env.sync(&[]);
    assert_eq!(code, 0, "{out}");
    let r = env.run(&["users", "set", "t5eve", "print_code", "E-4711"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let (code, out) = env.sync(&[]);
    assert_eq!((code, out["writeback"]["pushed"].as_u64()), (0, Some(1)), "{out}");
    let found = std::process::Command::new("ldapsearch")
        .args([
            "-x",
            "-LLL",
            "-H",
            "ldap://127.0.0.1:389",
            "-D",
            AD_ADMIN,
            "-w",
            AD_PASSWORD,
            "-b",
            &ou,
            "(sAMAccountName=t5eve)",
            "employeeID",
        ])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&found.stdout).contains("employeeID: E-4711"),
        "{}",
        String::from_utf8_lossy(&found.stdout)
    );
    // The pull that follows sees its own value: nothing changes, nothing is pushed again.
    let (_, out) = env.sync(&["--full"]);
    assert_eq!((count(&out, "updated"), out["writeback"]["pushed"].as_u64()), (0, Some(0)), "{out}");
}

#[test]
fn auth_binds_as_the_ad_user_and_logs_ads_reason_for_the_admin_only() {
    samba();
    let users_cn = format!("CN=Users,{AD_DOMAIN}");
    let env = ad_env(&[&users_cn], "", "[safety]\nmax_delete_percent = 100\n");
    let (code, out) = env.sync(&[]);
    assert_eq!(code, 0, "{out}");
    let check = |pw: &str| env.auth("administrator", pw, &["-v"]);
    let (code, out, err) = check(AD_PASSWORD);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["username"], "Administrator", "the canonical name: {v}");
    assert!(v["groups"].as_array().unwrap().iter().any(|g| g == "Domain Admins"), "{v}");
    let (code, out, err) = check("Wr0ng!Passw0rd");
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("AD: invalid credentials (data 52e)"), "the reason is logged: {err}");
    assert!(!out.contains("52e") && !err.contains("Wr0ng!Passw0rd") && !err.contains(AD_PASSWORD), "{out}{err}");
}

#[test]
fn ad_change_notifications_bring_changes_without_a_scheduled_run() {
    use crate::live::{runs, wait_state, wait_user, LIVE};
    use crate::serve::{server_section, Service};
    samba();
    let ou = ad_ou("adlive", &[("lvann", "Ann Live", 544), ("lvben", "Ben Live", 544)], &[("lvG", &["Ann Live"])]);
    let env = ad_env(&[&ou], LIVE, "[safety]\nmax_delete_percent = 100\n");
    let server = server_section(&env, "");
    env.edit_config(|c| format!("{c}\n{server}"));
    let svc = Service::start(&env);
    let live = wait_state(&svc, "live", 60);
    assert_eq!(live["channel"], "AD change notifications", "{live}");
    wait_user(&svc, "lvben", "synced", |u| u["status"] == "active");
    ad_modify(&format!(
        "dn: CN=Cid Live,{ou}\nobjectClass: user\nsAMAccountName: lvcid\nuserPrincipalName: lvcid@example.com\nuserAccountControl: 544\n"
    ));
    wait_user(&svc, "lvcid", "created", |u| u["status"] == "active");
    ad_modify(&format!(
        "dn: CN=Ann Live,{ou}\nchangetype: modify\nreplace: userAccountControl\nuserAccountControl: 546\n"
    ));
    wait_user(&svc, "lvann", "disabled", |u| u["status"] == "disabled");
    ad_modify(&format!("dn: CN=lvG,{ou}\nchangetype: modify\nadd: member\nmember: CN=Cid Live,{ou}\n"));
    wait_user(&svc, "lvcid", "in lvG", |u| u["groups"] == serde_json::json!(["lvG"]));
    ad_modify(&format!("dn: CN=Ben Live,{ou}\nchangetype: delete\n"));
    wait_user(&svc, "lvben", "disabled (deleted in AD)", |u| u["status"] == "disabled");
    let all = runs(&svc);
    assert!(all.iter().all(|r| r["trigger"] == "live"), "{all:#?}");
    assert!(all.iter().any(|r| r["mode"] == "live"), "the uSN read: {all:#?}");
}
