//! Several sources feeding one store: priority decides a contested username
//! (on every run, never flip-flopping; a higher-priority source takes the
//! record over by re-link), enrich sources add fields only, a failing or
//! guarded source leaves its users alone while the others apply (`partial`,
//! exit 1, `sources` in `sync --json`), `--source` runs one source, and the
//! config refuses two writers of one field.

use crate::harness::*;
use crate::program::user_field;

const FIELDS: &str = "[sources.fields]\nusername = \"login\"\nfull_name = \"name\"\n";

/// A folder with the given CSV files and a config of these source tables.
fn multi_env(files: &[(&str, &str)], sources: &str, rest: &str) -> Env {
    let env = Env { dir: tempfile::tempdir().unwrap() };
    for (name, text) in files {
        std::fs::write(env.dir.path().join(name), text).unwrap();
    }
    env.write_config(&format!("[store]\npath = \"dirsync.db\"\n\n{sources}\n{rest}"));
    env
}

fn csv_source(name: &str, file: &str, extra: &str) -> String {
    format!("[[sources]]\nname = \"{name}\"\ntype = \"csv\"\npath = \"{file}\"\n{extra}\n{FIELDS}\n")
}

fn write(env: &Env, file: &str, text: &str) {
    std::fs::write(env.dir.path().join(file), text).unwrap();
}

fn owner(env: &Env, user: &str) -> String {
    env.user(user)["source"].as_str().unwrap().to_string()
}

#[test]
fn a_contested_username_belongs_to_the_higher_priority_source_on_every_run() {
    let sources = csv_source("hr", "hr.csv", "priority = 1") + &csv_source("lab", "lab.csv", "priority = 2");
    let env = multi_env(
        &[("hr.csv", "login,name\nada,Ada (HR)\n"), ("lab.csv", "login,name\nada,Ada (Lab)\nbob,Bob\n")],
        &sources,
        "",
    );
    for run in 0..3 {
        let (code, out) = env.sync(&[]);
        assert_eq!(code, 0, "run {run}: {out}");
        assert_eq!(owner(&env, "ada"), "hr", "run {run}");
        assert_eq!(user_field(&env, "ada", "full_name"), "Ada (HR)", "run {run}: never flip-flops");
        let warnings = out["warnings"].to_string();
        assert!(
            warnings.contains("username \\\"ada\\\" belongs to source \\\"hr\\\" (priority 1); this entry of source \\\"lab\\\" (priority 2) is skipped"),
            "run {run}: {warnings}"
        );
        assert_eq!(out["errors"].as_array().unwrap().len(), 0, "a priority decision is not an error: {out}");
        assert_eq!(env.users().len(), 2, "no duplicate user");
    }
}

