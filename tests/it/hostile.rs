//! Hostile input through the real binary: broken LDIF exports, look-alike
//! names, resource attacks, bad configs, damaged stores. Each test is named
//! after the promise it guards; the LDAP-server cases are in
//! `hostile_ldap.rs`.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::*;

/// A user entry with an entryUUID derived from its uid.
fn person_ldif(uid: &str, extra: &str) -> String {
    let n = uid.bytes().fold(0xcbf29ce484222325u64, |h, b| (h ^ b as u64).wrapping_mul(0x100000001b3));
    ldif_user(uid, &format!("00000000-0000-4000-8000-{:012x}", n & 0xffff_ffff_ffff), extra)
}

/// An LDIF source reading `dir.ldif`; `source_extra` goes into [[sources]],
/// `rest` after the fields.
fn ldif_env(ldif: &str, source_extra: &str, rest: &str) -> Env {
    let env = Env { dir: tempfile::tempdir().unwrap() };
    std::fs::write(env.dir.path().join("dir.ldif"), ldif).unwrap();
    env.write_config(&format!(
        "[store]\npath = \"dirsync.db\"\n\n[[sources]]\nname = \"file\"\ntype = \"ldif\"\npath = \"dir.ldif\"\n{source_extra}\n[sources.fields]\nusername = \"uid\"\nfull_name = \"cn\"\n{rest}\n"
    ));
    env
}

fn write_ldif(env: &Env, ldif: &str) {
    std::fs::write(env.dir.path().join("dir.ldif"), ldif).unwrap();
}

fn active(env: &Env) -> Vec<String> {
    let users = env.users();
    let mut v: Vec<String> =
        users.iter().filter(|u| u["status"] == "active").map(|u| u["username"].as_str().unwrap().to_string()).collect();
    v.sort();
    v
}

fn three() -> String {
    ["amy", "bob", "cat"].iter().map(|u| person_ldif(u, "\n")).collect()
}

#[test]
fn ldif_records_merged_by_a_missing_blank_line_fail_the_source_and_remove_nobody() {
    let env = ldif_env(&three(), "", "[safety]\non_missing = \"delete\"\nmax_delete_percent = 100\n");
    assert_eq!(env.sync(&[]).0, 0);
    // bob's record loses the blank line before it.
    let merged = three().replacen("\n\ndn: uid=bob", "\ndn: uid=bob", 1);
    write_ldif(&env, &merged);
    let (code, out) = env.sync(&[]);
    assert_eq!(code, 1, "{out}");
    let msg = out["message"].as_str().unwrap();
    assert!(msg.contains("dir.ldif:6:") && msg.contains("blank line"), "names file and line: {msg}");
    assert_eq!(active(&env), ["amy", "bob", "cat"]);
}

#[test]
fn bare_cr_line_endings_fail_the_source_instead_of_dropping_the_user() {
    let env = ldif_env(&three(), "", "");
    assert_eq!(env.sync(&[]).0, 0);
    let cr = three().replace(&person_ldif("cat", ""), &person_ldif("cat", "").replace('\n', "\r"));
    write_ldif(&env, &cr);
    let (code, out) = env.sync(&[]);
    assert_eq!(code, 1, "{out}");
    assert!(out["message"].as_str().unwrap().contains("carriage return"), "{out}");
    assert_eq!(active(&env), ["amy", "bob", "cat"]);
    // A file that is CR-only from top to bottom is not an empty file.
    write_ldif(&env, &three().replace('\n', "\r"));
    assert_eq!(env.sync(&[]).0, 1);
    assert_eq!(active(&env), ["amy", "bob", "cat"]);
}

