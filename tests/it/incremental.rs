//! Incremental sync against slapd with syncprov (RFC 4533 refreshOnly): each
//! incremental run sees exactly what changed; deletions, renames and moves
//! arrive; the guards hold; a cursor never advances on a run that did not
//! apply; config changes, --full and full_every force full reads.

use crate::harness::*;

const SAFETY: &str = "[safety]\nmax_delete_percent = 40\n";

fn setup() -> (Slapd, Env) {
    let slapd = Slapd::start();
    let mut ldif = format!("dn: ou=staff,{SUFFIX}\nobjectClass: organizationalUnit\nou: staff\n\n");
    for u in ["ann", "ben", "cid", "dot", "eve"] {
        ldif += &person(u, &format!("{u} Person"), "");
    }
    ldif += &group("Team", &["uid=ann", "uid=ben"]);
    slapd.modify(&ldif);
    let env = Env::ldap(&slapd, "", SAFETY);
    let (code, out) = env.sync(&[]);
    assert_eq!((code, out["mode"].as_str()), (0, Some("full")), "{out}");
    (slapd, env)
}

/// The change counts of a sync, in a fixed order.
fn changes(v: &serde_json::Value) -> [u64; 7] {
    ["created", "updated", "renamed", "disabled", "deleted", "memberships_added", "memberships_removed"]
        .map(|k| count(v, k))
}