#[test]
fn a_higher_priority_source_takes_over_a_record_by_relink_keeping_its_local_values() {
    let env = multi_env(&[("lab.csv", "login,name\nada,Ada (Lab)\n")], &csv_source("lab", "lab.csv", ""), "");
    assert_eq!(env.sync(&[]).0, 0);
    let r = env.run(&["users", "set", "ada", "balance", "12.50"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let id_before = env.user("ada")["created_at"].clone();
    // HR is added above the lab: it owns ada from now on.
    write(&env, "hr.csv", "login,name\nada,Ada (HR)\n");
    env.write_config(&format!(
        "[store]\npath = \"dirsync.db\"\n\n{}{}",
        csv_source("hr", "hr.csv", ""),
        csv_source("lab", "lab.csv", "")
    ));
    let (code, out) = env.sync(&[]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(owner(&env, "ada"), "hr");
    assert_eq!(user_field(&env, "ada", "full_name"), "Ada (HR)");
    assert_eq!(user_field(&env, "ada", "balance"), "12.50", "local values kept");
    assert_eq!(env.user("ada")["created_at"], id_before, "the same record");
    assert!(out["warnings"].to_string().contains("belongs to source \\\"hr\\\""), "{out}");
    let store = env.store();
    let ada = store.user_by_name("ada").unwrap().unwrap();
    let audit = format!("{:?}", store.audit_of(ada.id, 50).unwrap());
    assert!(audit.contains("relink") && audit.contains("\"lab\"") && audit.contains("hr:ada"), "{audit}");
}

#[test]
fn an_enrich_source_sets_only_its_fields_and_never_creates_or_removes() {
    let sources = csv_source("hr", "hr.csv", "")
        + "[[sources]]\nname = \"cards\"\ntype = \"csv\"\npath = \"cards.csv\"\nrole = \"enrich\"\n[sources.fields]\nusername = \"login\"\ncard_number = \"card\"\n";
    let env = multi_env(
        &[("hr.csv", "login,name\nada,Ada\nbob,Bob\n"), ("cards.csv", "login,card\nADA,1001\nghost,9999\n")],
        &sources,
        "",
    );
    let (code, out) = env.sync(&[]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(usernames(&env.users()), ["ada", "bob"], "an enrich row creates nobody");
    assert_eq!(user_field(&env, "ada", "card_number"), "1001", "matched like usernames (case folded)");
    assert!(out["warnings"].to_string().contains("username \\\"ghost\\\" matches no user"), "{out}");
    // The card changes: an update; the row goes: nothing is removed.
    write(&env, "cards.csv", "login,card\nada,2002\n");
    let (code, out) = env.sync(&[]);
    assert_eq!((code, count(&out, "updated")), (0, 1), "{out}");
    assert_eq!(user_field(&env, "ada", "card_number"), "2002");
    write(&env, "cards.csv", "login,card\n");
    let (code, out) = env.sync(&[]);
    assert_eq!((code, count(&out, "disabled"), count(&out, "updated")), (0, 0, 0), "{out}");
    assert_eq!(user_field(&env, "ada", "card_number"), "2002");
}

#[test]
fn an_enrich_source_can_match_on_another_field() {
    let sources = "[[sources]]\nname = \"hr\"\ntype = \"csv\"\npath = \"hr.csv\"\n[sources.fields]\nusername = \"login\"\nfull_name = \"name\"\nemail = \"mail\"\n"
        .to_string()
        + "[[sources]]\nname = \"phones\"\ntype = \"csv\"\npath = \"phones.csv\"\nrole = \"enrich\"\nmatch_on = \"email\"\n[sources.fields]\nemail = \"address\"\nextension = \"ext\"\n";
    let env = multi_env(
        &[
            ("hr.csv", "login,name,mail\nada,Ada,ada@example.com\n"),
            ("phones.csv", "address,ext\nAda@Example.com,4711\n"),
        ],
        &sources,
        "",
    );
    let (code, out) = env.sync(&[]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(user_field(&env, "ada", "extension"), "4711");
    assert_eq!(user_field(&env, "ada", "email"), "ada@example.com", "the matched field is not written");
}

#[test]
fn two_writers_of_one_field_and_shared_priorities_are_config_errors() {
    let sources = csv_source("hr", "hr.csv", "")
        + "[[sources]]\nname = \"names\"\ntype = \"csv\"\npath = \"n.csv\"\nrole = \"enrich\"\n[sources.fields]\nusername = \"login\"\nfull_name = \"name\"\n";
    let env = multi_env(&[("hr.csv", "login,name\n"), ("n.csv", "login,name\n")], &sources, "");
    let r = env.run(&["check"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("sources[1].fields.full_name: \"full_name\" is also set by source \"hr\""),
        "{}",
        r.stderr
    );
    let sources = csv_source("a", "hr.csv", "priority = 2") + &csv_source("b", "hr.csv", "priority = 2");
    env.write_config(&format!("[store]\npath = \"dirsync.db\"\n{sources}"));
    let r = env.run(&["check"]);
    assert!(
        r.code == 2 && r.stderr.contains("sources[1].priority: 2 is also the priority of source \"a\""),
        "{}",
        r.stderr
    );
}

#[test]
fn a_failing_source_leaves_its_users_alone_while_the_other_applies() {
    let sources = csv_source("hr", "hr.csv", "") + &csv_source("lab", "lab.csv", "");
    let env = multi_env(&[("hr.csv", "login,name\nada,Ada\n"), ("lab.csv", "login,name\nbob,Bob\n")], &sources, "");
    assert_eq!(env.sync(&[]).0, 0);
    std::fs::remove_file(env.dir.path().join("hr.csv")).unwrap();
    write(&env, "lab.csv", "login,name\nbob,Bob\ncyd,Cyd\n");
    let (code, out) = env.sync(&[]);
    assert_eq!((code, out["status"].as_str()), (1, Some("partial")), "{out}");
    assert_eq!(count(&out, "created"), 1, "lab's change applied: {out}");
    assert_eq!(out["sources"][0]["name"], "hr");
    assert_eq!(out["sources"][0]["status"], "failed");
    assert!(out["sources"][0]["message"].as_str().unwrap().contains("cannot read"), "{out}");
    assert_eq!(out["sources"][1]["status"], "ok");
    assert_eq!(env.user("ada")["status"], "active", "hr's user untouched");
    assert_eq!(env.runs()[0]["status"], "partial");
}

#[test]
fn guards_are_decided_per_source() {
    let sources = csv_source("hr", "hr.csv", "") + &csv_source("lab", "lab.csv", "");
    let hr: String =
        std::iter::once("login,name\n".to_string()).chain((0..10).map(|i| format!("h{i},H {i}\n"))).collect();
    let env = multi_env(
        &[("hr.csv", &hr), ("lab.csv", "login,name\nbob,Bob\n")],
        &sources,
        "[safety]\nmax_delete_percent = 20\n",
    );
    assert_eq!(env.sync(&[]).0, 0);
    // HR loses half its people (above 20%), the lab gains one.
    let half: String =
        std::iter::once("login,name\n".to_string()).chain((0..5).map(|i| format!("h{i},H {i}\n"))).collect();
    write(&env, "hr.csv", &half);
    write(&env, "lab.csv", "login,name\nbob,Bob\ncyd,Cyd\n");
    let (code, out) = env.sync(&[]);
    assert_eq!((code, out["status"].as_str()), (1, Some("partial")), "{out}");
    assert_eq!((count(&out, "created"), count(&out, "disabled")), (1, 0), "{out}");
    assert_eq!(out["sources"][0]["status"], "blocked");
    assert!(out["sources"][0]["message"].as_str().unwrap().contains("max_delete_percent"), "{out}");
    assert_eq!(env.user("h9")["status"], "active");
    // The lab empties: a user vanishing from the lab never touches HR's.
    write(&env, "lab.csv", "login,name\n");
    let (code, out) = env.sync(&["--source", "lab"]);
    assert_eq!(code, 3, "{out}");
    assert_eq!(out["sources"].as_array().unwrap().len(), 1, "{out}");
    // --source runs only the lab: HR's users are not removed by its absence.
    write(&env, "lab.csv", "login,name\nbob,Bob\n");
    let (code, out) = env.sync(&["--source", "lab", "--force"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(env.user("h9")["status"], "active");
    assert_eq!(env.user("cyd")["status"], "disabled", "cyd left the lab");
}

#[test]
fn ownership_moves_when_the_owner_loses_the_user_and_not_behind_its_back() {
    let sources = csv_source("lab", "lab.csv", "priority = 1") + &csv_source("hr", "hr.csv", "priority = 2");
    let env = multi_env(
        &[("lab.csv", "login,name\nada,Ada (Lab)\nbob,Bob\n"), ("hr.csv", "login,name\ncyd,Cyd\n")],
        &sources,
        "",
    );
    assert_eq!(env.sync(&[]).0, 0);
    // HR (lower priority) gains ada while the lab still has her: the lab keeps her.
    write(&env, "hr.csv", "login,name\ncyd,Cyd\nada,Ada (HR)\n");
    let (code, out) = env.sync(&[]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(owner(&env, "ada"), "lab");
    // The lab loses her: the record moves to HR (same record, re-linked).
    write(&env, "lab.csv", "login,name\nbob,Bob\n");
    let (code, out) = env.sync(&[]);
    assert_eq!((code, count(&out, "disabled")), (0, 0), "{out}");
    assert_eq!(owner(&env, "ada"), "hr");
    assert_eq!(env.user("ada")["status"], "active");
    // Only HR is read: bob (the lab's) is not taken over by an HR row for him.
    write(&env, "hr.csv", "login,name\ncyd,Cyd\nada,Ada (HR)\nbob,Bob (HR)\n");
    let (code, out) = env.sync(&["--source", "hr"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(owner(&env, "bob"), "lab", "a source not read in this run keeps its users");
    assert!(out["warnings"].to_string().contains("belongs to source \\\"lab\\\""), "{out}");
}
