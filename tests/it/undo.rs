//! `dirsync runs undo`, against a real slapd: for each kind of change a
//! run makes, undoing it gives back the store as it was just before the
//! run (every user with its id, fields and groups; every group), and the
//! undo of the undo gives back the state after it; later changes are kept
//! and reported; what cannot be undone says so.

use serde_json::Value;

use crate::harness::*;

/// The store's users and groups, as a comparison sees them (times of the
/// last update aside: an undo is a change of its own).
fn state(env: &Env) -> (Vec<Value>, Value) {
    let mut users = env.users();
    for u in &mut users {
        u.as_object_mut().unwrap().remove("updated_at");
    }
    users.sort_by(|a, b| a["username"].as_str().cmp(&b["username"].as_str()));
    let r = env.run(&["groups", "list", "--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    (users, r.json())
}

/// Panics with the first difference between two states.
fn same(a: &(Vec<Value>, Value), b: &(Vec<Value>, Value), what: &str) {
    for (x, y) in a.0.iter().zip(&b.0) {
        assert_eq!(x, y, "{what}: a user differs");
    }
    assert_eq!(
        a.0.len(),
        b.0.len(),
        "{what}: users {:?} vs {:?}",
        a.0.iter().map(|u| &u["username"]).collect::<Vec<_>>(),
        b.0.iter().map(|u| &u["username"]).collect::<Vec<_>>()
    );
    assert_eq!(a.1, b.1, "{what}: the groups differ");
}

fn undo(env: &Env, id: i64, extra: &[&str]) -> (i32, Value) {
    let mut args = vec!["runs".to_string(), "undo".to_string(), id.to_string(), "--json".to_string()];
    args.extend(extra.iter().map(|s| s.to_string()));
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    let r = env.run(&a);
    let v = serde_json::from_str(&r.stdout).unwrap_or(Value::Null);
    (r.code, if v.is_null() { Value::String(r.stderr) } else { v })
}

fn synced(env: &Env) -> i64 {
    let (code, out) = env.sync(&[]);
    assert_eq!(code, 0, "{out}");
    out["run_id"].as_i64().unwrap()
}

fn school(slapd: &Slapd) {
    let mut ldif = String::new();
    for u in ["ann", "ben", "cid", "dot", "eve", "zed"] {
        ldif += &person(u, &format!("{u} Person"), "");
    }
    ldif += &group("Team", &["uid=ann", "uid=ben"]);
    ldif += &group("Club", &["uid=cid"]);
    ldif += &group("All", &["cn=Team", "uid=eve"]);
    ldif += &group("Old", &["uid=zed"]);
    ldif += &group("Extra", &["uid=zed"]);
    slapd.modify(&ldif);
}

#[test]
fn undoing_a_run_puts_back_every_user_field_membership_and_group_it_changed() {
    let slapd = Slapd::start();
    school(&slapd);
    // Users the run creates go again as on_missing says: deleted here, so
    // the store is exactly as before.
    let env = Env::ldap(&slapd, "", "[safety]\non_missing = \"delete\"\nmax_delete_percent = 100\n");
    synced(&env);
    let before = state(&env);
    // Every kind of change in one run R.
    slapd.modify(&person("fay", "Fay Person", ""));
    slapd
        .modify(&format!("dn: uid=ben,ou=people,{SUFFIX}\nchangetype: modify\nreplace: mail\nmail: ben@new.example\n"));
    slapd.modify(&format!("dn: uid=cid,ou=people,{SUFFIX}\nchangetype: modrdn\nnewrdn: uid=cyd\ndeleteoldrdn: 1\n"));
    slapd.modify(&format!("dn: uid=dot,ou=people,{SUFFIX}\nchangetype: delete\n"));
    slapd.modify(&format!(
        "dn: cn=Team,ou=groups,{SUFFIX}\nchangetype: modify\nadd: member\nmember: uid=eve,ou=people,{SUFFIX}\n-\ndelete: member\nmember: uid=ann,ou=people,{SUFFIX}\n"
    ));
    slapd.modify(&format!("dn: cn=Club,ou=groups,{SUFFIX}\nchangetype: modrdn\nnewrdn: cn=Society\ndeleteoldrdn: 1\n"));
    slapd.modify(&format!(
        "dn: cn=All,ou=groups,{SUFFIX}\nchangetype: modify\ndelete: member\nmember: cn=Team,ou=groups,{SUFFIX}\n"
    ));
    slapd.modify(&group("Band", &["uid=eve"]));
    // zed leaves and comes back as a new entry (a new entryUUID): re-linked.
    slapd.modify(&format!("dn: uid=zed,ou=people,{SUFFIX}\nchangetype: delete\n"));
    slapd.modify(&person("zed", "zed Person", ""));
    slapd.modify(&format!("dn: cn=Old,ou=groups,{SUFFIX}\nchangetype: delete\n"));
    slapd.modify(&format!(
        "dn: cn=All,ou=groups,{SUFFIX}\nchangetype: modify\nadd: member\nmember: cn=Extra,ou=groups,{SUFFIX}\n"
    ));
    let zed = env.user("zed");
    let r = synced(&env);
    assert_ne!(env.user("zed")["external_id"], zed["external_id"], "re-linked");
    assert_eq!(env.user("zed")["id"], zed["id"]);
    let after = state(&env);
    assert_ne!(before, after);

    // The preview changes nothing and is not recorded.
    let runs = env.runs().len();
    let (code, preview) = undo(&env, r, &["--dry-run"]);
    assert_eq!(code, 0, "{preview}");
    assert_eq!((preview["dry_run"].as_bool(), preview["run_id"].as_i64()), (Some(true), None), "{preview}");
    assert!(!preview["changes"].as_array().unwrap().is_empty(), "{preview}");
    assert_eq!(state(&env), after, "a dry run changes nothing");
    assert_eq!(env.runs().len(), runs, "a dry run is not recorded");

    let (code, out) = undo(&env, r, &[]);
    assert_eq!(code, 0, "{out}");
    assert_eq!((out["mode"].as_str(), out["status"].as_str()), (Some("undo"), Some("ok")), "{out}");
    assert_eq!(out["conflicts"], serde_json::json!([]), "{out}");
    same(&state(&env), &before, &format!("the store as it was before run {r}"));
    let undo_id = out["run_id"].as_i64().unwrap();
    assert_eq!(env.runs()[0]["mode"], "undo");
    // The change feed shows the undo's changes under its run.
    let feed = env.audit_actions();
    assert!(feed.iter().any(|(_, run)| *run == undo_id), "{feed:?}");

    // Undoing the undo redoes: the state after R.
    let (code, out) = undo(&env, undo_id, &[]);
    assert_eq!(code, 0, "{out}");
    same(&state(&env), &after, "the undo of the undo: the state after R");
}

#[test]
fn a_deleted_user_comes_back_with_its_id_and_a_created_one_goes_per_on_missing() {
    let slapd = Slapd::start();
    school(&slapd);
    let env = Env::ldap(&slapd, "", "[safety]\non_missing = \"delete\"\nmax_delete_percent = 100\n");
    synced(&env);
    let before = state(&env);
    let dot_id = env.user("dot")["id"].as_i64().unwrap();
    slapd.modify(&format!("dn: uid=dot,ou=people,{SUFFIX}\nchangetype: delete\n"));
    slapd.modify(&person("gus", "Gus Person", ""));
    let r = synced(&env);
    assert!(env.users().iter().all(|u| u["username"] != "dot"), "deleted");
    let (code, out) = undo(&env, r, &[]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(env.user("dot")["id"].as_i64(), Some(dot_id), "the same id");
    same(&state(&env), &before, "gus is deleted again (on_missing = delete), dot is back whole");
}

#[test]
fn later_changes_are_kept_and_reported_unless_forced() {
    let slapd = Slapd::start();
    school(&slapd);
    let env = Env::ldap(&slapd, "", "");
    synced(&env);
    slapd
        .modify(&format!("dn: uid=ben,ou=people,{SUFFIX}\nchangetype: modify\nreplace: mail\nmail: ben@run.example\n"));
    slapd
        .modify(&format!("dn: uid=ann,ou=people,{SUFFIX}\nchangetype: modify\nreplace: mail\nmail: ann@run.example\n"));
    let r = synced(&env);
    // A later run changes ben's mail again.
    slapd.modify(&format!(
        "dn: uid=ben,ou=people,{SUFFIX}\nchangetype: modify\nreplace: mail\nmail: ben@later.example\n"
    ));
    synced(&env);
    let (code, out) = undo(&env, r, &[]);
    assert_eq!(code, 0, "kept conflicts are not a failure: {out}");
    let c = &out["conflicts"][0];
    assert_eq!((c["username"].as_str(), c["field"].as_str()), (Some("ben"), Some("email")), "{out}");
    assert_eq!(c["run_value"], "ben@example.com", "{out}");
    assert_eq!(env.user("ben")["email"], "ben@later.example", "the later value is kept");
    assert_eq!(env.user("ann")["email"], "ann@example.com", "the rest is put back");
    let nexts: Vec<&Value> =
        out["changes"].as_array().unwrap().iter().filter(|c| c["next_sync_overwrites"] == true).collect();
    assert!(!nexts.is_empty(), "the preview says the next sync sets a directory value again: {out}");
    // With --force-over-later the run's value goes back anyway (on a fresh undo of R).
    let (code, out) = undo(&env, r, &["--force-over-later"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(env.user("ben")["email"], "ben@example.com", "{out}");
}

#[test]
fn runs_that_cannot_be_undone_say_why_with_their_exit_codes() {
    let slapd = Slapd::start();
    school(&slapd);
    let env = Env::ldap(&slapd, "", "[safety]\nmax_delete_percent = 10\n");
    synced(&env);
    let (code, out) = undo(&env, 999, &[]);
    assert_eq!(code, 2, "unknown run: {out}");
    // A run the guards blocked applied nothing: nothing to undo.
    for u in ["ann", "ben"] {
        slapd.modify(&format!("dn: uid={u},ou=people,{SUFFIX}\nchangetype: delete\n"));
    }
    let (code, blocked) = env.sync(&[]);
    assert_eq!(code, 3, "{blocked}");
    let (code, out) = undo(&env, blocked["run_id"].as_i64().unwrap(), &[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.as_str().unwrap_or_default().contains("blocked"), "{out}");
}

#[test]
fn an_undo_that_would_remove_many_users_is_blocked_and_force_lifts_it() {
    let slapd = Slapd::start();
    school(&slapd);
    let env = Env::ldap(&slapd, "", "[safety]\nmax_delete_percent = 30\n");
    synced(&env);
    let before = state(&env);
    for u in ["fay", "gus", "hal"] {
        slapd.modify(&person(u, &format!("{u} New"), ""));
    }
    let r = synced(&env);
    let after = state(&env);
    let (code, out) = undo(&env, r, &[]);
    assert_eq!(code, 3, "3 of 8 active users (37.5%) would be disabled: {out}");
    assert_eq!(out["status"], "blocked", "{out}");
    assert_eq!(state(&env), after, "nothing of a blocked undo applies");
    let (code, out) = undo(&env, r, &["--force"]);
    assert_eq!(code, 0, "{out}");
    // Disabled and out of every group (on_missing = disable): not the state
    // before in full, as users are disabled, not deleted.
    for u in ["fay", "gus", "hal"] {
        assert_eq!(env.user(u)["status"], "disabled");
        assert_eq!(env.user(u)["groups"], serde_json::json!([]));
    }
    assert_eq!(before.1, state(&env).1, "the groups are as before");
}

#[test]
fn the_api_previews_and_queues_an_undo_a_blocked_one_is_approved_and_the_page_asks_first() {
    use crate::page::{page_env, Browser, ADMIN_PASSWORD};
    use crate::serve::{Service, ADMIN_TOKEN, READER};
    let slapd = Slapd::start();
    // page_env: slapd's school (alice, bob, carol, mallory), a served config, the local admin.
    let env = page_env(&slapd);
    env.edit_config(|c| c.replacen("[server]", "[safety]\nmax_delete_percent = 30\n\n[server]", 1));
    let svc = Service::start(&env);
    svc.sync();
    for u in ["dan", "eva"] {
        slapd.modify(&person(u, &format!("{u} New"), ""));
    }
    let r = svc.sync()["id"].as_i64().unwrap();
    let path = format!("/api/runs/{r}/undo");
    let (s, _, v) = svc.call("POST", &path, Some(READER), Some(serde_json::json!({ "dry_run": true })));
    assert_eq!(s, 403, "the admin scope: {v}");
    let (s, _, preview) = svc.call("POST", &path, Some(ADMIN_TOKEN), Some(serde_json::json!({ "dry_run": true })));
    assert_eq!(s, 200, "{preview}");
    assert_eq!(
        (preview["dry_run"].as_bool(), preview["status"].as_str()),
        (Some(true), Some("blocked")),
        "2 of 6 is above 30%: {preview}"
    );
    let (s, _, v) = svc.call("POST", "/api/runs/9999/undo", Some(ADMIN_TOKEN), Some(serde_json::json!({})));
    assert_eq!(s, 404, "{v}");
    // Queued like a sync; the guards block it; the admin approves it.
    let (s, _, v) = svc.call("POST", &path, Some(ADMIN_TOKEN), Some(serde_json::json!({})));
    assert_eq!(s, 202, "{v}");
    let blocked = svc.wait_run(v["run_id"].as_i64().unwrap());
    assert_eq!((blocked["status"].as_str(), blocked["mode"].as_str()), (Some("blocked"), Some("undo")), "{blocked}");
    // It lists whom it would remove: what the approval approves.
    let (_, shown) = svc.get(&format!("/api/runs/{}", blocked["id"]), READER);
    let names: Vec<&str> = shown["removals"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(names.len(), 2, "{shown}");
    assert!(names.contains(&"dan") && names.contains(&"eva"), "{shown}");
    let (s, _, v) = svc.call("POST", &format!("/api/runs/{}/approve", blocked["id"]), Some(ADMIN_TOKEN), None);
    assert_eq!(s, 202, "{v}");
    assert_eq!(v["removals"].as_array().map(Vec::len), Some(2), "{v}");
    let done = svc.wait_run(v["run_id"].as_i64().unwrap());
    assert_eq!(
        (done["status"].as_str(), done["mode"].as_str(), done["forced"].as_bool()),
        (Some("ok"), Some("undo"), Some(true)),
        "{done}"
    );
    assert_eq!(svc.get("/api/users/dan", READER).1["status"], "disabled");
    // A run that cannot be undone: 409.
    let (s, _, v) =
        svc.call("POST", &format!("/api/runs/{}/undo", blocked["id"]), Some(ADMIN_TOKEN), Some(serde_json::json!({})));
    assert_eq!(s, 409, "a blocked run applied nothing: {v}");

    // The page: the run shows the button, the preview comes first, the confirmation queues.
    let mut b = Browser::new(&svc.base);
    b.sign_in("admin", ADMIN_PASSWORD);
    let undo_id = done["id"].as_i64().unwrap();
    let p = b.get(&format!("/ui/runs/{undo_id}"));
    assert!(p.body.contains("Undo this run"), "{}", p.body);
    let p = b.get(&format!("/ui/runs/{undo_id}/undo"));
    assert_eq!(p.status, 200);
    assert!(p.body.contains("Would put back") && p.body.contains("dan"), "{}", p.body);
    assert_eq!(svc.get("/api/users/dan", READER).1["status"], "disabled", "the preview changed nothing");
    let csrf = Browser::csrf(&p);
    let p = b.send("POST", &format!("/ui/runs/{undo_id}/undo"), &[("csrf", &csrf)]);
    assert_eq!(p.status, 303, "{}", p.body);
    let redo = p.headers["location"].to_str().unwrap().rsplit('/').next().unwrap().parse::<i64>().unwrap();
    assert_eq!(svc.wait_run(redo)["status"], "ok");
    assert_eq!(svc.get("/api/users/dan", READER).1["status"], "active", "the undo of the undo redoes");
}

#[test]
fn rule_set_fields_and_generated_codes_go_with_their_user_and_come_back_as_they_were() {
    let slapd = Slapd::start();
    school(&slapd);
    slapd.modify(&group("Students", &["uid=eve"]));
    let rest = "[[rules]]\nwhen_member_of = \"Students\"\nset = { credit = \"10.00\" }\n\n[codes]\nprint_code = { length = 8, charset = \"digits\", unique = true }\n\n[safety]\non_missing = \"delete\"\nmax_delete_percent = 100\n";
    let env = Env::ldap(&slapd, "", rest);
    synced(&env);
    let before = state(&env);
    slapd.modify(&person("kim", "Kim Student", ""));
    slapd.modify(&format!(
        "dn: cn=Students,ou=groups,{SUFFIX}\nchangetype: modify\nadd: member\nmember: uid=kim,ou=people,{SUFFIX}\n"
    ));
    let r = synced(&env);
    let after = state(&env);
    let kim = env.user("kim");
    assert_eq!(kim["fields"]["credit"], "10.00", "{kim}");
    let code = kim["fields"]["print_code"].as_str().expect("a generated code").to_string();
    let (code_u, out) = undo(&env, r, &[]);
    assert_eq!(code_u, 0, "{out}");
    same(&state(&env), &before, "kim, her credit and her code are gone");
    let (code_u, out) = undo(&env, out["run_id"].as_i64().unwrap(), &[]);
    assert_eq!(code_u, 0, "{out}");
    same(&state(&env), &after, "kim is back");
    assert_eq!(env.user("kim")["fields"]["print_code"], code.as_str(), "her own code, not a new one");
}

#[test]
fn app_owned_values_an_undo_restores_are_written_back_to_the_directory() {
    use crate::page::writeback_page_env;
    let slapd = Slapd::start();
    let env = writeback_page_env(&slapd);
    // Disabled, not deleted: a deleted user's queued items go with it.
    env.edit_config(|c| c + "\n[safety]\nmax_delete_percent = 100\n");
    synced(&env);
    slapd.modify(&person("dan", "Dan New", ""));
    let r = synced(&env);
    let dn = format!("uid=dan,ou=people,{SUFFIX}");
    let code = env.user("dan")["fields"]["print_code"].as_str().expect("a generated code").to_string();
    assert_eq!(slapd.values(&dn, "pager"), vec![code.clone()], "the sync wrote dan's code back");
    let (c, out) = undo(&env, r, &[]);
    assert_eq!(c, 0, "{out}");
    assert!(slapd.values(&dn, "pager").is_empty(), "the undo cleared the code it had generated: {out}");
    let (c, out) = undo(&env, out["run_id"].as_i64().unwrap(), &[]);
    assert_eq!(c, 0, "{out}");
    assert_eq!(env.user("dan")["fields"]["print_code"], code.as_str());
    assert_eq!(slapd.values(&dn, "pager"), vec![code], "and the undo of the undo wrote it back again");
}

#[test]
fn an_undo_killed_at_any_moment_applies_all_or_nothing() {
    let slapd = Slapd::start();
    let ldif: String = (0..3000).map(|i| person(&format!("k{i:04}"), &format!("K {i}"), "")).collect();
    slapd.modify(&ldif);
    let env = Env::ldap(&slapd, "", "[safety]\nmax_delete_percent = 100\nmax_delete_count = 100000\n");
    let r = synced(&env);
    let after = state(&env);
    for delay_ms in [2u64, 20, 60, 150, 400] {
        let mut child = env
            .command(&["runs", "undo", &r.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        let _ = child.kill(); // SIGKILL
        let finished = child.wait().unwrap().success();
        let now = state(&env);
        eprintln!("killed after {delay_ms} ms: {}", if now == after { "nothing applied" } else { "applied" });
        if now == after {
            assert!(!finished, "an undo that exited 0 applied (killed after {delay_ms} ms)");
            continue;
        }
        // Applied whole: every one of the run's users disabled, none half-way.
        assert!(now.0.iter().all(|u| u["status"] == "disabled"), "killed after {delay_ms} ms: partly applied");
        return;
    }
}
