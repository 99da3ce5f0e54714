//! Authentication against the directory through `dirsync serve` and
//! `dirsync auth`, with a real slapd: right and wrong passwords, refused
//! inputs, filter metacharacters, users outside the store or disabled in it,
//! a moved entry, rate limits tripping, a source that is down, and no
//! password in any log line or in the store.

use serde_json::{json, Value};

use crate::harness::*;
use crate::serve::*;

fn auth(svc: &Service, username: &str, password: &str) -> (u16, Value, Option<String>) {
    let (s, h, v) =
        svc.call("POST", "/api/auth", Some(AUTHER), Some(json!({"username": username, "password": password})));
    let retry = h.get("retry-after").map(|v| v.to_str().unwrap().to_string());
    (s, v, retry)
}

#[test]
fn auth_accepts_the_right_password_and_refuses_everything_else_alike() {
    let slapd = Slapd::start();
    school(&slapd);
    slapd.modify(&format!("dn: ou=moved,{SUFFIX}\nobjectClass: organizationalUnit\nou: moved\n\n"));
    let env = serving(&slapd);
    let svc = Service::start(&env);
    svc.sync();
    // Added after the sync: in the directory, not in the store.
    slapd.modify(&person("dave", "Dave Doe", "userPassword: dave-pw-4"));

    let (s, v, _) = auth(&svc, "ALICE", "alice-pw-1");
    assert_eq!(s, 200, "{v}");
    assert_eq!(v, json!({"username": "alice", "groups": ["Staff", "Teachers"]}));

    // Every refusal is the same answer.
    let refused = [
        ("bob", "wrong"),
        ("bob", ""),
        ("bob", "   "),
        ("bob", "bob-pw-2\u{0}x"),
        ("*", "bob-pw-2"),
        ("admin)(|(uid=*", "bob-pw-2"),
        ("b\\2ab", "bob-pw-2"),
        ("dave", "dave-pw-4"),
        ("nobody", "x"),
    ];
    for (i, (u, p)) in refused.iter().enumerate() {
        let (s, v, _) = auth(&svc, u, p);
        assert_eq!((s, v["error"].as_str()), (401, Some("invalid_credentials")), "{u:?}/{p:?} → {v}");
        if i == 3 {
            // bob has had 4 failures of the 5 a minute allowed: the right password still works.
            let (s, v, _) = auth(&svc, "bob", "bob-pw-2");
            assert_eq!(s, 200, "{v}");
        }
    }
    let (s, _, _) = auth(&svc, "alice", &"x".repeat(1025));
    assert_eq!(s, 401, "a password over 1 KiB");

    // The entry moves: the stored DN is gone, the user is found again.
    slapd.modify(&format!(
        "dn: uid=alice,ou=people,{SUFFIX}\nchangetype: modrdn\nnewrdn: uid=alice\ndeleteoldrdn: 1\nnewsuperior: ou=moved,{SUFFIX}\n\n"
    ));
    let (s, v, _) = auth(&svc, "alice", "alice-pw-1");
    assert_eq!(s, 200, "found again after a move: {v}");

    // Rate limit per username: 5 failures a minute, then 429 even for the right password.
    for _ in 0..5 {
        assert_eq!(auth(&svc, "carol", "guess").0, 401);
    }
    let (s, v, retry) = auth(&svc, "Carol", "guess");
    assert_eq!((s, v["error"].as_str()), (429, Some("rate_limited")), "{v}");
    let retry: u64 = retry.expect("Retry-After").parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(auth(&svc, "alice", "alice-pw-1").0, 200, "other users are not limited");

    let (_, _, m) = svc.call("GET", "/metrics", None, None);
    let m = m.as_str().unwrap().to_string();
    assert!(m.contains("dirsync_auth_attempts_total{outcome=\"rate_limited\"} 1"), "{m}");
    assert!(m.contains("dirsync_auth_attempts_total{outcome=\"ok\"} 4"), "{m}");

    // The source is down: 503, never "wrong password".
    slapd.stop();
    let (s, v, _) = auth(&svc, "bob", "bob-pw-2");
    assert_eq!((s, v["error"].as_str()), (503, Some("directory_unavailable")), "{v}");

    // No password in the log (at debug level) or the store.
    let log = svc.log();
    assert_eq!(svc.stop(10), 0);
    let db = std::fs::read(env.db()).unwrap();
    let wal = std::fs::read(env.dir.path().join("dirsync.db-wal")).unwrap_or_default();
    for pw in ["alice-pw-1", "bob-pw-2", "dave-pw-4", "guess"] {
        assert!(!log.contains(pw), "{pw} is in the log");
        let hit = |bytes: &[u8]| bytes.windows(pw.len()).any(|w| w == pw.as_bytes());
        assert!(!hit(&db) && !hit(&wal), "{pw} is in the store");
    }
}

#[test]
fn a_disabled_user_and_an_address_over_its_limit_are_refused() {
    let slapd = Slapd::start();
    school(&slapd);
    let env = Env::ldap(&slapd, "", "[safety]\nmax_delete_percent = 50\n");
    let server = server_section(&env, "[server.auth]\nfailures_per_address = 3\nfailures_per_user = 100\n");
    env.edit_config(|c| format!("{c}\n{server}"));
    let svc = Service::start(&env);
    svc.sync();
    // bob leaves the synced scope: disabled in the store, still in the directory.
    env.edit_config(|c| {
        c.replace("page_size = 50", "page_size = 50\nuser_filter = \"(&(objectClass=inetOrgPerson)(!(uid=bob)))\"")
    });
    svc.signal("-HUP");
    svc.wait_log("configuration reloaded");
    let (s, _, v) = svc.call("POST", "/api/syncs", Some(WRITER), Some(json!({"full": true})));
    assert_eq!(s, 202);
    let run = svc.wait_run(v["run_id"].as_i64().unwrap());
    assert_eq!((run["status"].as_str(), run["disabled"].as_u64()), (Some("ok"), Some(1)), "{run}");
    assert_eq!(auth(&svc, "bob", "bob-pw-2").0, 401, "disabled in the store");
    // Two more failures from this address (3 in all), then every name is limited.
    assert_eq!(auth(&svc, "x1", "y").0, 401);
    assert_eq!(auth(&svc, "x2", "y").0, 401);
    assert_eq!(auth(&svc, "alice", "alice-pw-1").0, 429);
    assert_eq!(svc.stop(10), 0);
}

#[test]
fn dirsync_auth_reads_the_password_from_stdin() {
    let slapd = Slapd::start();
    school(&slapd);
    let env = Env::ldap(&slapd, "", "");
    assert_eq!(env.sync(&[]).0, 0);
    let check = |user: &str, pw: &str| env.auth(user, pw, &[]);
    let (code, out, err) = check("alice", "alice-pw-1");
    assert_eq!(code, 0, "{err}");
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap()["groups"], json!(["Staff", "Teachers"]));
    let (code, _, err) = check("alice", "nope");
    assert_eq!(code, 1);
    assert!(err.contains("invalid credentials") && !err.contains("nope"), "{err}");
    slapd.stop();
    let (code, _, err) = check("alice", "alice-pw-1");
    assert_eq!(code, 4, "directory unavailable: {err}");
}
