//! Attacks on sign-in, each performed for real against `dirsync serve` and
//! slapd: an entry swapped in under an admin's name, de-provisioned admins
//! keeping their session, a look-alike admin group in another source,
//! parallel brute force on the API and the page, a password oracle, a
//! lock-out of the API through the page, and unknown users answered
//! without a real check.

use serde_json::json;

use crate::harness::*;
use crate::page::{page_env, Browser, ADMIN_PASSWORD};
use crate::serve::*;

fn auth(svc: &Service, username: &str, password: &str) -> u16 {
    svc.call("POST", "/api/auth", Some(AUTHER), Some(json!({"username": username, "password": password}))).0
}

/// Sends `n` requests at once, really in parallel; their statuses.
fn parallel(n: usize, send: impl Fn(usize) -> reqwest::RequestBuilder) -> Vec<u16> {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(4).enable_all().build().unwrap();
    let reqs: Vec<_> = (0..n).map(send).collect();
    rt.block_on(async {
        let calls = reqs.into_iter().map(|r| async move { r.send().await.map(|r| r.status().as_u16()).unwrap_or(0) });
        futures_util::future::join_all(calls).await
    })
}

fn count(statuses: &[u16], s: u16) -> usize {
    statuses.iter().filter(|&&x| x == s).count()
}

#[test]
fn a_new_entry_under_a_deleted_admins_name_cannot_sign_in_as_them() {
    let slapd = Slapd::start();
    let env = page_env(&slapd);
    let svc = Service::start(&env);
    assert_eq!(svc.sync()["status"], "ok");
    assert_eq!(auth(&svc, "bob", "bob-pw-2"), 200, "bob, a member of the admin group");
    slapd.modify(&format!("dn: ou=elsewhere,{SUFFIX}\nobjectClass: organizationalUnit\nou: elsewhere\n\n"));
    // bob's entry is deleted; another (a new entryUUID, no groups) takes his name, elsewhere.
    slapd.modify(&format!("dn: uid=bob,ou=people,{SUFFIX}\nchangetype: delete\n\n"));
    slapd.modify(&format!(
        "dn: uid=bob,ou=elsewhere,{SUFFIX}\nobjectClass: inetOrgPerson\nuid: bob\ncn: Not Bob\nsn: B\nuserPassword: attacker-pw\n\n"
    ));
    assert_eq!(auth(&svc, "bob", "attacker-pw"), 401, "the entry found by name is another identity");
    let mut b = Browser::new(&svc.base);
    assert_eq!(b.sign_in("bob", "attacker-pw").status, 401);
    // And at bob's own DN.
    slapd.modify(&format!(
        "dn: uid=bob,ou=people,{SUFFIX}\nobjectClass: inetOrgPerson\nuid: bob\ncn: Not Bob\nsn: B\nuserPassword: attacker-pw2\n\n"
    ));
    assert_eq!(auth(&svc, "bob", "attacker-pw2"), 401, "a new entry at the stored DN is another identity");
    assert!(svc.log().contains("another identity"), "the refusal is logged");
    assert_eq!(svc.stop(10), 0);
}

#[test]
fn an_admin_removed_from_the_group_or_disabled_loses_the_page_at_once() {
    let slapd = Slapd::start();
    let env = page_env(&slapd);
    env.edit_config(|c| format!("{c}\n[safety]\nmax_delete_percent = 100\n"));
    let svc = Service::start(&env);
    assert_eq!(svc.sync()["status"], "ok");
    let (mut bob, mut alice) = (Browser::new(&svc.base), Browser::new(&svc.base));
    assert_eq!(bob.sign_in("bob", "bob-pw-2").status, 303);
    assert_eq!(alice.sign_in("alice", "alice-pw-1").status, 303);
    assert_eq!((bob.get("/").status, alice.get("/").status), (200, 200));
    // bob leaves Staff; alice leaves the directory (disabled here).
    slapd.modify(&format!(
        "dn: cn=Staff,ou=groups,{SUFFIX}\nchangetype: modify\ndelete: member\nmember: uid=bob,ou=people,{SUFFIX}\n\n"
    ));
    slapd.modify(&format!("dn: uid=alice,ou=people,{SUFFIX}\nchangetype: delete\n\n"));
    assert_eq!(svc.sync()["status"], "ok");
    for (who, b) in [("bob", &mut bob), ("alice", &mut alice)] {
        let p = b.get("/");
        assert_eq!((p.status, p.headers.get("location").map(|l| l.to_str().unwrap())), (303, Some("/login")), "{who}");
    }
}

