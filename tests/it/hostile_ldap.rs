//! Hostile conditions around LDAP sources, through the real binary: a
//! directory emptied between two incremental syncs, and a write-back push
//! that fails after the apply committed.

use crate::harness::*;

#[test]
fn an_emptied_directory_read_incrementally_removes_nobody_even_with_force() {
    let slapd = Slapd::start();
    let n = 30;
    let mut ldif = String::new();
    for i in 0..n {
        ldif += &person(&format!("e{i:02}"), &format!("Emp Number{i}"), "");
    }
    slapd.modify(&ldif);
    let env = Env::ldap(&slapd, "", "");
    assert_eq!(env.sync(&[]).0, 0);
    let (code, out) = env.sync(&[]);
    assert_eq!((code, out["mode"].as_str()), (0, Some("incremental")), "{out}");
    let gone: String = (0..n).map(|i| format!("dn: uid=e{i:02},ou=people,{SUFFIX}\nchangetype: delete\n\n")).collect();
    slapd.modify(&gone);
    for extra in [&[][..], &["--force"]] {
        let (code, out) = env.sync(extra);
        assert_eq!(code, 3, "{extra:?}: {out}");
        assert_eq!(out["mode"], "incremental", "{out}");
        let block = &out["blocked_by"][0];
        assert_eq!(block["forceable"], false, "{out}");
        assert!(block["reason"].as_str().unwrap().contains("leaving none"), "{out}");
    }
    let active = env.users().iter().filter(|u| u["status"] == "active").count();
    assert_eq!(active, n, "nobody was disabled");
}

#[test]
fn a_push_that_fails_after_the_apply_leaves_the_run_applied_with_its_counts() {
    // An LDIF source for the data, and an LDAP source with write-back that
    // this run does not read: the push at the end still runs for it.
    let env = Env { dir: tempfile::tempdir().unwrap() };
    let person = |uid: &str| {
        format!(
            "dn: uid={uid},ou=people,dc=t\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {uid}\nentryUUID: id-{uid}\n\n"
        )
    };
    std::fs::write(env.dir.path().join("d.ldif"), person("amy")).unwrap();
    std::fs::write(env.dir.path().join("pw"), "x\n").unwrap();
    env.write_config(&format!(
        "[store]\npath = \"dirsync.db\"\n\n[[sources]]\nname = \"file\"\ntype = \"ldif\"\npath = \"d.ldif\"\n[sources.fields]\nusername = \"uid\"\nfull_name = \"cn\"\n\n[[sources]]\nname = \"corp\"\ntype = \"ldap\"\nurl = \"ldap://127.0.0.1:{}\"\nbind_dn = \"cn=a\"\nbind_password_file = \"pw\"\nbase_dn = \"dc=t\"\n[sources.fields]\nusername = \"uid\"\nfull_name = \"cn\"\n[sources.writeback]\nenabled = true\n",
        free_port()
    ));
    assert_eq!(env.sync(&["--source", "file"]).0, 0);
    // The push cannot read its queue any more: it fails as a whole. (A store
    // damaged below its API: only SQL can break one table.)
    let conn = rusqlite::Connection::open(env.db()).unwrap();
    conn.execute_batch("DROP TABLE writeback").unwrap();
    drop(conn);
    std::fs::write(env.dir.path().join("d.ldif"), person("amy") + &person("bob")).unwrap();
    let (code, out) = env.sync(&["--source", "file"]);
    assert_eq!(code, 0, "the run was applied: {out}");
    assert_eq!((out["status"].as_str(), count(&out, "created")), (Some("ok"), 1), "{out}");
    assert!(out["message"].as_str().unwrap().contains("write-back push failed"), "{out}");
    let runs = env.runs();
    assert_eq!((runs[0]["status"].as_str(), runs[0]["created"].as_u64()), (Some("ok"), Some(1)), "{runs:?}");
    assert!(usernames(&env.users()).contains(&"bob".to_string()));
}
