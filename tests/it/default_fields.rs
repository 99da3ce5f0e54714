//! A `[sources.fields]` table merges over its kind's default fields: an
//! entry given wins, a default not given still applies, and `name = false`
//! turns a default off. One sync per kind with defaults (Graph, Google,
//! program, Unix, AD); CSV, LDIF and LDAP have none and need a whole table.

use crate::harness::*;
use crate::program::{program_env, user_field, MEMBERS, USERS};

#[test]
fn google_with_only_extra_fields_keeps_its_default_username_name_and_email() {
    let g = crate::fake_google::FakeGoogle::start();
    crate::google::domain(&g);
    // The README's own example: only the two extra fields are written.
    let fields = "[sources.fields]\ncard_number = \"customSchemas.Printing.CardNumber\"\n\
                  department = \"organizations.0.department\"\n";
    let env = crate::google::google_env(&g, "", fields);
    let (code, out) = env.sync(&[]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(usernames(&env.users()), ["amy", "bob", "cat", "dan"], "username: primaryEmail without its domain");
    assert_eq!(user_field(&env, "amy", "full_name"), "AMY Pupil");
    assert_eq!(user_field(&env, "amy", "email"), "amy@school.example");
    assert_eq!(user_field(&env, "amy", "card_number"), "C0");
    assert_eq!(user_field(&env, "amy", "department"), "Year 7");
}

#[test]
fn graph_with_a_partial_table_overrides_one_default_and_turns_one_off() {
    let g = crate::fake_graph::FakeGraph::start();
    crate::graph::tenant(&g);
    let fields = "[sources.fields]\nfull_name = { attribute = \"displayName\", transform = \"lower\" }\n\
                  email = false\ncard_number = \"employeeId\"\n";
    let env = crate::graph::graph_env(&g, "", fields);
    let (code, out) = env.sync(&[]);
    assert_eq!(code, 0, "{out}");
    let amy = env.user("amy@contoso.com");
    assert_eq!(amy["full_name"], "amy person", "the given entry wins: {amy}");
    assert!(amy["email"].is_null(), "email = false turns the default off: {amy}");
    assert_eq!(amy["card_number"], "E0");
    let select = &g.requests("GET", "/v1.0/users")[0].query["$select"];
    assert!(!select.contains("mail") && select.contains("userPrincipalName"), "{select}");
}

#[test]
fn a_program_with_a_partial_table_keeps_the_other_columns() {
    let env = program_env("userdir.sh", USERS, MEMBERS, "[sources.fields]\noffice = false\npin = \"pin\"\n");
    let (code, out) = env.sync(&[]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(user_field(&env, "jane", "email"), "janer@example.com", "a default not given still applies");
    assert_eq!(user_field(&env, "jane", "pin"), "1234");
    assert_eq!(user_field(&env, "jane", "office"), "", "office = false");
}

#[test]
fn unix_with_a_partial_table_keeps_username_and_full_name() {
    let env = crate::unix::unix_env("[sources.fields]\nhome = \"home_directory\"\n");
    let (code, out) = env.sync(&[]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(user_field(&env, "ada", "full_name"), "Ada Lovelace");
    assert_eq!(user_field(&env, "ada", "office"), "Room 12");
    assert!(user_field(&env, "ada", "home").starts_with('/'), "{}", env.user("ada"));
}

#[test]
fn ad_with_a_partial_table_keeps_sam_account_name_and_cn() {
    samba();
    let ou = ad_ou("adpart", &[("tpann", "Pat Ann", 544)], &[]);
    let env = ad_env(
        &[&ou],
        "",
        "[sources.fields]\nemail = false\nlogin = { attribute = \"sAMAccountName\", transform = \"upper\" }\n",
    );
    let (code, out) = env.sync(&[]);
    assert_eq!(code, 0, "{out}");
    let ann = env.user("tpann");
    assert_eq!(ann["full_name"], "Pat Ann");
    assert!(ann["email"].is_null(), "{ann}");
    assert_eq!(ann["fields"]["login"], "TPANN");
}

#[test]
fn turning_off_username_or_an_unknown_default_is_refused_at_load() {
    let env = crate::unix::unix_env("[sources.fields]\nusername = false\n");
    let r = env.run(&["check"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("sources[0].fields.username") && r.stderr.contains("cannot be turned off"),
        "{}",
        r.stderr
    );
    let env = crate::unix::unix_env("[sources.fields]\nbadge = false\n");
    let r = env.run(&["check"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("sources[0].fields.badge") && r.stderr.contains("no default by that name"),
        "{}",
        r.stderr
    );
}
