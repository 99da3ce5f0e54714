//! The CSV source (`type = "csv"`): RFC 4180 quoting (delimiters, quotes and
//! newlines in fields), a byte order mark, TSV, bad rows skipped with their
//! line, groups from a column or a memberships file, a missing file (fails)
//! and an empty one (an empty source), and columns checked at load.

use std::path::Path;

use crate::harness::*;
use crate::program::user_field;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/csv");

pub const PEOPLE_FIELDS: &str =
    "[sources.fields]\nusername = \"Login\"\nfull_name = \"Full Name\"\nemail = \"Email\"\ncard_number = \"Card\"\n";

fn csv_env(file: &str, extra: &str, fields: &str) -> Env {
    let env = Env { dir: tempfile::tempdir().unwrap() };
    std::fs::copy(Path::new(FIXTURES).join(file), env.dir.path().join(file)).unwrap();
    env.write_config(&format!(
        "[store]\npath = \"dirsync.db\"\n\n[[sources]]\nname = \"hr\"\ntype = \"csv\"\npath = \"{file}\"\n{extra}\n{fields}"
    ));
    env
}

#[test]
fn quoted_fields_a_bom_and_a_groups_column_are_read_and_bad_rows_name_their_line() {
    let env = csv_env("people.csv", "", PEOPLE_FIELDS);
    let (code, out) = env.sync(&[]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(usernames(&env.users()), ["ada", "bob", "zoë"]);
    assert_eq!(user_field(&env, "ada", "full_name"), "Lovelace, Ada");
    assert_eq!(user_field(&env, "bob", "full_name"), "Bob \"The Builder\" Smith");
    assert_eq!(user_field(&env, "zoë", "card_number"), "1006");
    assert_eq!(env.user("ada")["external_id"], "ada", "the identity defaults to the username's column");
    let groups = env.user("ada")["groups"].to_string();
    assert!(groups.contains("Staff") && groups.contains("Students"), "{groups}");
    let errors = out["errors"].to_string();
    assert!(errors.contains("people.csv:6") && errors.contains("the row has 6 columns; the header has 5"), "{errors}");
    assert!(errors.contains("people.csv:7") && errors.contains("the id column \\\"login\\\" is empty"), "{errors}");
    // A quoted field may hold a line break (the rows after it keep their
    // line numbers), but a full name may not.
    assert!(errors.contains("people.csv:4") && errors.contains("control characters"), "{errors}");
    assert_eq!(out["errors"].as_array().unwrap().len(), 3, "{errors}");
}

#[test]
fn a_tsv_file_with_an_id_column_and_a_memberships_file() {
    let env = csv_env(
        "people.tsv",
        "delimiter = \"\\t\"\nid_column = \"card\"\nmemberships_path = \"members.csv\"",
        "[sources.fields]\nusername = \"login\"\nfull_name = \"name\"\n",
    );
    std::fs::write(env.dir.path().join("members.csv"), "group,username\nLab,ada\nLab,bob\nChess,bob\n").unwrap();
    let (code, out) = env.sync(&[]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(env.user("bob")["external_id"], "2");
    assert_eq!(env.user("bob")["groups"], serde_json::json!(["Chess", "Lab"]));
    // A rename keeps the record: same id, new login.
    let tsv = env.dir.path().join("people.tsv");
    std::fs::write(&tsv, std::fs::read_to_string(&tsv).unwrap().replace("bob\tBob B", "robert\tBob B")).unwrap();
    let (code, out) = env.sync(&[]);
    assert_eq!((code, count(&out, "renamed")), (0, 1), "{out}");
}

#[test]
fn a_missing_file_fails_the_run_and_an_empty_one_is_an_empty_source() {
    let env = csv_env("people.csv", "", PEOPLE_FIELDS);
    assert_eq!(env.sync(&[]).0, 0);
    let file = env.dir.path().join("people.csv");
    std::fs::rename(&file, env.dir.path().join("moved.csv")).unwrap();
    let (code, out) = env.sync(&[]);
    assert_eq!((code, out["status"].as_str()), (1, Some("failed")), "{out}");
    assert!(out["message"].as_str().unwrap().contains("cannot read"), "{out}");
    std::fs::write(&file, "").unwrap();
    let (code, out) = env.sync(&["--force"]);
    assert_eq!((code, out["status"].as_str()), (3, Some("blocked")), "an empty file removes nobody: {out}");
    assert_eq!(env.users().iter().filter(|u| u["status"] == "active").count(), 3);
}

#[test]
fn a_field_naming_a_column_the_file_lacks_is_a_config_error() {
    let env = csv_env("people.csv", "", &PEOPLE_FIELDS.replace("\"Email\"", "\"Emial\""));
    let r = env.run(&["check"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("sources[0].fields.email") && r.stderr.contains("has no column \"emial\""),
        "{}",
        r.stderr
    );
}

#[test]
fn scope_groups_limit_a_csv_source_to_the_groups_members() {
    let env = csv_env("people.csv", "scope_groups = [\"Students\"]", PEOPLE_FIELDS);
    let (code, out) = env.sync(&[]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(usernames(&env.users()), ["ada", "zoë"]);
}

const SECRET: &str = "s3cr3t-T0ken-Value-9f86d081884c7d65";

#[test]
fn a_csv_path_linked_to_a_token_file_elsewhere_is_refused_without_showing_it() {
    let elsewhere = tempfile::tempdir().unwrap();
    let token = elsewhere.path().join("api.token");
    std::fs::write(&token, format!("{SECRET}\n")).unwrap();
    for key in ["path", "memberships_path"] {
        let env = csv_env("people.csv", "", PEOPLE_FIELDS);
        std::os::unix::fs::symlink(&token, env.dir.path().join("linked.csv")).unwrap();
        env.edit_config(|c| match key {
            "path" => c.replace("path = \"people.csv\"", "path = \"linked.csv\""),
            _ => c.replace("path = \"people.csv\"", "path = \"people.csv\"\nmemberships_path = \"linked.csv\""),
        });
        let r = env.run(&["check"]);
        assert_eq!(r.code, 2, "{key}: {}{}", r.stdout, r.stderr);
        assert!(r.stderr.contains(&format!("sources[0].{key}")) && r.stderr.contains("outside"), "{key}: {}", r.stderr);
        assert!(!r.stderr.contains(SECRET) && !r.stdout.contains(SECRET), "{key}: the secret is shown");
    }
}

#[test]
fn a_file_that_is_not_csv_is_named_without_quoting_its_first_line() {
    // A token, a password file, two random-looking columns: none is quoted.
    for first in
        [SECRET.to_string(), format!("root:{SECRET}:19000:0:99999:7:::"), format!("AKIAIOSFODNN7EXAMPLE1,{SECRET}")]
    {
        let env = csv_env("people.csv", "", PEOPLE_FIELDS);
        std::fs::write(env.dir.path().join("people.csv"), format!("{first}\n")).unwrap();
        for cmd in [&["check"][..], &["sync", "--json"][..]] {
            let r = env.run(cmd);
            assert_eq!(r.code, 2, "{cmd:?}: {}", r.stderr);
            assert!(
                r.stderr.contains("has no column") && r.stderr.contains("does not read as a header"),
                "{}",
                r.stderr
            );
            let everywhere = format!("{}{}{}", r.stdout, r.stderr, env.run(&["runs", "--json"]).stdout);
            assert!(!everywhere.contains(SECRET) && !everywhere.contains("AKIA"), "quoted: {everywhere}");
        }
    }
    // A real header is still listed, to help the admin.
    let env = csv_env("people.csv", "", &PEOPLE_FIELDS.replace("\"Card\"", "\"Badge\""));
    let r = env.run(&["check"]);
    assert!(r.stderr.contains("its header has: login, full name"), "{}", r.stderr);
}

#[test]
fn eight_thousand_rows_claiming_one_identity_make_bounded_errors_and_a_small_store() {
    let env = csv_env("people.csv", "", PEOPLE_FIELDS);
    // One usable row: a read whose every row is skipped fails as a whole.
    let mut text = String::from("Login,Full Name,Email,Card\nsolo,Solo,solo@example.com,1\n");
    for i in 0..8000 {
        text += &format!("dup,Name {i},n{i}@example.com,{i}\n");
    }
    std::fs::write(env.dir.path().join("people.csv"), text).unwrap();
    let r = env.run(&["sync", "--dry-run", "--json"]);
    let out = r.json();
    let errors = out["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 8000, "every claimant is skipped and said");
    let longest = errors.iter().map(|e| e["reason"].as_str().unwrap().len()).max().unwrap();
    assert!(longest < 1024, "an error names a few claimants, not all: {longest} bytes");
    assert!(errors[0]["reason"].as_str().unwrap().contains("claimed by 8000 entries"), "{}", errors[0]);
    assert!(r.stdout.len() < 5 << 20, "the whole answer is {} bytes", r.stdout.len());
    // Each real run records its errors: the store grows by little.
    let size = || std::fs::metadata(env.db()).map(|m| m.len()).unwrap_or(0);
    env.sync(&[]);
    let before = size();
    env.sync(&[]);
    assert!(size() - before < 5 << 20, "a run grew the store by {} bytes", size() - before);
}