fn incremental(env: &Env) -> serde_json::Value {
    let (code, out) = env.sync(&[]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(out["mode"], "incremental", "{out}");
    out
}

#[test]
fn each_incremental_run_sees_exactly_what_changed() {
    let (slapd, env) = setup();
    assert_eq!(changes(&incremental(&env)), [0; 7], "nothing changed");

    slapd.modify(&person("fay", "Fay Person", ""));
    assert_eq!(changes(&incremental(&env)), [1, 0, 0, 0, 0, 0, 0], "add");

    slapd
        .modify(&format!("dn: uid=ben,ou=people,{SUFFIX}\nchangetype: modify\nreplace: mail\nmail: ben@new.example\n"));
    assert_eq!(changes(&incremental(&env)), [0, 1, 0, 0, 0, 0, 0], "modify");
    assert_eq!(env.user("ben")["email"], "ben@new.example");

    let cid = env.user("cid");
    slapd.modify(&format!("dn: uid=cid,ou=people,{SUFFIX}\nchangetype: modrdn\nnewrdn: uid=cyd\ndeleteoldrdn: 1\n"));
    assert_eq!(changes(&incremental(&env)), [0, 0, 1, 0, 0, 0, 0], "rename");
    assert_eq!(env.user("cyd")["external_id"], cid["external_id"]);

    slapd.modify(&format!("dn: uid=dot,ou=people,{SUFFIX}\nchangetype: delete\n"));
    assert_eq!(changes(&incremental(&env)), [0, 0, 0, 1, 0, 0, 0], "delete");
    assert_eq!(env.user("dot")["status"], "disabled");

    slapd.modify(&format!(
        "dn: uid=eve,ou=people,{SUFFIX}\nchangetype: modrdn\nnewrdn: uid=eve\ndeleteoldrdn: 1\nnewsuperior: ou=staff,{SUFFIX}\n"
    ));
    let out = incremental(&env);
    assert_eq!(changes(&out), [0, 1, 0, 0, 0, 0, 0], "move: {out}");
    assert_eq!(env.user("eve")["dn"], format!("uid=eve,ou=staff,{SUFFIX}"));

    slapd.modify(&format!(
        "dn: cn=Team,ou=groups,{SUFFIX}\nchangetype: modify\nadd: member\nmember: uid=fay,ou=people,{SUFFIX}\n-\ndelete: member\nmember: uid=ann,ou=people,{SUFFIX}\n"
    ));
    assert_eq!(changes(&incremental(&env)), [0, 0, 0, 0, 0, 1, 1], "group membership");
    assert_eq!(env.user("fay")["groups"], serde_json::json!(["Team"]));
    assert_eq!(env.user("ann")["groups"], serde_json::json!([]));
    assert_eq!(env.user("ben")["groups"], serde_json::json!(["Team"]), "unchanged member kept");

    // dot comes back (a new entry): re-linked to her old record, not a conflict.
    slapd.modify(&person("dot", "Dot Person", ""));
    let out = incremental(&env);
    assert_eq!(changes(&out), [0, 1, 0, 0, 0, 0, 0], "{out}");
    assert_eq!(env.user("dot")["status"], "active");

    // A full comparison afterwards finds nothing the increments missed.
    let (code, full) = env.sync(&["--full"]);
    assert_eq!((code, full["mode"].as_str()), (0, Some("full")));
    assert_eq!(changes(&full), [0; 7], "drift between incremental and full: {full}");
}

#[test]
fn a_delta_that_removes_too_many_is_blocked_and_the_cursor_stays() {
    let (slapd, env) = setup();
    let ldif: String = ["ann", "ben", "cid"]
        .iter()
        .map(|u| format!("dn: uid={u},ou=people,{SUFFIX}\nchangetype: delete\n\n"))
        .collect();
    slapd.modify(&ldif);
    for _ in 0..2 {
        // Blocked runs do not advance the cursor: the next run sees the same deletions.
        let (code, out) = env.sync(&[]);
        assert_eq!(code, 3, "{out}");
        assert_eq!(out["mode"], "incremental");
        assert_eq!(count(&out, "disabled"), 3);
        assert!(out["message"].as_str().unwrap().contains("60.0%"), "{out}");
    }
    let (code, out) = env.sync(&["--force"]);
    assert_eq!((code, count(&out, "disabled")), (0, 3), "{out}");
    assert_eq!(changes(&incremental(&env)), [0; 7]);
}

#[test]
fn a_present_phase_finds_deletions() {
    let (slapd, env) = setup();
    slapd.modify(&format!("dn: uid=eve,ou=people,{SUFFIX}\nchangetype: delete\n"));
    // A cookie older than slapd's session log: it answers with a present phase
    // (every entry, refreshDeletes=FALSE); eve is not among them.
    let old = serde_json::json!({
        "users": base64_of("rid=000,csn=20200101000000.000000Z#000000#000#000000"),
        "groups": base64_of("rid=000,csn=20200101000000.000000Z#000000#000#000000"),
    });
    env.rewrite_saved_state(|_| old.to_string());
    let out = incremental(&env);
    assert_eq!(count(&out, "disabled"), 1, "{out}");
    assert_eq!(env.user("eve")["status"], "disabled");
    assert_eq!(env.users().iter().filter(|u| u["status"] == "active").count(), 4);
}

#[test]
fn config_changes_full_flag_and_full_every_force_full_reads() {
    let (_slapd, env) = setup();
    incremental(&env);
    let (_, out) = env.sync(&["--full"]);
    assert_eq!(out["mode"], "full");
    incremental(&env);

    // A new field mapping: the saved position cannot fill it in; read in full.
    env.edit_config(|c| c.replace("email = \"mail\"", "email = \"mail\"\nsurname = \"sn\""));
    let (code, out) = env.sync(&[]);
    assert_eq!((code, out["mode"].as_str()), (0, Some("full")), "{out}");
    assert_eq!(count(&out, "updated"), 5, "every user gets the new field: {out}");
    assert_eq!(env.user("ann")["fields"]["surname"], "Person");
    incremental(&env);

    env.edit_config(|c| {
        c.replace("timeout_secs = 10", "timeout_secs = 10\n[sources.incremental]\nfull_every = \"1s\"")
    });
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let (_, out) = env.sync(&[]);
    assert_eq!(out["mode"], "full", "full_every elapsed: {out}");

    env.edit_config(|c| c.replace("full_every = \"1s\"", "enabled = false"));
    let (_, out) = env.sync(&[]);
    assert_eq!(out["mode"], "full", "incremental disabled");
}

fn base64_of(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

#[test]
fn a_cookie_from_the_servers_future_means_a_full_read_not_a_failure() {
    let (slapd, env) = setup();
    // A directory restored from an older backup: slapd refuses the cookie as
    // unwillingToPerform ("consumer state is newer than provider").
    env.rewrite_saved_state(|_| {
        let c = base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            b"rid=000,csn=20991231000000.000000Z#000000#000#000000",
        );
        format!("{{\"users\":\"{c}\",\"groups\":\"{c}\"}}")
    });
    slapd.modify(&person("gus", "Gus Person", ""));
    let (code, out) = env.sync(&[]);
    assert_eq!((code, out["mode"].as_str()), (0, Some("full")), "{out}");
    assert_eq!(env.user("gus")["status"], "active");
    assert_eq!(incremental(&env)["mode"], "incremental", "a usable cookie again");
}