#[test]
fn a_group_named_like_the_admin_group_in_another_source_lets_nobody_in_until_the_source_is_named() {
    let slapd = Slapd::start();
    school(&slapd);
    let env = Env::ldap(&slapd, "", "");
    // A program source with its own "Staff" and a member who knows her password.
    let dir = env.dir.path().join("userdir");
    std::fs::create_dir(&dir).unwrap();
    for f in ["userdir.sh", "auth.sh"] {
        std::fs::copy(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/programs").join(f),
            dir.join(f),
        )
        .unwrap();
    }
    std::fs::write(dir.join("users.tsv"), "eve\tEve Evil\teve@example.com\n").unwrap();
    std::fs::write(dir.join("members.tsv"), "Staff\teve\n").unwrap();
    std::fs::write(dir.join("passwords.tsv"), "eve\teve-pw-9\n").unwrap();
    let program = format!(
        "[[sources]]\nname = \"campus\"\ntype = \"program\"\nprogram = \"{0}/userdir.sh\"\nauth_program = \"{0}/auth.sh\"\n",
        dir.display()
    );
    let server = server_section(&env, "[server.admin]\ngroup = \"Staff\"\n");
    env.edit_config(|c| format!("{c}\n{program}\n{server}"));
    let svc = Service::start(&env);
    assert_eq!(svc.sync()["status"], "ok");
    for (u, p) in [("bob", "bob-pw-2"), ("eve", "eve-pw-9")] {
        assert_eq!(Browser::new(&svc.base).sign_in(u, p).status, 401, "{u}: two sources have a Staff group");
    }
    assert!(svc.log().contains("set [server.admin] source"), "the refusal says what to do");
    assert_eq!(svc.stop(10), 0);
    env.edit_config(|c| c.replace("group = \"Staff\"\n", "group = \"Staff\"\nsource = \"corp\"\n"));
    let svc = Service::start(&env);
    assert_eq!(Browser::new(&svc.base).sign_in("bob", "bob-pw-2").status, 303, "corp's Staff");
    assert_eq!(Browser::new(&svc.base).sign_in("eve", "eve-pw-9").status, 401, "campus's Staff is not it");
    assert_eq!(svc.stop(10), 0);
}

#[test]
fn sixty_parallel_api_checks_for_one_user_run_at_most_five() {
    let slapd = Slapd::start();
    school(&slapd);
    let env = serving(&slapd);
    let svc = Service::start(&env);
    svc.sync();
    let http = reqwest::Client::new();
    let url = format!("{}/api/auth", svc.base);
    let statuses = parallel(60, |i| {
        let pw = if i == 59 { "bob-pw-2".to_string() } else { format!("wrong-{i}") };
        http.post(&url).bearer_auth(AUTHER).json(&json!({"username": "bob", "password": pw}))
    });
    assert_eq!(count(&statuses, 429) + count(&statuses, 401) + count(&statuses, 200), 60, "{statuses:?}");
    // A wrong guess keeps its place for the minute; a right one gives it back.
    assert!(count(&statuses, 401) <= 5, "at most 5 wrong guesses were checked: {statuses:?}");
    let (_, m) = svc.get("/metrics", READER);
    let m = m.as_str().unwrap_or_default().to_string();
    let checked: u64 = m
        .lines()
        .filter(|l| l.starts_with("dirsync_auth_attempts_total{outcome=\"invalid\"}"))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum();
    assert!(checked <= 5, "{m}");
    assert_eq!(svc.stop(10), 0);
}

/// The service's peak resident memory (kB).
fn peak_kb(svc: &Service) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", svc.child.id())).unwrap();
    status.lines().find_map(|l| l.strip_prefix("VmHWM:")).unwrap().trim().trim_end_matches(" kB").parse().unwrap()
}

