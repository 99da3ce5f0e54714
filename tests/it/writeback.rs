//! Write-back against slapd with ACLs: the write-back account may write
//! `pager` under ou=staff but not under ou=students. Values arrive, refusals
//! are recorded with the server's reason and retried, conflicts follow the
//! policy, generated codes are unique and pushed, nothing is lost on a kill.

use crate::harness::*;

const WRITER: &str = "cn=writer,dc=example,dc=com";

fn setup(on_conflict: &str, codes: &str) -> (Slapd, Env) {
    let acl =
        format!("olcAccess: to dn.subtree=\"ou=staff,{SUFFIX}\" attrs=pager by dn.exact=\"{WRITER}\" write by * read");
    let slapd = Slapd::start_with(None, &acl);
    let mut ldif = String::new();
    for ou in ["staff", "students"] {
        ldif += &format!("dn: ou={ou},{SUFFIX}\nobjectClass: organizationalUnit\nou: {ou}\n\n");
    }
    ldif += &format!("dn: uid=alice,ou=staff,{SUFFIX}\nobjectClass: inetOrgPerson\nuid: alice\ncn: Alice\nsn: A\n\n");
    ldif += &format!("dn: uid=sam,ou=students,{SUFFIX}\nobjectClass: inetOrgPerson\nuid: sam\ncn: Sam\nsn: S\n\n");
    ldif += &format!("dn: {WRITER}\nobjectClass: person\nobjectClass: simpleSecurityObject\ncn: writer\nsn: writer\nuserPassword: writerpw\n\n");
    slapd.modify(&ldif);
    let env = Env::ldap(&slapd, "", &format!(
        "print_code = {{ attribute = \"pager\", owner = \"app\" }}\n\n[sources.writeback]\nenabled = true\nbind_dn = \"{WRITER}\"\nbind_password_file = \"writer.txt\"\non_conflict = \"{on_conflict}\"\n{codes}"
    ));
    std::fs::write(env.dir.path().join("writer.txt"), "writerpw\n").unwrap();
    let (code, out) = env.sync(&[]);
    assert_eq!(code, 0, "{out}");
    (slapd, env)
}

fn set(env: &Env, user: &str, value: &str) {
    let r = env.run(&["users", "set", user, "print_code", value]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("queued for write-back to pager"), "{}", r.stdout);
}

fn alice() -> String {
    format!("uid=alice,ou=staff,{SUFFIX}")
}
fn sam() -> String {
    format!("uid=sam,ou=students,{SUFFIX}")
}

