//! `PATCH /api/users/{name}` is all or nothing: every field of a patch is
//! checked (settable, a valid value) before any is written, then all are
//! written in one transaction with their audit rows and write-back items.
//! Against the real binary and slapd; the parallel patches are really sent
//! at once.

use serde_json::{json, Value};

use crate::harness::*;
use crate::serve::{school, server_section, Service, READER, WRITER};

/// slapd's school served, with an app-owned `print_code` written back to
/// `pager` and a local `credit`; synced once.
fn served() -> (Slapd, Env, Service) {
    let slapd = Slapd::start();
    school(&slapd);
    let env = Env::ldap(
        &slapd,
        "",
        &format!(
            "print_code = {{ attribute = \"pager\", owner = \"app\" }}\n\n[sources.writeback]\nenabled = true\n\
             bind_dn = \"{ADMIN}\"\nbind_password_file = \"secret.txt\"\n"
        ),
    );
    let server = server_section(&env, "");
    env.edit_config(|c| format!("{c}\n{server}"));
    let svc = Service::start(&env);
    assert_eq!(svc.sync()["status"], "ok");
    (slapd, env, svc)
}

fn fields(env: &Env, user: &str) -> Value {
    env.user(user)["fields"].clone()
}

fn queued(env: &Env) -> usize {
    let r = env.run(&["writeback", "status", "--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v = r.json();
    ["pending", "failed", "conflicts"].iter().map(|k| v[k].as_array().expect("a list").len()).sum()
}

#[test]
fn a_patch_with_one_invalid_value_sets_none_of_its_fields_in_either_order() {
    let (_slapd, env, svc) = served();
    // Object keys are sorted: the invalid field comes first, then last.
    for body in [
        json!({"fields": {"a_bad": "bell\u{7}", "credit": "1.00", "print_code": "4711"}}),
        json!({"fields": {"credit": "1.00", "print_code": "4711", "z_bad": "x".repeat(1025)}}),
    ] {
        let (s, _, e) = svc.call("PATCH", "/api/users/alice", Some(WRITER), Some(body.clone()));
        assert_eq!((s, e["error"].as_str()), (422, Some("invalid_value")), "{e}");
        let bad = if body["fields"].get("a_bad").is_some() { "a_bad" } else { "z_bad" };
        assert!(e["message"].as_str().unwrap().starts_with(&format!("{bad}: ")), "names the field: {e}");
        assert_eq!(fields(&env, "alice"), json!({}), "nothing of the patch is set");
        assert_eq!(queued(&env), 0, "no write-back item queued");
    }
    let (_, h) = svc.get("/api/users/alice/history", READER);
    assert!(!h["history"].to_string().contains("\"set\""), "no audit row: {h}");
}

#[test]
fn a_patch_with_an_app_owned_and_a_directory_owned_field_sets_neither() {
    let (_slapd, env, svc) = served();
    let body = json!({"fields": {"print_code": "4711"}, "full_name": "Evil"});
    let (s, _, e) = svc.call("PATCH", "/api/users/alice", Some(WRITER), Some(body));
    assert_eq!((s, e["error"].as_str()), (409, Some("conflict")), "{e}");
    assert_eq!(fields(&env, "alice"), json!({}));
    assert_eq!(queued(&env), 0, "the app-owned field was not queued");
    // The good half alone goes through: set, audited and queued together.
    let (s, _, u) = svc.call(
        "PATCH",
        "/api/users/alice",
        Some(WRITER),
        Some(json!({"fields": {"print_code": "4711", "credit": "2"}})),
    );
    assert_eq!(s, 200, "{u}");
    assert_eq!(fields(&env, "alice"), json!({"credit": "2", "print_code": "4711"}));
    assert_eq!(queued(&env), 1);
}

#[test]
fn parallel_patches_of_one_user_all_apply_each_audited_once_in_a_chain() {
    let (_slapd, env, svc) = served();
    const N: usize = 16;
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(4).enable_all().build().unwrap();
    let http = reqwest::Client::new();
    let url = format!("{}/api/users/bob", svc.base);
    let statuses: Vec<u16> = rt.block_on(async {
        let calls = (0..N).map(|i| {
            let req = http.patch(&url).bearer_auth(WRITER).json(&json!({"fields": {"credit": format!("{i}")}}));
            async move { req.send().await.unwrap().status().as_u16() }
        });
        futures_util::future::join_all(calls).await
    });
    assert_eq!(statuses, vec![200; N], "every patch applies (a write between read and write is read again)");
    let (_, h) = svc.get("/api/users/bob/history?limit=100", READER);
    let sets: Vec<&Value> = h["history"].as_array().unwrap().iter().filter(|r| r["action"] == "set").collect();
    assert_eq!(sets.len(), N, "one audit row each: {h}");
    // Each change saw the one before it: the olds and news form one chain.
    let news: std::collections::HashSet<&str> = sets.iter().filter_map(|r| r["new"].as_str()).collect();
    let olds: Vec<&str> = sets.iter().filter_map(|r| r["old"].as_str()).collect();
    assert_eq!(news.len(), N);
    assert_eq!(olds.len(), N - 1, "only the first had no old value: {h}");
    assert!(olds.iter().all(|o| news.contains(o)), "{h}");
    let last = fields(&env, "bob")["credit"].as_str().unwrap().to_string();
    assert!(!olds.contains(&last.as_str()), "the stored value is the chain's end");
}

#[test]
fn a_write_only_client_learns_which_fields_were_set_never_the_record() {
    let slapd = Slapd::start();
    school(&slapd);
    let env = Env::ldap(&slapd, "", "");
    let server = server_section(&env, "");
    std::fs::write(env.dir.path().join("wo.token"), "write-only-token-0123456789abcdef\n").unwrap();
    env.edit_config(|c| {
        format!("{c}\n{server}\n[[server.clients]]\nname = \"wo\"\ntoken_file = \"wo.token\"\nscopes = [\"write\"]\n")
    });
    let svc = Service::start(&env);
    assert_eq!(svc.sync()["status"], "ok");
    const WO: &str = "write-only-token-0123456789abcdef";
    let (s, _, v) = svc.call("PATCH", "/api/users/alice", Some(WO), Some(json!({})));
    assert_eq!((s, v.clone()), (200, json!({"updated": []})), "an empty patch reads nothing back: {v}");
    let (s, _, v) = svc.call("PATCH", "/api/users/alice", Some(WO), Some(json!({"fields": {"credit": "3"}})));
    assert_eq!((s, v.clone()), (200, json!({"updated": ["credit"]})), "{v}");
    assert!(!v.to_string().contains("alice@example.com"));
    assert_eq!(svc.get("/api/users/alice", WO).0, 403, "and it cannot read the user either");
    let (_, _, v) = svc.call("PATCH", "/api/users/alice", Some(WRITER), Some(json!({})));
    assert_eq!(v["username"], "alice", "a client with read gets the record");
}
