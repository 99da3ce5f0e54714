//! The Unix source (`type = "unix"`): fixture passwd/group files with every
//! malformed case, the uid range and login shells, the primary group, a
//! malformed line that protects its user, and `nss = true` against the
//! machine's real NSS with accounts this test creates and removes.

use std::path::Path;
use std::process::Command;

use crate::harness::*;
use crate::program::user_field;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/unix");

pub fn unix_env(extra: &str) -> Env {
    let env = Env { dir: tempfile::tempdir().unwrap() };
    for f in ["passwd", "group"] {
        std::fs::copy(Path::new(FIXTURES).join(f), env.dir.path().join(f)).unwrap();
    }
    env.write_config(&format!(
        "[store]\npath = \"dirsync.db\"\n\n[[sources]]\nname = \"local\"\ntype = \"unix\"\npasswd_file = \"passwd\"\ngroup_file = \"group\"\n{extra}\n"
    ));
    env
}

fn groups_of(env: &Env, u: &str) -> Vec<String> {
    env.user(u)["groups"].as_array().unwrap().iter().map(|g| g.as_str().unwrap().to_string()).collect()
}

#[test]
fn passwd_and_group_files_sync_accounts_in_range_with_a_login_shell() {
    let env = unix_env("");
    let (code, out) = env.sync(&[]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(usernames(&env.users()), ["ada", "bob", "zoë"]);
    assert_eq!(user_field(&env, "ada", "full_name"), "Ada Lovelace", "the first GECOS field");
    assert_eq!(user_field(&env, "ada", "office"), "Room 12");
    assert_eq!(env.user("ada")["external_id"], "1001", "the uid number is the identity");
    assert_eq!(groups_of(&env, "bob"), ["staff", "users"], "the primary group counts");
    assert_eq!(groups_of(&env, "ada"), ["ada", "staff"]);
    assert_eq!(groups_of(&env, "zoë"), ["students"]);
    let errors = out["errors"].to_string();
    for (line, why) in [
        (8, "expected 7 fields separated by ':', found 6"),
        (9, "the uid (field 3) is not a number"),
        (10, "the username (field 1) is empty"),
    ] {
        assert!(errors.contains(&format!("passwd:{line}")) && errors.contains(why), "line {line}: {errors}");
    }
    assert!(errors.contains("group:6") && errors.contains("gid (field 3) is not a number"), "{errors}");
    assert!(errors.contains("group:7") && errors.contains("expected 4 fields"), "{errors}");
    assert_eq!(out["errors"].as_array().unwrap().len(), 5, "{errors}");
}

#[test]
fn include_nologin_and_id_username_change_what_is_read() {
    let env = unix_env("include_nologin = true\nid = \"username\"\nmin_uid = 1001\nmax_uid = 1004");
    assert_eq!(env.sync(&[]).0, 0);
    assert_eq!(usernames(&env.users()), ["ada", "bob", "locked", "svc"]);
    assert_eq!(env.user("svc")["external_id"], "svc");
}

#[test]
fn a_line_that_turns_malformed_protects_its_user() {
    let env = unix_env("");
    assert_eq!(env.sync(&[]).0, 0);
    let passwd = env.dir.path().join("passwd");
    let text = std::fs::read_to_string(&passwd).unwrap();
    std::fs::write(&passwd, text.replace("bob:x:1002:100:Bob Builder:", "bob:x:1002:100:Bob Builder:extra:")).unwrap();
    let (code, out) = env.sync(&[]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(count(&out, "disabled"), 0, "a skipped entry is never a missing one: {out}");
    assert_eq!(env.user("bob")["status"], "active");
    // A file that cannot be read fails the run: nobody removed.
    std::fs::remove_file(&passwd).unwrap();
    let (code, out) = env.sync(&[]);
    assert_eq!(code, 1);
    assert!(out["message"].as_str().unwrap().contains("cannot read"), "{out}");
    assert_eq!(env.users().iter().filter(|u| u["status"] == "active").count(), 3);
}

/// Accounts created for the test with useradd/groupadd, removed on drop.
struct Accounts {
    users: Vec<String>,
    group: String,
}

impl Drop for Accounts {
    fn drop(&mut self) {
        for u in &self.users {
            let _ = as_root("userdel", &[u]).status();
        }
        let _ = as_root("groupdel", &[&self.group]).status();
    }
}

/// `cmd args`, through `sudo -n` when this process is not root (as the test
/// command installs packages).
fn as_root(cmd: &str, args: &[&str]) -> Command {
    // SAFETY: geteuid has no preconditions and touches no memory.
    let root = unsafe { libc::geteuid() } == 0;
    let mut c = Command::new(if root { cmd } else { "sudo" });
    if !root {
        c.args(["-n", cmd]);
    }
    c.args(args);
    c
}

fn run(cmd: &str, args: &[&str]) {
    let st = as_root(cmd, args)
        .status()
        .unwrap_or_else(|e| panic!("{cmd}: {e} (the test needs root or sudo, and the passwd package)"));
    assert!(st.success(), "{cmd} {args:?} failed (the test needs root or sudo)");
}

fn uid_of(user: &str) -> u32 {
    let out = Command::new("id").args(["-u", user]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

#[test]
fn nss_reads_accounts_the_machine_knows_through_getent() {
    let prefix = format!("dsx{}", std::process::id());
    let group = format!("{prefix}g");
    let accounts = Accounts { users: vec![format!("{prefix}a"), format!("{prefix}b")], group: group.clone() };
    run("groupadd", &[&group]);
    run("useradd", &["-M", "-s", "/bin/bash", "-c", "Nss Ada,,,", "-G", &group, &accounts.users[0]]);
    run("useradd", &["-M", "-s", "/usr/sbin/nologin", "-c", "Nss Service", &accounts.users[1]]);
    let (a, b) = (uid_of(&accounts.users[0]), uid_of(&accounts.users[1]));
    let env = Env { dir: tempfile::tempdir().unwrap() };
    env.write_config(&format!(
        "[store]\npath = \"dirsync.db\"\n\n[[sources]]\nname = \"nss\"\ntype = \"unix\"\nnss = true\nmin_uid = {}\nmax_uid = {}\n",
        a.min(b),
        a.max(b)
    ));
    let (code, out) = env.sync(&[]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(usernames(&env.users()), [accounts.users[0].clone()], "the nologin account is left out");
    assert_eq!(user_field(&env, &accounts.users[0], "full_name"), "Nss Ada");
    assert!(groups_of(&env, &accounts.users[0]).contains(&group), "{:?}", groups_of(&env, &accounts.users[0]));
    // The account is deleted from the machine: it is disabled here.
    as_root("userdel", &[&accounts.users[0]]).status().unwrap();
    let (code, out) = env.sync(&["--force"]);
    assert_eq!(code, 3, "the only user gone is an emptied source: blocked even with --force: {out}");
    drop(accounts);
}