#[test]
fn parallel_admin_sign_ins_are_limited_and_do_not_exhaust_memory() {
    let slapd = Slapd::start();
    let env = page_env(&slapd);
    let svc = Service::start(&env);
    // A sign-in form's token pair, shared by every request.
    let mut b = Browser::new(&svc.base);
    let form = b.get("/login");
    let csrf = Browser::csrf(&form);
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let url = format!("{}/login", svc.base);
    let send = |i: usize, n: usize| {
        let pw = if i == n - 1 { ADMIN_PASSWORD.to_string() } else { format!("wrong-{i}") };
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs([("csrf", csrf.as_str()), ("username", "admin"), ("password", pw.as_str())])
            .finish();
        http.post(&url)
            .header("cookie", format!("dirsync_login={csrf}"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
    };
    let statuses = parallel(40, |i| send(i, 40));
    assert!(count(&statuses, 401) <= 5, "at most 5 wrong passwords were checked: {statuses:?}");
    assert_eq!(count(&statuses, 429) + count(&statuses, 401) + count(&statuses, 303), 40, "{statuses:?}");
    let more = parallel(200, |i| send(i, 1000));
    let failed = count(&statuses, 401) + count(&more, 401);
    assert!(failed <= 5, "at most 5 failed checks in the minute across both bursts: {statuses:?} {more:?}");
    assert_eq!(count(&more, 429) + count(&more, 401), 200, "{more:?}");
    let peak = peak_kb(&svc);
    assert!(peak < 300 * 1024, "peak RSS {peak} kB after 240 parallel admin sign-ins (19 MiB an Argon2 check)");
    assert_eq!(svc.stop(10), 0);
}

#[test]
fn a_right_password_of_a_non_admin_counts_as_a_failure_so_it_tells_nothing() {
    let slapd = Slapd::start();
    let env = page_env(&slapd);
    let svc = Service::start(&env);
    svc.sync();
    let mut b = Browser::new(&svc.base);
    // carol is no admin: four wrong passwords, then her right one.
    for i in 0..4 {
        assert_eq!(b.sign_in("carol", &format!("wrong-{i}")).status, 401);
    }
    assert_eq!(b.sign_in("carol", "carol-pw-3").status, 401, "refused: not an admin");
    // Right or wrong, the next try is limited the same.
    assert_eq!(b.sign_in("carol", "carol-pw-3").status, 429);
    assert_eq!(b.sign_in("carol", "wrong-again").status, 429);
    let p = b.sign_in("carol", "x");
    assert!(p.headers.get("retry-after").is_some(), "429 says when");
}

#[test]
fn failed_page_sign_ins_never_lock_a_user_out_of_the_api() {
    let slapd = Slapd::start();
    let env = page_env(&slapd);
    let svc = Service::start(&env);
    svc.sync();
    let mut b = Browser::new(&svc.base);
    for i in 0..6 {
        b.sign_in("bob", &format!("wrong-{i}"));
    }
    assert_eq!(b.sign_in("bob", "bob-pw-2").status, 429, "the page's limit holds");
    assert_eq!(auth(&svc, "bob", "bob-pw-2"), 200, "the application's check of bob is not locked out");
}

#[test]
fn an_unknown_or_disabled_user_costs_a_call_of_the_auth_program() {
    let env = crate::program::program_env("userdir.sh", crate::program::USERS, crate::program::MEMBERS, "");
    let dir = crate::program::with_auth_program(&env);
    assert_eq!(env.sync(&[]).0, 0);
    let calls = || std::fs::read_to_string(dir.join("calls.log")).unwrap_or_default().lines().count();
    let before = calls();
    let (code, _, _) = env.auth("nobody-here", "guess", &[]);
    assert_eq!(code, 1);
    assert_eq!(calls(), before + 1, "an unknown user cost a real call, not a wait");
    let log = std::fs::read_to_string(dir.join("calls.log")).unwrap();
    assert!(!log.contains("guess"), "the password is in no log");
}
