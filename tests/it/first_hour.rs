//! The admin's first hour: mistakes a newcomer makes that used to be
//! silent, said where they can still be fixed (check, the dry run, the sync).

use crate::harness::{count, ldif_user, usernames, Env};

fn env_with(fields: &str, people: &str) -> Env {
    let env = Env { dir: tempfile::tempdir().unwrap() };
    std::fs::write(env.dir.path().join("d.ldif"), people).unwrap();
    env.write_config(&format!(
        "[store]\npath = \"dirsync.db\"\n\n[[sources]]\nname = \"corp\"\ntype = \"ldif\"\npath = \"d.ldif\"\n[sources.fields]\n{fields}\n"
    ));
    env
}

/// The notes about a whole read in `sync --json`'s warnings (`dn: null`).
fn run_notes(out: &serde_json::Value) -> Vec<String> {
    let warnings = out["warnings"].as_array().unwrap();
    warnings.iter().filter(|w| w["dn"].is_null()).map(|w| w["reason"].as_str().unwrap().to_string()).collect()
}

fn people(n: usize) -> String {
    (0..n).map(|i| ldif_user(&format!("u{i}"), &format!("id{i}"), &format!("mail: u{i}@example.com\n\n"))).collect()
}

#[test]
fn a_field_mapped_to_an_attribute_no_entry_has_is_a_warning_with_the_closest_name() {
    let env = env_with("username = \"uid\"\nfull_name = \"cn\"\nemail = \"mial\"\n", &people(5));
    let (code, out) = env.sync(&["--dry-run"]);
    assert_eq!(code, 0, "{out}");
    let warnings = out["warnings"].as_array().unwrap();
    let said: Vec<&serde_json::Value> = warnings.iter().filter(|w| w["dn"].is_null()).collect();
    assert_eq!(said.len(), 1, "once per run, not per entry: {out}");
    let reason = said[0]["reason"].as_str().unwrap();
    assert!(reason.contains("attribute mial (field email) was found on 0 of 5 user entries"), "{reason}");
    assert!(reason.contains("the entries have mail"), "the closest name: {reason}");
    // The text of check says it too, and the sync applies (a warning only).
    let check = env.run(&["check"]);
    assert!(check.stdout.contains("was found on 0 of 5 user entries"), "{}", check.stdout);
    let (code, out) = env.sync(&[]);
    assert_eq!((code, count(&out, "created")), (0, 5), "{out}");
}

#[test]
fn a_full_read_whose_every_entry_is_skipped_fails_its_source_and_groups_the_reasons() {
    let env = env_with("username = \"uid\"\nfull_name = \"cn\"\n", &people(4));
    assert_eq!(env.sync(&[]).0, 0);
    // The mistake: a username attribute no entry has.
    env.edit_config(|c| c.replace("username = \"uid\"", "username = \"uidd\""));
    let (code, out) = env.sync(&[]);
    assert_eq!((code, out["status"].as_str()), (1, Some("failed")), "{out}");
    let message = out["message"].as_str().unwrap();
    assert!(message.contains("all 4 user entries were skipped"), "{message}");
    assert!(message.contains("4 entries: missing required field username"), "grouped with a count: {message}");
    assert_eq!(message.matches("missing required field").count(), 1, "one line per reason: {message}");
    assert!(message.contains("attribute uidd (field username) was found on 0 of 4"), "{message}");
    assert_eq!(usernames(&env.users()).len(), 4, "nobody removed or changed");
    assert!(env.users().iter().all(|u| u["status"] == "active"));
    let check = env.run(&["check"]);
    assert_eq!(check.code, 1, "check fails the source too: {}", check.stdout);
    assert!(check.stdout.contains("all 4 user entries were skipped"), "{}", check.stdout);
}

#[test]
fn skip_reasons_are_grouped_in_the_text_output_with_a_count_and_the_first_dns() {
    // Three of five entries lack cn: one line says so, with a count.
    let mut text = people(2);
    for i in 0..3 {
        text.push_str(&format!(
            "dn: uid=x{i},ou=people,dc=t\nobjectClass: inetOrgPerson\nuid: x{i}\nentryUUID: x{i}\n\n"
        ));
    }
    let env = env_with("username = \"uid\"\nfull_name = \"cn\"\n", &text);
    let r = env.run(&["sync", "--dry-run"]);
    assert_eq!(r.code, 0, "{}", r.stdout);
    let lines: Vec<&str> = r.stdout.lines().filter(|l| l.contains("missing required field full_name")).collect();
    assert_eq!(lines.len(), 1, "{}", r.stdout);
    assert!(lines[0].contains("3 entries:") && lines[0].contains("uid=x0,ou=people,dc=t"), "{}", lines[0]);
}

