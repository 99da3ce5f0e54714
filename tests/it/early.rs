//! Early creations (src/sync/early.rs): on a source's first sync its new
//! users are written while it is read, in the run's transaction. What the
//! plan decides at the end still rules: a failed source leaves nothing, a
//! duplicate found at the end is taken back, a provisioning rule's field is
//! written into the early row, and the audit trail holds one `create` each.

use std::process::Output;

use crate::harness::*;
use crate::program::{program_config, program_env, user_field};

/// `dirsync sync --json` with the info log: (exit code, answer, log).
fn sync_logged(env: &Env) -> (i32, serde_json::Value, String) {
    let out: Output = env.command(&["sync", "--json"]).env("DIRSYNC_LOG", "info").output().unwrap();
    let json = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    (out.status.code().unwrap_or(-1), json, String::from_utf8_lossy(&out.stderr).into_owned())
}

/// How many users the run wrote while reading, from its log (`None`: none
/// were written early, the line is absent).
fn written_early(log: &str) -> Option<u64> {
    let at = log.find("written_early=")? + "written_early=".len();
    log[at..].split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}

/// (action, count) of the store's audit rows.
fn audit_actions(env: &Env) -> Vec<(String, i64)> {
    env.audit_actions()
}

fn csv_env(rows: &str, rest: &str) -> Env {
    let env = Env { dir: tempfile::tempdir().unwrap() };
    std::fs::write(env.dir.path().join("people.csv"), rows).unwrap();
    env.write_config(&format!(
        "[store]\npath = \"dirsync.db\"\n\n[[sources]]\nname = \"hr\"\ntype = \"csv\"\npath = \"people.csv\"\n\
         [sources.fields]\nusername = \"login\"\nfull_name = \"name\"\n\n{rest}"
    ));
    env
}

#[test]
fn a_first_sync_writes_new_users_while_reading_and_records_each_once() {
    let rows: String = (0..3000).map(|i| format!("u{i:04},User {i}\n")).collect();
    let env = csv_env(&format!("login,name\n{rows}"), "");
    let (code, out, log) = sync_logged(&env);
    assert_eq!(code, 0, "{out}\n{log}");
    assert_eq!(written_early(&log), Some(3000), "every new user written while reading: {log}");
    assert_eq!(count(&out, "created"), 3000, "{out}");
    assert_eq!(env.users().len(), 3000);
    assert_eq!(audit_actions(&env), [("create".to_string(), 3000)], "one create row each");
    assert_eq!(user_field(&env, "u2999", "full_name"), "User 2999");
    // The next sync of the same source reads a store that has its users:
    // nothing is written early, nothing changes.
    let (code, out, log) = sync_logged(&env);
    assert_eq!((code, count(&out, "created"), count(&out, "unchanged")), (0, 0, 3000), "{out}");
    assert_eq!(written_early(&log), None, "{log}");
}

#[test]
fn a_failing_first_sync_leaves_nothing_of_what_it_wrote_early() {
    let users: String = (0..2000).map(|i| format!("p{i:04}\tPerson {i}\n")).collect();
    let env = program_env("userdir.sh", &users, "", "");
    std::fs::write(env.dir.path().join("userdir").join("crash-late"), "").unwrap();
    let (code, out, log) = sync_logged(&env);
    assert_eq!((code, out["status"].as_str()), (1, Some("failed")), "{out}\n{log}");
    assert!(written_early(&log).unwrap_or(0) > 0, "users were written before the program failed: {log}");
    assert_eq!(env.users().len(), 0, "rolled back");
    assert!(audit_actions(&env).is_empty(), "no audit row left: {:?}", audit_actions(&env));
}

#[test]
fn a_failed_source_beside_a_good_one_has_its_early_rows_taken_back() {
    let users: String = (0..2000).map(|i| format!("p{i:04}\tPerson {i}\n")).collect();
    let env = program_env("userdir.sh", &users, "", "");
    std::fs::write(env.dir.path().join("userdir").join("crash-late"), "").unwrap();
    std::fs::write(env.dir.path().join("people.csv"), "login,name\nada,Ada\nbob,Bob\n").unwrap();
    let program = env.dir.path().join("userdir").join("userdir.sh");
    env.write_config(&format!(
        "{}\n[[sources]]\nname = \"hr\"\ntype = \"csv\"\npath = \"people.csv\"\npriority = 2\n\
         [sources.fields]\nusername = \"login\"\nfull_name = \"name\"\n",
        program_config(&program, "")
    ));
    let (code, out, log) = sync_logged(&env);
    assert_eq!((code, out["status"].as_str()), (1, Some("partial")), "{out}\n{log}");
    assert!(written_early(&log).unwrap_or(0) > 2, "the failing source's users were written early: {log}");
    assert_eq!(usernames(&env.users()), ["ada", "bob"], "only the good source's users are kept");
    assert_eq!(audit_actions(&env), [("create".to_string(), 2)]);
}

#[test]
fn a_duplicate_and_a_rule_found_at_the_end_correct_the_early_rows() {
    // Two entries (two identities) claim the username "dup".
    let rows =
        "id,login,name,groups\n1,ann,Ann,Students\n2,cyd,Cyd,Staff\n3,dup,First Dup,\n4,zed,Zed,\n5,DUP,Second Dup,\n";
    let env = csv_env(rows, "[[rules]]\nwhen_member_of = \"Students\"\nset = { credit = \"10.00\" }\n");
    env.edit_config(|c| {
        c.replace("path = \"people.csv\"\n", "path = \"people.csv\"\nid_column = \"id\"\ngroups_column = \"groups\"\n")
    });
    let (code, out, log) = sync_logged(&env);
    assert_eq!(code, 0, "{out}\n{log}");
    assert!(written_early(&log).unwrap_or(0) >= 4, "{log}");
    assert_eq!(usernames(&env.users()), ["ann", "cyd", "zed"], "both claimants of dup are skipped: {out}");
    assert!(out["errors"].to_string().contains("duplicate username \\\"dup\\\""), "{out}");
    assert_eq!(user_field(&env, "ann", "credit"), "10.00", "the rule's field is in the row written early");
    assert_eq!(user_field(&env, "cyd", "credit"), "");
    let feed = env.store().changes(0, 1000).unwrap();
    let ann = feed.iter().find(|c| c.record.action == "create" && c.record.name == "ann").expect("ann's create row");
    let said = ann.record.new.clone().unwrap_or_default();
    assert!(said.contains("\"credit\":\"10.00\""), "the create row says what was created: {said}");
    assert_eq!(audit_actions(&env), [("create".to_string(), 3), ("group_create".to_string(), 2)]);
}
