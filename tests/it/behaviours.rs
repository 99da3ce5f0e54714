//! README behaviours that had no test of their own: `sync --source`, several
//! sources and mode `mixed`, `users set --clear`, the 1024-byte value limit,
//! LDIF `file://` values and `base_dn`, `uniqueMember`, `runs --limit`, and
//! every audit action.

use crate::harness::*;

fn entry(uid: &str, id: &str, extra: &str) -> String {
    ldif_user(uid, id, &format!("{extra}\n"))
}

fn ldif_env(files: &[(&str, &str)], sources: &str, rest: &str) -> Env {
    let env = Env { dir: tempfile::tempdir().unwrap() };
    for (name, text) in files {
        std::fs::write(env.dir.path().join(name), text).unwrap();
    }
    env.write_config(&format!("[store]\npath = \"dirsync.db\"\n{sources}\n{rest}\n"));
    env
}

fn ldif_source(name: &str, file: &str, extra: &str) -> String {
    format!("\n[[sources]]\nname = \"{name}\"\ntype = \"ldif\"\npath = \"{file}\"\n{extra}\n[sources.fields]\nusername = \"uid\"\nfull_name = \"cn\"\ndescription = \"description\"\n")
}

#[test]
fn sync_source_reads_only_the_named_source_and_an_unknown_name_exits_2() {
    let env = ldif_env(
        &[("a.ldif", &entry("amy", "1", "")), ("b.ldif", &entry("bob", "2", ""))],
        &(ldif_source("a", "a.ldif", "") + &ldif_source("b", "b.ldif", "")),
        "",
    );
    let (code, out) = env.sync(&["--source", "b"]);
    assert_eq!((code, out["source"].as_str(), count(&out, "created")), (0, Some("b"), 1), "{out}");
    assert_eq!(usernames(&env.users()), ["bob"]);
    let r = env.run(&["sync", "--source", "nope"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("no source named \"nope\""), "{}", r.stderr);
    let (code, out) = env.sync(&[]);
    assert_eq!((code, out["source"].as_str(), count(&out, "created")), (0, Some("a,b"), 1), "{out}");
}

#[test]
fn several_sources_one_incremental_and_one_full_run_in_mode_mixed() {
    let slapd = Slapd::start();
    slapd.modify(&person("lena", "Lena L", ""));
    let env = Env::ldap(&slapd, "", "");
    std::fs::write(env.dir.path().join("f.ldif"), entry("fred", "f-1", "")).unwrap();
    env.edit_config(|c| {
        let i = c.find("[sources.fields]").unwrap();
        let j = c[i..].find("\n\n").map(|k| i + k).unwrap_or(c.len());
        format!("{}{}{}", &c[..j], ldif_source("file", "f.ldif", ""), &c[j..])
    });
    let (code, out) = env.sync(&[]);
    assert_eq!((code, out["mode"].as_str()), (0, Some("full")), "{out}");
    let (code, out) = env.sync(&[]);
    assert_eq!((code, out["mode"].as_str()), (0, Some("mixed")), "LDAP by RFC 4533, the file in full: {out}");
    assert_eq!(count(&out, "unchanged"), 1, "the file's entry; the delta brought nothing: {out}");
    assert_eq!(env.runs()[0]["mode"], "mixed");
}

#[test]
fn users_set_clear_removes_a_value_and_is_audited() {
    let env = ldif_env(&[("a.ldif", &entry("amy", "1", ""))], &ldif_source("a", "a.ldif", ""), "");
    assert_eq!(env.sync(&[]).0, 0);
    assert_eq!(env.run(&["users", "set", "amy", "credit", "10.00"]).code, 0);
    assert_eq!(env.user("amy")["fields"]["credit"], "10.00");
    let r = env.run(&["users", "set", "amy", "credit", "--clear"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("10.00 → (none)"), "{}", r.stdout);
    assert!(env.user("amy")["fields"].get("credit").is_none());
    let shown = env.run(&["users", "show", "amy"]).stdout;
    assert_eq!(shown.matches("set").count(), 2, "{shown}");
}

#[test]
fn values_over_1024_bytes_skip_a_required_field_and_drop_an_optional_one() {
    let long = "x".repeat(1025);
    let ok = "y".repeat(1024);
    let text = entry("amy", "1", &format!("description: {long}\n"))
        + &entry("bob", "2", &format!("description: {ok}\n"))
        + &format!("dn: uid=cat,ou=people,dc=t\nobjectClass: inetOrgPerson\nuid: cat\ncn: {long}\nentryUUID: 3\n\n");
    let env = ldif_env(&[("a.ldif", &text)], &ldif_source("a", "a.ldif", ""), "");
    let (code, out) = env.sync(&[]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(usernames(&env.users()), ["amy", "bob"], "cat's required full name is too long: skipped");
    assert!(out["errors"].to_string().contains("longer than 1024 bytes"), "{out}");
    assert!(out["warnings"].to_string().contains("longer than 1024 bytes"), "{out}");
    assert_eq!(env.user("amy")["fields"].get("description"), None, "dropped");
    assert_eq!(env.user("bob")["fields"]["description"].as_str().unwrap().len(), 1024);
}

#[test]
fn ldif_file_values_and_base_dn() {
    let text = entry("amy", "1", "description:< file://notes/amy.txt\n")
        + "dn: uid=out,ou=elsewhere,dc=t\nobjectClass: inetOrgPerson\nuid: out\ncn: Out\nentryUUID: 9\n\n";
    let env = ldif_env(&[("a.ldif", &text)], &ldif_source("a", "a.ldif", "base_dn = \"ou=people,dc=t\""), "");
    std::fs::create_dir(env.dir.path().join("notes")).unwrap();
    std::fs::write(env.dir.path().join("notes/amy.txt"), "from a file").unwrap();
    let (code, out) = env.sync(&[]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(usernames(&env.users()), ["amy"], "base_dn keeps entries under it only");
    assert_eq!(env.user("amy")["fields"]["description"], "from a file");
}

#[test]
fn unique_member_groups_resolve_by_dn() {
    let slapd = Slapd::start();
    let mut ldif = person("una", "Una U", "") + &person("ved", "Ved V", "");
    ldif += &format!(
        "dn: cn=Uniq,ou=groups,{SUFFIX}\nobjectClass: groupOfUniqueNames\ncn: Uniq\nuniqueMember: uid=una,ou=people,{SUFFIX}\nuniqueMember: UID=ved, ou=people,{SUFFIX}\n\n"
    );
    slapd.modify(&ldif);
    let env = Env::ldap(
        &slapd,
        "member_attribute = \"uniqueMember\"\ngroup_filter = \"(objectClass=groupOfUniqueNames)\"",
        "",
    );
    let (code, out) = env.sync(&[]);
    assert_eq!((code, count(&out, "memberships_added")), (0, 2), "{out}");
    assert_eq!(env.user("ved")["groups"], serde_json::json!(["Uniq"]));
}

#[test]
fn runs_limit_and_every_audit_action() {
    let g = |members: &[&str]| {
        let m: String = members.iter().map(|u| format!("member: uid={u},ou=people,dc=t\n")).collect();
        format!("dn: cn=G,ou=groups,dc=t\nobjectClass: groupOfNames\ncn: G\nentryUUID: g\n{m}\n")
    };
    let four = |amy_cn: &str, bob: &str, cat: bool, dan_id: &str, members: &[&str]| {
        let mut t = entry("amy", "1", "").replace("cn: amy name", &format!("cn: {amy_cn}"));
        t += &entry(bob, "2", "");
        if cat {
            t += &entry("cat", "3", "");
        }
        t + &entry("dan", dan_id, "") + &g(members)
    };
    let env = ldif_env(
        &[("a.ldif", &four("Amy", "bob", true, "4", &[]))],
        &ldif_source("a", "a.ldif", ""),
        "[safety]\nmax_delete_percent = 100\n",
    );
    let write = |text: String| std::fs::write(env.dir.path().join("a.ldif"), text).unwrap();
    assert_eq!(env.sync(&[]).0, 0); // create
                                    // update (amy), rename (bob → bobby), disable (cat gone), relink (dan re-created), group_add
    write(four("Amy Two", "bobby", false, "4b", &["amy"]));
    let (code, out) = env.sync(&[]);
    assert_eq!(code, 0, "{out}");
    write(four("Amy Two", "bobby", true, "4b", &[]));
    assert_eq!(env.sync(&[]).0, 0); // enable (cat back), group_remove
    env.edit_config(|c| c.replace("[safety]", "[safety]\non_missing = \"delete\""));
    write(four("Amy Two", "bobby", false, "4b", &[]));
    assert_eq!(env.sync(&[]).0, 0); // delete
    let actions: Vec<String> = env.audit_actions().into_iter().map(|(a, _)| a).collect();
    let want = [
        "create",
        "delete",
        "disable",
        "enable",
        "group_add",
        "group_create",
        "group_remove",
        "relink",
        "rename",
        "update",
    ];
    assert_eq!(actions, want);
    let r = env.run(&["runs", "--json", "--limit", "2"]);
    let runs = r.json();
    assert_eq!(runs.as_array().unwrap().len(), 2, "{runs}");
    assert!(runs[0]["id"].as_i64() > runs[1]["id"].as_i64(), "newest first");
}

#[test]
fn without_syncprov_every_sync_is_a_quiet_paged_full_read() {
    let slapd = Slapd::start_without_syncprov();
    let mut ldif = String::new();
    for i in 0..12 {
        ldif += &person(&format!("n{i:02}"), &format!("Name Number{i}"), "");
    }
    slapd.modify(&ldif);
    let env = Env::ldap(&slapd, "page_size = 5", "[safety]\nmax_delete_percent = 100\n");
    for round in 0..2 {
        let r = env.run(&["sync", "--json"]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert_eq!(r.json()["mode"], "full", "round {round}");
        assert!(!r.stderr.contains("WARN"), "quiet: {}", r.stderr);
    }
    slapd.modify(&format!("dn: uid=n03,ou=people,{SUFFIX}\nchangetype: delete\n"));
    let (code, out) = env.sync(&[]);
    assert_eq!((code, count(&out, "disabled"), count(&out, "unchanged")), (0, 1, 11), "{out}");
}

#[test]
fn runs_left_running_by_a_killed_process_are_marked_interrupted() {
    let env = ldif_env(&[("a.ldif", &entry("amy", "1", ""))], &ldif_source("a", "a.ldif", ""), "");
    assert_eq!(env.sync(&[]).0, 0);
    // What a process killed in the middle of a run leaves behind.
    let at = dirsync::time::Timestamp::parse("2026-01-01T00:00:00.000Z").unwrap();
    env.store().start_run(&dirsync::engine::history::RunSources::new(["a"]), at, false, &Default::default()).unwrap();
    assert_eq!(env.sync(&["--dry-run"]).0, 0);
    let stale = |env: &Env| env.runs().into_iter().find(|r| r["started_at"] == "2026-01-01T00:00:00.000Z").unwrap();
    assert_eq!(stale(&env)["status"], "running", "a dry run takes no lease and marks nothing");
    assert_eq!(env.sync(&[]).0, 0);
    let r = stale(&env);
    assert_eq!(r["status"], "interrupted", "{r}");
    assert!(r["message"].as_str().unwrap().contains("stopped before the run finished"), "{r}");
}