#[test]
fn values_arrive_refusals_are_recorded_retried_and_succeed_after_the_acl_is_fixed() {
    let (slapd, env) = setup("report", "");
    set(&env, "alice", "4711");
    set(&env, "sam", "1234");
    let (code, out) = env.sync(&[]);
    assert_eq!(code, 0, "per-user write-back errors do not fail the run: {out}");
    assert_eq!((out["writeback"]["pushed"].as_u64(), out["writeback"]["failed"].as_u64()), (Some(1), Some(1)), "{out}");
    assert_eq!(slapd.values(&alice(), "pager"), ["4711"]);
    assert!(slapd.values(&sam(), "pager").is_empty());
    let reason =
        out["errors"].as_array().unwrap().iter().find(|e| e["dn"] == sam()).expect("sam's error")["reason"].clone();
    let reason = reason.as_str().unwrap();
    assert!(
        reason.contains(&format!(
            "the write-back account {WRITER} lacks write access to attribute pager on entry {}",
            sam()
        )) && reason.contains("insufficientAccessRights (rc=50)"),
        "{reason}"
    );
    let runs = env.runs();
    assert_eq!(runs[0]["errors"].as_array().unwrap().len(), 1, "the failure is in the run's history");

    let st = env.run(&["writeback", "status", "--json"]).json();
    assert_eq!(st["failed"].as_array().unwrap().len(), 1);
    assert_eq!(st["failed"][0]["last_code"], 50);
    assert!(st["failed"][0]["next_attempt_at"].is_string(), "retried with backoff");
    assert!(st["last_success"].is_string());

    // A sync right away respects the backoff; fixing the ACL and pushing now succeeds.
    let (_, out) = env.sync(&[]);
    assert_eq!(out["writeback"]["deferred"], 1, "{out}");
    slapd.config_modify(&format!(
        "dn: olcDatabase={{1}}mdb,cn=config\nchangetype: modify\nadd: olcAccess\nolcAccess: {{0}}to dn.subtree=\"ou=students,{SUFFIX}\" attrs=pager by dn.exact=\"{WRITER}\" write by * read\n"
    ));
    let r = env.run(&["writeback", "push", "--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.json()["pushed"], 1, "{}", r.stdout);
    assert_eq!(slapd.values(&sam(), "pager"), ["1234"]);
    let st = env.run(&["writeback", "status", "--json"]).json();
    assert!(st["failed"].as_array().unwrap().is_empty() && st["pending"].as_array().unwrap().is_empty());
    let runs = env.runs();
    assert_eq!(
        (runs[0]["mode"].as_str(), runs[0]["pushed"].as_u64()),
        (Some("writeback"), Some(1)),
        "the push is in the history"
    );
    assert_eq!(runs[2]["push_failed"], 1, "{:?}", runs[2]);

    // Idempotent: the same value again is not written again; the pull changes nothing.
    set(&env, "alice", "4711");
    let r = env.run(&["writeback", "push", "--json"]).json();
    assert_eq!((r["pushed"].as_u64(), r["already"].as_u64()), (Some(0), Some(1)), "{r}");
    let (_, out) = env.sync(&["--full"]);
    for k in ["created", "updated", "renamed", "disabled", "deleted"] {
        assert_eq!(count(&out, k), 0, "{k}: {out}");
    }
    assert_eq!(slapd.values(&alice(), "pager"), ["4711"], "nothing duplicated");
    assert_eq!(env.user("alice")["fields"]["print_code"], "4711");
}

#[test]
fn the_directory_never_overwrites_an_app_owned_value_but_fills_an_empty_one() {
    let (slapd, env) = setup("report", "");
    slapd.modify(&format!("dn: {}\nchangetype: modify\nreplace: pager\npager: 5555\n", sam()));
    let (_, out) = env.sync(&[]);
    assert_eq!(count(&out, "updated"), 1, "filled in: {out}");
    assert_eq!(env.user("sam")["fields"]["print_code"], "5555");
    slapd.modify(&format!("dn: {}\nchangetype: modify\nreplace: pager\npager: 6666\n", sam()));
    let (_, out) = env.sync(&["--full"]);
    assert_eq!(count(&out, "updated"), 0, "{out}");
    assert_eq!(env.user("sam")["fields"]["print_code"], "5555", "the application owns it");
    let r = env.run(&["users", "set", "alice", "full_name", "Someone Else"]);
    assert_eq!(r.code, 2, "a directory-owned field is refused: {}", r.stderr);
    assert!(r.stderr.contains("owned by the directory") && r.stderr.contains("owner = \"app\""), "{}", r.stderr);
}

#[test]
fn conflicts_follow_the_policy() {
    for policy in ["report", "app", "directory"] {
        let (slapd, env) = setup(policy, "");
        set(&env, "alice", "1000");
        assert_eq!(env.sync(&[]).0, 0);
        assert_eq!(slapd.values(&alice(), "pager"), ["1000"]);
        // Between two syncs: changed in the directory and locally.
        slapd.modify(&format!("dn: {}\nchangetype: modify\nreplace: pager\npager: 9999\n", alice()));
        set(&env, "alice", "2000");
        let (code, out) = env.sync(&[]);
        assert_eq!(code, 0, "{out}");
        let (dir, local) = (slapd.values(&alice(), "pager"), env.user("alice")["fields"]["print_code"].clone());
        match policy {
            "report" => {
                assert_eq!(out["writeback"]["conflicts"], 1, "{out}");
                assert_eq!((dir, local), (vec!["9999".to_string()], "2000".into()), "nothing overwritten");
                let st = env.run(&["writeback", "status", "--json"]).json();
                let why = st["conflicts"][0]["last_error"].as_str().unwrap();
                assert!(why.contains("changed to \"9999\" since the local change (\"1000\" → \"2000\")"), "{why}");
            }
            "app" => assert_eq!((dir, local), (vec!["2000".to_string()], "2000".into()), "the application wins"),
            _ => assert_eq!((dir, local), (vec!["9999".to_string()], "9999".into()), "the directory wins"),
        }
    }
}

#[test]
fn generated_codes_are_unique_and_pushed_and_ranges_say_when_they_run_out() {
    let (slapd, env) = setup("report", "");
    env.edit_config(|c| format!("{c}\n[codes]\nprint_code = {{ length = 6, charset = \"digits\", unique = true }}\n"));
    slapd.modify(&format!("dn: uid=nia,ou=staff,{SUFFIX}\nobjectClass: inetOrgPerson\nuid: nia\ncn: Nia\nsn: N\n"));
    let (code, out) = env.sync(&[]);
    assert_eq!(code, 0, "{out}");
    let nia = env.user("nia")["fields"]["print_code"].as_str().unwrap().to_string();
    assert!(nia.len() == 6 && nia.chars().all(|c| c.is_ascii_digit()), "{nia}");
    assert_eq!(
        slapd.values(&format!("uid=nia,ou=staff,{SUFFIX}"), "pager"),
        std::slice::from_ref(&nia),
        "written back in the same sync"
    );
    let r = env.run(&["users", "set", "alice", "print_code", "--generate", "--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let alice_code = r.json()["new"].as_str().unwrap().to_string();
    assert_ne!(alice_code, nia);
    assert!(env.run(&["writeback", "push"]).stdout.contains("1 written"));
    assert_eq!(slapd.values(&alice(), "pager"), [alice_code]);

    env.edit_config(|c| format!("{c}extension = {{ allocate = \"2000-2000\" }}\n"));
    slapd.modify(&format!("dn: uid=ola,ou=staff,{SUFFIX}\nobjectClass: inetOrgPerson\nuid: ola\ncn: Ola\nsn: O\n"));
    slapd.modify(&format!("dn: uid=pia,ou=staff,{SUFFIX}\nobjectClass: inetOrgPerson\nuid: pia\ncn: Pia\nsn: P\n"));
    let (code, out) = env.sync(&["--full"]);
    assert_eq!(code, 1, "{out}");
    assert!(out["message"].as_str().unwrap().contains("every number in 2000-2000 is in use"), "{out}");
    assert!(env.run(&["users", "show", "ola"]).code != 0, "nothing applied");
}

#[test]
fn a_kill_between_the_local_change_and_the_push_loses_nothing() {
    let (slapd, env) = setup("report", "");
    set(&env, "alice", "7777"); // committed with its queue item; no push yet
                                // The push goes through a proxy that answers the bind, then stalls: the
                                // process is killed in the middle of the push.
    let proxy = CutProxy::stalling(slapd.port, 14);
    env.point_at(&slapd.url(), proxy.port);
    let mut child = env.command(&["writeback", "push"]).stdout(std::process::Stdio::null()).spawn().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert!(child.try_wait().unwrap().is_none(), "the push was still under way when killed");
    let _ = child.kill();
    let _ = child.wait();
    assert!(slapd.values(&alice(), "pager").is_empty(), "the push did not complete");
    let st = env.run(&["writeback", "status", "--json"]).json();
    assert_eq!(st["pending"].as_array().unwrap().len(), 1, "the item is still queued: {st}");
    env.edit_config(|c| c.replace(&format!("ldap://127.0.0.1:{}", proxy.port), &slapd.url()));
    let (code, out) = env.sync(&[]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(slapd.values(&alice(), "pager"), ["7777"]);
    let st = env.run(&["writeback", "status", "--json"]).json();
    assert!(st["pending"].as_array().unwrap().is_empty());
}

#[test]
fn an_entry_gone_from_the_directory_is_a_recorded_failure() {
    let (slapd, env) = setup("report", "");
    set(&env, "alice", "3333");
    slapd.modify(&format!("dn: {}\nchangetype: delete\n", alice()));
    let r = env.run(&["writeback", "push", "--json"]).json();
    assert_eq!(r["failed"], 1, "{r}");
    let why = r["errors"][0]["reason"].as_str().unwrap();
    assert!(
        why.contains(&format!("entry {} no longer exists", alice())) && why.contains("noSuchObject (rc=32)"),
        "{why}"
    );
}

#[test]
fn a_reported_conflict_is_resolved_by_keeping_either_value() {
    for keep in ["app", "directory"] {
        let (slapd, env) = setup("report", "");
        set(&env, "alice", "1000");
        assert_eq!(env.sync(&[]).0, 0);
        slapd.modify(&format!("dn: {}\nchangetype: modify\nreplace: pager\npager: 9999\n", alice()));
        set(&env, "alice", "2000");
        assert_eq!(env.sync(&[]).0, 0);
        let st = env.run(&["writeback", "status", "--json"]).json();
        let id = st["conflicts"][0]["id"].as_i64().expect("one conflict").to_string();
        // An id that is not a conflict is refused by name.
        let r = env.run(&["writeback", "resolve", "999999", "--keep", keep]);
        assert_eq!(r.code, 1);
        assert!(r.stderr.contains("no write-back conflict with id 999999"), "{}", r.stderr);
        let r = env.run(&["writeback", "resolve", &id, "--keep", keep]);
        assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
        let (dir, local) = (slapd.values(&alice(), "pager"), env.user("alice")["fields"]["print_code"].clone());
        if keep == "app" {
            assert_eq!((dir, local), (vec!["2000".to_string()], "2000".into()), "the application's value written");
        } else {
            assert_eq!((dir, local), (vec!["9999".to_string()], "9999".into()), "the directory's value taken");
        }
        let st = env.run(&["writeback", "status", "--json"]).json();
        assert!(st["conflicts"].as_array().unwrap().is_empty(), "{st}");
        // Nothing is pushed again by the next sync.
        let (_, out) = env.sync(&[]);
        assert_eq!(out["writeback"]["pushed"].as_u64().unwrap_or(0), 0, "{out}");
    }
}