#[test]
fn an_entry_skipped_for_a_missing_identity_keeps_its_user() {
    let data = |bob_id: bool| {
        let id = |n: &str| format!("employeeNumber: {n}\n\n");
        person_ldif("amy", &id("1"))
            + &person_ldif("bob", &if bob_id { id("2") } else { "\n".into() })
            + &person_ldif("cat", &id("3"))
    };
    let env = ldif_env(&data(true), "id_attribute = \"employeeNumber\"", "");
    assert_eq!(env.sync(&[]).0, 0);
    write_ldif(&env, &data(false));
    let (code, out) = env.sync(&[]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(count(&out, "skipped"), 1, "{out}");
    assert_eq!(count(&out, "disabled"), 0, "a skipped entry is not a missing one: {out}");
    assert_eq!(active(&env), ["amy", "bob", "cat"]);
}

#[test]
fn a_forced_group_deletion_counts_and_audits_every_membership() {
    let members: String = (0..30).map(|i| format!("member: uid=u{i},ou=people,dc=t\n")).collect();
    let users: String = (0..30).map(|i| person_ldif(&format!("u{i}"), "\n")).collect();
    let grp = format!("dn: cn=Staff,ou=groups,dc=t\nobjectClass: groupOfNames\ncn: Staff\nentryUUID: 99999999-0000-4000-8000-000000000001\n{members}\n");
    let env = ldif_env(&(users.clone() + &grp), "", "");
    let (code, out) = env.sync(&[]);
    assert_eq!((code, count(&out, "memberships_added")), (0, 30), "{out}");
    write_ldif(&env, &users);
    assert_eq!(env.sync(&[]).0, 3, "no groups returned: blocked unless forced");
    let (code, out) = env.sync(&["--force"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!((count(&out, "groups_deleted"), count(&out, "memberships_removed")), (1, 30), "{out}");
    let shown = env.run(&["users", "show", "u7"]).stdout;
    assert!(shown.contains("group_remove"), "audited: {shown}");
}

#[test]
fn ldif_resource_attacks_fail_fast_and_bounded() {
    let dir_env = ldif_env(&three(), "", "");
    let fifo = dir_env.dir.path().join("fifo");
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    std::os::unix::fs::symlink("/dev/zero", dir_env.dir.path().join("zero")).unwrap();
    let secret = dir_env.dir.path().parent().unwrap().join(format!("outside-{}", std::process::id()));
    std::fs::write(&secret, "Sup3r-S3cret-PW!\n").unwrap();
    for (value, why) in [
        ("jpegPhoto:< file:///dev/zero", "must name files in"),
        ("jpegPhoto:< file://zero", "must name files in"),
        ("jpegPhoto:< file://fifo", "not a regular file"),
        (&format!("description:< file://{}", secret.display()) as &str, "must name files in"),
    ] {
        write_ldif(&dir_env, &(three() + &person_ldif("evil", &format!("{value}\n\n"))));
        let t0 = Instant::now();
        let mut child = dir_env.command(&["sync", "--json"]).stdout(std::process::Stdio::piped()).spawn().unwrap();
        while child.try_wait().unwrap().is_none() {
            assert!(t0.elapsed() < Duration::from_secs(20), "{value}: still running after 20 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        let out = child.wait_with_output().unwrap();
        let json: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(out.status.code(), Some(1), "{value}: {json}");
        let msg = json["message"].as_str().unwrap();
        assert!(msg.contains(why) && !msg.contains("Sup3r"), "{value}: {msg}");
    }
    let _ = std::fs::remove_file(&secret);
    // A 10 MB DN is skipped, not stored.
    let huge = format!(
        "dn: uid=huge,{},dc=t\nobjectClass: inetOrgPerson\nuid: huge\ncn: H\nentryUUID: 1\n\n",
        "ou=x,".repeat(2_000_000)
    );
    write_ldif(&dir_env, &(three() + &huge));
    let (code, out) = dir_env.sync(&[]);
    assert_eq!(code, 0, "skipped, the rest goes on");
    let err = &out["errors"][0];
    assert!(err["reason"].as_str().unwrap().contains("longer than 4096"), "{err}");
    assert!(err["dn"].as_str().unwrap().len() < 300);
    assert!(!usernames(&dir_env.users()).contains(&"huge".to_string()));
}

#[test]
fn ldif_oddities_duplicate_dns_multivalued_rdns_and_versions() {
    let mut ldif = three();
    // A second entry with amy's DN and another identity: both skipped, amy kept.
    ldif += "dn: UID=amy,ou=people,dc=t\nobjectClass: inetOrgPerson\nuid: amy2\ncn: Twin\nentryUUID: twin\n\n";
    // A multi-valued RDN, named by a group in the other order.
    ldif += "dn: uid=mv+cn=M V,ou=people,dc=t\nobjectClass: inetOrgPerson\nuid: mv\ncn: M V\nentryUUID: mv-1\n\n";
    ldif += "dn: cn=G,ou=groups,dc=t\nobjectClass: groupOfNames\ncn: G\nentryUUID: g-1\nmember: cn=M V+uid=mv,ou=people,dc=t\n\n";
    let env = ldif_env(&three(), "", "");
    assert_eq!(env.sync(&[]).0, 0);
    write_ldif(&env, &ldif);
    let (code, out) = env.sync(&[]);
    assert_eq!(code, 0, "{out}");
    let reasons: Vec<&str> = out["errors"].as_array().unwrap().iter().map(|e| e["reason"].as_str().unwrap()).collect();
    assert_eq!(reasons.iter().filter(|r| r.contains("duplicate DN")).count(), 2, "{reasons:?}");
    assert_eq!(active(&env), ["amy", "bob", "cat", "mv"], "amy is protected by the skipped twin");
    assert_eq!(env.user("mv")["groups"], serde_json::json!(["G"]));
    write_ldif(&env, &format!("version: 2\n\n{}", three()));
    let (code, out) = env.sync(&[]);
    assert_eq!(code, 1);
    assert!(out["message"].as_str().unwrap().contains("dir.ldif:1: unsupported LDIF version"), "{out}");
}

#[test]
fn look_alike_usernames_are_one_user_or_refused() {
    let nfc = "jos\u{e9}";
    let nfd = "jose\u{301}";
    let base = three() + &person_ldif(nfc, "\n");
    let env = ldif_env(&base, "", "");
    assert_eq!(env.sync(&[]).0, 0);
    // The NFD spelling in another entry is the same name: the newcomer is the conflict.
    let mut ldif = base.clone();
    ldif += &person_ldif(nfd, "\n").replace("ou=people", "ou=guests");
    // An invisible character: refused as an invalid value.
    ldif += &person_ldif("alice\u{200b}", "\n");
    // A Kelvin sign: folds to "kate"... once kate exists.
    ldif += &person_ldif("kate", "mail: kate@t.org\n\n");
    write_ldif(&env, &ldif);
    let (code, out) = env.sync(&[]);
    assert_eq!(code, 0, "{out}");
    let errors = out["errors"].as_array().unwrap();
    let reason = |needle: &str| {
        errors.iter().find(|e| e["dn"].as_str().unwrap().contains(needle)).map(|e| e["reason"].to_string())
    };
    assert!(reason("ou=guests").unwrap().contains("already used by user jos"), "{errors:?}");
    assert!(reason("alice").unwrap().contains("invisible"), "{errors:?}");
    assert_eq!(active(&env), ["amy", "bob", "cat", "jos\u{e9}", "kate"]);
    // A crafted look-alike cannot freeze kate: she keeps syncing.
    let mut ldif2 = ldif.replace("cn: kate name", "cn: Kate Renamed");
    ldif2 += &person_ldif("\u{212a}ate", "\n").replace("ou=people", "ou=guests");
    write_ldif(&env, &ldif2);
    let (code, out) = env.sync(&[]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(env.user("kate")["full_name"], "Kate Renamed", "kate keeps syncing");
    assert_eq!(count(&out, "created"), 0, "{out}");
    assert!(out["errors"].to_string().contains("\u{212a}ate"), "the newcomer is reported: {out}");
}

#[test]
fn config_mistakes_are_load_errors_with_exit_2_naming_the_key() {
    let env = ldif_env(&three(), "", "");
    let ldap = |url: &str, extra: &str| {
        format!("[[sources]]\nname = \"c\"\ntype = \"ldap\"\nurl = \"{url}\"\nbase_dn = \"dc=t\"\n{extra}\n[sources.fields]\nusername = \"uid\"\nfull_name = \"cn\"\n")
    };
    std::fs::write(env.dir.path().join("notpem.crt"), "hello\n").unwrap();
    let deep = format!("{}(uid=a){}", "(!".repeat(10_000), ")".repeat(10_000));
    let cases: Vec<(String, &str)> = vec![
        (ldap("ldap://", ""), "sources[0].url"),
        (ldap("ldaps://", ""), "sources[0].url"),
        (ldap("ldap:///dc=x", ""), "sources[0].url"),
        (ldap("ldap://[::1", ""), "sources[0].url"),
        (ldap("ldap://h:99999", ""), "sources[0].url"),
        (ldap("ldap://h", "user_filter = \"(cn=a(b)\""), "sources[0].user_filter"),
        (ldap("ldap://h", &format!("user_filter = \"{deep}\"")), "sources[0].user_filter"),
        (ldap("ldaps://h", "ca_file = \"notpem.crt\""), "sources[0].ca_file"),
        (ldap("ldap://h", "bind_dn = \"cn=a\"\nbind_password = \"\""), "sources[0].bind_password"),
        (format!("[store]\npath = \"\"\n{}", ldap("ldap://h", "")), "store.path"),
        (format!("[store]\npath = \".\"\n{}", ldap("ldap://h", "")), "store.path"),
        (
            ldap("ldap://h", "") + "[sources.incremental]\nfull_every = \"18446744073709551615s2s\"\n",
            "sources[0].incremental.full_every",
        ),
    ];
    for (text, key) in cases {
        env.write_config(&text);
        for cmd in [&["check"][..], &["sync", "--dry-run"]] {
            let r = env.run(cmd);
            assert_eq!(r.code, 2, "{key} ({cmd:?}): {}", r.stderr);
            assert!(r.stderr.contains(key) && r.stderr.contains("dirsync.toml"), "{key}: {}", r.stderr);
            assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
        }
    }
}

#[test]
fn secrets_never_appear_in_errors_or_history() {
    const PW: &str = "Sup3r-S3cret-PW!";
    let env = ldif_env(&three(), "", "");
    std::fs::write(env.dir.path().join("pw.txt"), format!("{PW}\n")).unwrap();
    let ldap = |pw_line: &str| {
        format!("[[sources]]\nname = \"c\"\ntype = \"ldap\"\nurl = \"ldap://127.0.0.1:9\"\nbase_dn = \"dc=t\"\nbind_dn = \"cn=a\"\n{pw_line}\n[sources.fields]\nusername = \"uid\"\nfull_name = \"cn\"\n")
    };
    for line in [format!("bind_password = {PW}"), format!("bind_password = \"{PW}"), "bind_password = 31415926".into()]
    {
        env.write_config(&ldap(&line));
        let r = env.run(&["sync", "--json"]);
        assert_eq!(r.code, 2, "{}", r.stderr);
        assert!(!r.stderr.contains(PW) && !r.stderr.contains("31415926") && !r.stdout.contains(PW), "{}", r.stderr);
    }
    // --config pointing at the password file.
    let r = std::process::Command::new(env!("CARGO_BIN_EXE_dirsync"))
        .arg("--config")
        .arg(env.dir.path().join("pw.txt"))
        .arg("check")
        .env("DIRSYNC_LOG", "warn")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(2), "{stderr}");
    assert!(!stderr.contains(PW), "{stderr}");
    // The LDIF path pointing at the password file: the run fails, and neither
    // the error, the JSON nor the history quote the file.
    let env = ldif_env(&three(), "", "");
    std::fs::write(env.dir.path().join("dir.ldif"), format!("{PW}\n")).unwrap();
    let r = env.run(&["sync", "--json"]);
    assert_eq!(r.code, 1);
    assert!(!r.stdout.contains(PW) && !r.stderr.contains(PW), "{}", r.stdout);
    let runs = env.run(&["runs", "--json"]);
    assert!(!runs.stdout.contains(PW) && runs.stdout.contains("failed"), "{}", runs.stdout);
}

#[test]
fn damaged_and_unusable_stores_are_named_and_never_reinitialised() {
    let env = ldif_env(&three(), "", "");
    // A 0-byte store is not a new store.
    std::fs::write(env.db(), b"").unwrap();
    let (code, out) = env.sync(&[]);
    assert_eq!(code, 1, "{out}");
    assert!(out["message"].as_str().unwrap().contains("0 bytes"), "{out}");
    assert_eq!(std::fs::metadata(env.db()).unwrap().len(), 0, "left as it was");
    // Garbage and a truncated store: sync --json still answers with one object.
    std::fs::write(env.db(), vec![0x5au8; 8192]).unwrap();
    let (code, out) = env.sync(&[]);
    assert_eq!((code, out["status"].as_str()), (1, Some("failed")), "{out}");
    assert!(out["message"].as_str().unwrap().contains("not a dirsync store"), "{out}");
    // A store whose folder is a file.
    std::fs::remove_file(env.db()).unwrap();
    env.edit_config(|c| c.replace("path = \"dirsync.db\"", "path = \"dir.ldif/x.db\""));
    let (code, out) = env.sync(&[]);
    assert_eq!((code, out["status"].as_str()), (1, Some("failed")), "{out}");
    env.edit_config(|c| c.replace("path = \"dir.ldif/x.db\"", "path = \"dirsync.db\""));
    // A store damaged in the middle: `check` says so.
    let many: String = (0..3000).map(|i| person_ldif(&format!("user{i}"), "\n")).collect();
    write_ldif(&env, &many);
    assert_eq!(env.sync(&[]).0, 0);
    let mut bytes = std::fs::read(env.db()).unwrap();
    assert!(bytes.len() > 200_000, "{}", bytes.len());
    let mid = bytes.len() / 2;
    let mut x: u32 = 12345;
    for b in &mut bytes[mid..mid + 65536] {
        x = x.wrapping_mul(1103515245).wrapping_add(12345);
        *b = (x >> 16) as u8;
    }
    std::fs::write(env.db(), &bytes).unwrap();
    let r = env.run(&["check"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(r.stdout.contains("store: FAILED") && r.stdout.contains("damaged"), "{}", r.stdout);
}

#[test]
fn a_refused_run_is_in_the_history_and_a_dry_run_creates_nothing() {
    let env = ldif_env(&three(), "", "");
    env.edit_config(|c| c.replace("path = \"dirsync.db\"", "path = \"state/deep/dirsync.db\""));
    let (code, out) = env.sync(&["--dry-run"]);
    assert_eq!((code, count(&out, "created")), (0, 3), "{out}");
    assert!(!env.dir.path().join("state").exists(), "a dry run creates no folder and no file");
    assert_eq!(env.sync(&[]).0, 0);
    let lock = std::fs::File::options().write(true).open(env.dir.path().join("state/deep/dirsync.db.lock")).unwrap();
    lock.lock().unwrap();
    let (code, out) = env.sync(&[]);
    assert_eq!(code, 1, "{out}");
    drop(lock);
    let runs = env.runs();
    assert_eq!(runs[0]["status"], "failed", "{runs:?}");
    assert!(runs[0]["message"].as_str().unwrap().contains("another sync is running"), "{runs:?}");
}
