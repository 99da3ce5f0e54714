//! The guards and failure paths against a real slapd: thresholds, an empty
//! source, a refused bind, a size limit, a server that dies mid-search, and a
//! process killed at any moment.

use crate::harness::*;

fn people(slapd: &Slapd, n: usize) {
    let mut ldif = String::new();
    for i in 0..n {
        ldif += &person(&format!("user{i:03}"), &format!("User Number{i}"), "");
    }
    ldif += &group(
        "All",
        &(0..n).map(|i| format!("uid=user{i:03}")).collect::<Vec<_>>().iter().map(String::as_str).collect::<Vec<_>>(),
    );
    slapd.modify(&ldif);
}

fn delete_users(slapd: &Slapd, range: std::ops::Range<usize>) {
    let ldif: String =
        range.map(|i| format!("dn: uid=user{i:03},ou=people,{SUFFIX}\nchangetype: delete\n\n")).collect();
    slapd.modify(&ldif);
}

fn active(env: &Env) -> usize {
    env.users().iter().filter(|u| u["status"] == "active").count()
}

#[test]
fn removing_more_than_max_delete_percent_is_blocked_until_forced() {
    let slapd = Slapd::start();
    people(&slapd, 10);
    let env = Env::ldap(&slapd, "", "[safety]\nmax_delete_percent = 20\n");
    assert_eq!(env.sync(&[]).0, 0);
    delete_users(&slapd, 0..3);

    let (code, out) = env.sync(&[]);
    assert_eq!(code, 3, "{out}");
    assert_eq!(out["status"], "blocked");
    assert_eq!(count(&out, "disabled"), 3, "the counts show what would happen");
    assert!(out["message"].as_str().unwrap().contains("max_delete_percent"), "{out}");
    assert_eq!(out["plan"]["removals"].as_array().unwrap().len(), 3, "the plan is shown");
    assert_eq!(active(&env), 10, "nothing applied");
    let runs = env.runs();
    assert_eq!(runs[0]["status"], "blocked", "blocked runs are recorded");

    let text = env.run(&["sync"]);
    assert_eq!(text.code, 3);
    assert!(text.stdout.contains("- disable  user000"), "{}", text.stdout);

    let (code, out) = env.sync(&["--force"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(count(&out, "disabled"), 3);
    assert_eq!(active(&env), 7);
}

#[test]
fn removing_more_than_max_delete_count_is_blocked() {
    let slapd = Slapd::start();
    people(&slapd, 20);
    let env = Env::ldap(&slapd, "", "[safety]\nmax_delete_count = 1\non_missing = \"delete\"\n");
    assert_eq!(env.sync(&[]).0, 0);
    delete_users(&slapd, 0..2);
    let (code, out) = env.sync(&[]);
    assert_eq!(code, 3, "{out}");
    assert!(out["message"].as_str().unwrap().contains("max_delete_count = 1"), "{out}");
    assert_eq!(env.users().len(), 20);
    let (code, out) = env.sync(&["--force"]);
    assert_eq!((code, count(&out, "deleted")), (0, 2), "{out}");
    assert_eq!(env.users().len(), 18);
}

#[test]
fn a_source_that_returns_no_users_never_removes_anybody_even_forced() {
    let slapd = Slapd::start();
    people(&slapd, 5);
    let env = Env::ldap(&slapd, "", "[safety]\nmax_delete_percent = 100\n");
    assert_eq!(env.sync(&[]).0, 0);
    env.edit_config(|c| {
        c.replace("timeout_secs = 10", "timeout_secs = 10\nuser_filter = \"(objectClass=noSuchClass)\"")
    });
    for args in [&[][..], &["--force"][..]] {
        let (code, out) = env.sync(args);
        assert_eq!(code, 3, "{out}");
        assert!(out["message"].as_str().unwrap().contains("returned no users"), "{out}");
    }
    assert_eq!(active(&env), 5);
}

#[test]
fn a_refused_bind_fails_the_run_without_leaking_the_password() {
    let slapd = Slapd::start();
    people(&slapd, 3);
    let env = Env::ldap(&slapd, "", "");
    assert_eq!(env.sync(&[]).0, 0);
    std::fs::write(env.dir.path().join("secret.txt"), "Wr0ng-Pa55word-xyz\n").unwrap();
    let r = env.run(&["-vv", "sync", "--json"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let out = r.json();
    assert_eq!(out["status"], "failed");
    let msg = out["message"].as_str().unwrap();
    assert!(msg.contains("invalidCredentials (rc=49)") && msg.contains(ADMIN), "{msg}");
    assert!(msg.contains("nothing was changed"), "{msg}");
    let runs = env.run(&["runs", "--json"]);
    for text in [&r.stdout, &r.stderr, &runs.stdout] {
        assert!(!text.contains("Wr0ng-Pa55word-xyz"), "password leaked:\n{text}");
    }
    assert_eq!(env.runs()[0]["status"], "failed");
    assert_eq!(active(&env), 3);
}

#[test]
fn a_size_limit_is_an_error_not_fewer_users() {
    let limited = "cn=limited,dc=example,dc=com";
    let slapd = Slapd::start_with(
        None,
        &format!("olcLimits: {{0}}dn.exact=\"{limited}\" size.soft=5 size.hard=5 size.prtotal=5"),
    );
    people(&slapd, 12);
    slapd.modify(&format!("dn: {limited}\nobjectClass: person\nobjectClass: simpleSecurityObject\ncn: limited\nsn: limited\nuserPassword: {PASSWORD}\n"));
    let env = Env::ldap(&slapd, "", "[safety]\nmax_delete_percent = 100\n");
    assert_eq!(env.sync(&[]).0, 0);
    env.edit_config(|c| c.replace(&format!("bind_dn = \"{ADMIN}\""), &format!("bind_dn = \"{limited}\"")));
    let (code, out) = env.sync(&["--full"]);
    assert_eq!(code, 1, "{out}");
    assert!(out["message"].as_str().unwrap().contains("sizeLimitExceeded"), "{out}");
    assert_eq!(active(&env), 12);
}

#[test]
fn a_server_dying_mid_search_fails_the_run_and_changes_nothing() {
    let slapd = Slapd::start();
    people(&slapd, 300);
    let env = Env::ldap(&slapd, "", "[safety]\nmax_delete_percent = 100\nmax_delete_count = 100000\n");
    assert_eq!(env.sync(&[]).0, 0);
    // Cut every connection after ~20 KB of server data: the bind succeeds, the
    // searches die part way through (300 users are ~60 KB).
    let proxy = CutProxy::start(slapd.port, 20_000);
    env.point_at(&slapd.url(), proxy.port);
    let (code, out) = env.sync(&["--full"]);
    assert_eq!(code, 1, "{out}");
    assert_eq!(out["status"], "failed");
    assert_eq!(count(&out, "disabled"), 0);
    assert_eq!(active(&env), 300, "a partial read disabled users");
    assert_eq!(env.runs()[0]["status"], "failed");
}

#[test]
fn a_server_that_stops_answering_times_out_and_changes_nothing() {
    let slapd = Slapd::start();
    people(&slapd, 300);
    let env = Env::ldap(&slapd, "", "[safety]\nmax_delete_percent = 100\n");
    assert_eq!(env.sync(&[]).0, 0);
    let proxy = CutProxy::stalling(slapd.port, 20_000);
    env.point_at(&slapd.url(), proxy.port);
    env.edit_config(|c| c.replace("timeout_secs = 10", "timeout_secs = 1"));
    let t0 = std::time::Instant::now();
    let (code, out) = env.sync(&["--full"]);
    assert_eq!(code, 1, "{out}");
    assert!(out["message"].as_str().unwrap().contains("timed out"), "{out}");
    assert!(t0.elapsed() < std::time::Duration::from_secs(15), "the timeout was not applied");
    assert_eq!(active(&env), 300);
}

#[test]
fn a_second_sync_while_one_runs_is_refused() {
    let slapd = Slapd::start();
    people(&slapd, 3);
    let env = Env::ldap(&slapd, "", "");
    assert_eq!(env.sync(&[]).0, 0);
    // Another holder of the store's lease (a lock file beside SQLite's
    // store, an advisory lock on PostgreSQL).
    let lock = env.store().lease().unwrap();
    let (code, out) = env.sync(&[]);
    assert_eq!(code, 1, "{out}");
    assert!(out["message"].as_str().unwrap().contains("another sync is running"), "{out}");
    // A dry run reads only: it does not need the lock.
    assert_eq!(env.sync(&["--dry-run"]).0, 0);
    drop(lock);
    assert_eq!(env.sync(&[]).0, 0);
}

#[test]
fn killing_the_process_at_any_moment_leaves_the_old_or_the_new_state() {
    let slapd = Slapd::start();
    people(&slapd, 1500);
    let env = Env::ldap(&slapd, "page_size = 500", "");
    // How long a full first sync takes here, on a scratch copy of the config.
    let t0 = std::time::Instant::now();
    let scratch = Env::ldap(&slapd, "page_size = 500", "");
    assert_eq!(scratch.sync(&[]).0, 0);
    let full = t0.elapsed();
    let mut kills = 0;
    for i in 0..8u32 {
        let mut child = env
            .command(&["sync"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(full * i / 8);
        if child.try_wait().unwrap().is_none() {
            kills += 1;
        }
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        if !env.store_exists() {
            continue;
        }
        // Read through the store's own API, as the next run would.
        let snap = env.store().snapshot().unwrap();
        let (users, members) = (snap.users.len(), snap.user_groups.len());
        let audits = env.audit_actions().into_iter().find(|(a, _)| a == "create").map_or(0, |(_, n)| n as usize);
        assert!(users == 0 || users == 1500, "kill {i}: a half-applied run left {users} users");
        assert_eq!(members, users, "kill {i}: memberships out of step with users");
        assert_eq!(audits, users, "kill {i}: audit out of step with users");
    }
    assert!(kills > 0, "no run was interrupted; the test proved nothing");
    let (code, out) = env.sync(&[]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(env.users().len(), 1500);
    let runs = env.runs();
    assert!(runs.iter().all(|r| r["status"] != "running"), "stale running runs are marked: {runs:?}");
}