#[test]
fn reading_commands_on_a_store_not_yet_created_say_so_and_create_nothing() {
    let env = env_with("username = \"uid\"\nfull_name = \"cn\"\n", &people(1));
    for args in
        [&["users", "list"][..], &["users", "show", "u0"], &["runs"], &["groups", "list"], &["writeback", "status"]]
    {
        let r = env.run(args);
        assert_eq!(r.code, 1, "{args:?}: {}{}", r.stdout, r.stderr);
        assert!(
            r.stderr.contains("no store yet at") && r.stderr.contains("run `dirsync sync` first"),
            "{args:?}: {}",
            r.stderr
        );
        assert!(!env.db().exists(), "{args:?} created the store");
    }
}

#[test]
fn check_says_when_the_store_folder_cannot_be_written() {
    let env = env_with("username = \"uid\"\nfull_name = \"cn\"\n", &people(1));
    // Not even root can create a file in /proc/self.
    env.edit_config(|c| c.replace("path = \"dirsync.db\"", "path = \"/proc/self/dirsync/dirsync.db\""));
    let r = env.run(&["check"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(r.stdout.contains("cannot be written"), "{}", r.stdout);
    // A folder that can be written is fine, and still nothing is created.
    env.edit_config(|c| c.replace("/proc/self/dirsync/dirsync.db", "new/dirsync.db"));
    let r = env.run(&["check"]);
    assert_eq!(r.code, 0, "{}", r.stdout);
    assert!(r.stdout.contains("not created yet"), "{}", r.stdout);
    assert!(!env.dir.path().join("new").exists());
}

#[test]
fn a_dry_run_with_exit_code_says_whether_changes_are_pending() {
    let env = env_with("username = \"uid\"\nfull_name = \"cn\"\n", &people(3));
    assert_eq!(env.run(&["sync", "--dry-run", "--exit-code"]).code, 5, "three users to create");
    assert_eq!(env.run(&["sync", "--dry-run"]).code, 0, "without the flag: 0");
    assert_eq!(env.sync(&[]).0, 0);
    assert_eq!(env.run(&["sync", "--dry-run", "--exit-code"]).code, 0, "nothing pending");
    assert_eq!(env.run(&["sync", "--exit-code"]).code, 2, "--exit-code goes with --dry-run");
}

#[test]
fn a_listing_piped_into_head_ends_quietly() {
    let env = env_with("username = \"uid\"\nfull_name = \"cn\"\n", &people(3000));
    assert_eq!(env.sync(&[]).0, 0);
    let mut child = env
        .command(&["users", "list"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut first = [0u8; 64];
    std::io::Read::read_exact(&mut out, &mut first).unwrap();
    drop(out); // what `head` does once it has its lines
    let done = child.wait_with_output().unwrap();
    assert_eq!(done.status.code(), Some(0), "{}", String::from_utf8_lossy(&done.stderr));
    assert!(done.stderr.is_empty(), "nothing on stderr: {}", String::from_utf8_lossy(&done.stderr));
}

#[test]
fn a_rule_naming_a_group_no_source_has_is_a_warning_with_the_closest_names() {
    let mut text = people(2);
    text.push_str("dn: cn=Students,ou=groups,dc=t\nobjectClass: groupOfNames\ncn: Students\nentryUUID: g1\nmember: uid=u0,ou=people,dc=t\n\n");
    let env = env_with("username = \"uid\"\nfull_name = \"cn\"\n", &text);
    env.edit_config(|c| c + "\n[[rules]]\nwhen_member_of = \"Student\"\nset = { credit = \"10.00\" }\n");
    let (code, out) = env.sync(&["--dry-run"]);
    assert_eq!(code, 0, "{out}");
    let notes = run_notes(&out);
    assert_eq!(notes.len(), 1, "{out}");
    assert!(notes[0].contains("when_member_of = \"Student\" names a group no source has"), "{}", notes[0]);
    assert!(notes[0].contains("the closest: Students"), "{}", notes[0]);
    // Fixed: no warning.
    env.edit_config(|c| c.replace("\"Student\"", "\"students\""));
    let (_, out) = env.sync(&["--dry-run"]);
    assert!(out["warnings"].as_array().unwrap().iter().all(|w| !w["dn"].is_null()), "{out}");
}

#[test]
fn a_base_dn_the_server_does_not_have_is_said_with_what_it_holds() {
    let slapd = crate::harness::Slapd::start();
    let env = Env::ldap(&slapd, "", "");
    env.edit_config(|c| c.replace("base_dn = \"dc=example,dc=com\"", "base_dn = \"dc=exmaple,dc=com\""));
    let (code, out) = env.sync(&[]);
    assert_eq!(code, 1, "{out}");
    let m = out["message"].as_str().unwrap();
    assert!(m.contains("base_dn dc=exmaple,dc=com does not exist on the server; it holds dc=example,dc=com"), "{m}");
    let check = env.run(&["check"]);
    assert_eq!(check.code, 1);
    assert!(check.stdout.contains("it holds dc=example,dc=com"), "{}", check.stdout);
}

#[test]
fn a_backfill_fills_what_creates_missed_and_never_overwrites() {
    let mut text = String::new();
    for i in 0..4 {
        let extra = format!("employeeNumber: E{i}\n\n");
        text.push_str(&ldif_user(&format!("u{i}"), &format!("id{i}"), &extra));
    }
    text.push_str("dn: cn=Students,ou=groups,dc=t\nobjectClass: groupOfNames\ncn: Students\nentryUUID: g1\n");
    for i in 0..3 {
        text.push_str(&format!("member: uid=u{i},ou=people,dc=t\n"));
    }
    text.push('\n');
    // Two mistakes made on the first day: a misspelled create-only attribute
    // and a rule naming a group that does not exist.
    let fields =
        "username = \"uid\"\nfull_name = \"cn\"\ncard_number = { attribute = \"employeeNumbr\", on = [\"create\"] }\n";
    let env = env_with(fields, &text);
    env.edit_config(|c| c + "\n[[rules]]\nwhen_member_of = \"Student\"\nset = { credit = \"10.00\" }\n");
    assert_eq!(env.sync(&[]).0, 0);
    // Fixed too late: a normal sync never re-applies what is create-only.
    env.edit_config(|c| c.replace("employeeNumbr", "employeeNumber").replace("\"Student\"", "\"Students\""));
    assert_eq!(env.sync(&[]).0, 0);
    assert_eq!(env.user("u1")["card_number"], serde_json::Value::Null);
    // A value set meanwhile by hand is never overwritten.
    assert_eq!(env.run(&["users", "set", "u0", "credit", "5.00"]).code, 0);
    let runs_before = env.runs().len();

    let preview = env.run(&["sync", "--backfill", "--dry-run", "--json"]);
    assert_eq!(preview.code, 0, "{}{}", preview.stdout, preview.stderr);
    let p = preview.json();
    assert_eq!((p["dry_run"].as_bool(), p["users"].as_u64()), (Some(true), Some(4)), "{p}");
    assert_eq!(p["fills"].as_array().unwrap().len(), 4 + 2, "4 card numbers, 2 credits (u0 has one): {p}");
    assert_eq!(env.user("u1")["card_number"], serde_json::Value::Null, "a preview changes nothing");
    assert_eq!(env.runs().len(), runs_before);

    let r = env.run(&["sync", "--backfill"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("6 values for 4 users"), "{}", r.stdout);
    assert_eq!(env.user("u1")["card_number"], "E1");
    assert_eq!(env.user("u1")["fields"]["credit"], "10.00");
    assert_eq!(env.user("u0")["fields"]["credit"], "5.00", "set by hand, kept");
    assert_eq!(env.user("u3")["fields"]["credit"], serde_json::Value::Null, "not a student");
    let runs = env.runs();
    assert_eq!((runs[0]["mode"].as_str(), runs[0]["status"].as_str()), (Some("backfill"), Some("ok")), "{}", runs[0]);
    let audited = env.store().audit_of(env.store().user_by_name("u1").unwrap().unwrap().id, 10).unwrap();
    assert!(audited.iter().any(|a| a.field.as_deref() == Some("card_number") && a.new.as_deref() == Some("E1")));
    // Nothing left to fill.
    let again = env.run(&["sync", "--backfill", "--json"]).json();
    assert_eq!(again["fills"].as_array().unwrap().len(), 0, "{again}");
}

/// SIGHUP, then waits until the service has said it reloaded `n` times.
fn reload(svc: &crate::serve::Service, n: usize) {
    std::process::Command::new("kill").args(["-HUP", &svc.child.id().to_string()]).status().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while svc.log().matches("configuration reloaded").count() < n {
        assert!(std::time::Instant::now() < deadline, "reloaded: {}", svc.log());
        std::thread::yield_now();
    }
}

#[test]
fn the_dashboard_says_why_a_source_failed_instead_of_a_change_count() {
    let slapd = crate::harness::Slapd::start();
    // Without write-back: a push after the apply would keep the run "running"
    // in the queue after its record is final, and a new ask would join it.
    let env = crate::page::page_env(&slapd);
    let svc = crate::serve::Service::start(&env);
    assert_eq!(svc.sync()["status"], "ok");
    // Every entry skipped: the source fails, and the dashboard says why.
    env.edit_config(|c| c.replace("username = \"uid\"", "username = \"uidd\""));
    reload(&svc, 1);
    assert_eq!(svc.sync()["status"], "failed");
    let mut b = crate::page::Browser::new(&svc.base);
    assert_eq!(b.sign_in("admin", crate::page::ADMIN_PASSWORD).status, 303);
    let page = b.get("/");
    assert!(page.body.contains("user entries were skipped"), "{}", page.body);
    // The backfill's preview, from the dashboard's button: nothing to fill
    // here, and nothing changed.
    assert!(page.body.contains("Fill in missing values"), "{}", page.body);
    let csrf = crate::page::Browser::csrf(&page);
    env.edit_config(|c| c.replace("username = \"uidd\"", "username = \"uid\""));
    reload(&svc, 2);
    let p = b.send("POST", "/ui/backfill", &[("csrf", &csrf)]);
    assert!(p.status == 200 && p.body.contains("Preview: nothing has been changed yet"), "{}", p.body);
    assert!(p.body.contains("0 values for 0 users"), "{}", p.body);
}

#[test]
fn a_first_read_that_returns_no_user_entry_says_so() {
    // The filter matches nothing (a misspelled object class).
    let env = env_with("username = \"uid\"\nfull_name = \"cn\"\n", &people(3));
    env.edit_config(|c| {
        c.replace("path = \"d.ldif\"", "path = \"d.ldif\"\nuser_filter = \"(objectClass=inetOrgPersn)\"")
    });
    let (code, out) = env.sync(&["--dry-run"]);
    assert_eq!(code, 0, "{out}");
    let notes = run_notes(&out);
    assert!(notes.iter().any(|n| n.contains("returned no user entry")), "{out}");
}

/// Runs `args` under a pseudo-terminal, answering each prompt that contains
/// `prompt` with a line from `answers`; returns everything the terminal showed.
fn on_a_terminal(args: &[&str], prompt: &str, answers: &[&str]) -> (i32, String) {
    let script = r#"
import os, pty, signal, sys
signal.alarm(30)  # a prompt never answered fails the test, never hangs it
argv, prompt, answers = sys.argv[1:-2], sys.argv[-2].encode(), sys.argv[-1].split("\n")
pid, fd = pty.fork()
if pid == 0:
    os.execv(argv[0], argv)
seen, shown = b"", 0
while True:
    try:
        chunk = os.read(fd, 1024)
    except OSError:
        break
    if not chunk:
        break
    seen += chunk
    if seen.count(prompt) > shown and answers:
        shown += 1
        os.write(fd, answers.pop(0).encode() + b"\n")
_, status = os.waitpid(pid, 0)
sys.stdout.write(seen.decode("utf-8", "replace"))
sys.exit(os.waitstatus_to_exitcode(status))
"#;
    let mut argv = vec![env!("CARGO_BIN_EXE_dirsync")];
    argv.extend_from_slice(args);
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(&argv)
        .arg(prompt)
        .arg(answers.join("\n"))
        .output()
        .expect("python3 runs");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn on_a_terminal_admin_password_asks_twice_without_echo() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("admin.hash");
    let secret = "terminal-secret-0123";
    let (code, shown) = on_a_terminal(&["admin-password", file.to_str().unwrap()], ": ", &[secret, secret]);
    assert_eq!(code, 0, "{shown}");
    assert!(!shown.contains(secret), "the password was echoed: {shown}");
    assert!(shown.contains("again"), "asked twice: {shown}");
    let hash = std::fs::read_to_string(&file).unwrap();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    // Two answers that differ write nothing.
    let other = dir.path().join("other.hash");
    let (code, shown) =
        on_a_terminal(&["admin-password", other.to_str().unwrap()], ": ", &[secret, "not-the-same-0123"]);
    assert_eq!(code, 2, "{shown}");
    assert!(shown.contains("differ") && !other.exists(), "{shown}");
}

#[test]
fn an_ldap_source_suggests_the_attribute_a_misspelled_mapping_meant() {
    // A read asks the server only for the mapped attributes: the suggestion
    // comes from one entry read with all of them.
    let slapd = crate::harness::Slapd::start();
    crate::serve::school(&slapd);
    let env = Env::ldap(&slapd, "", "");
    env.edit_config(|c| c.replace("email = \"mail\"", "email = \"mial\""));
    let (code, out) = env.sync(&["--dry-run"]);
    assert_eq!(code, 0, "{out}");
    let notes = run_notes(&out);
    let note = notes.iter().find(|n| n.contains("attribute mial")).unwrap_or_else(|| panic!("{out}"));
    assert!(note.contains("the entries have mail"), "{note}");
}
