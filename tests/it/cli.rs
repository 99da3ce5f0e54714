//! The command line: config errors, exit codes, init, check, the demo.

use crate::harness::*;

#[test]
fn config_errors_exit_2_and_name_file_and_key() {
    let slapd = Slapd::start();
    let env = Env::ldap(&slapd, "", "[safety]\non_missing = \"nuke\"\n");
    let r = env.run(&["sync"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    let cfg = env.config().display().to_string();
    assert!(
        r.stderr.contains(&format!("{cfg}: safety.on_missing: expected \"disable\", \"delete\" or \"keep\"")),
        "{}",
        r.stderr
    );

    env.write_config("[[sources]]\nname = \"x\"\ntype = \"ldap\"\nurl = \"ldap://h\"\nbase_dn = \"dc=x\"\nbind_dn = \"cn=a\"\nbind_password_file = \"missing.txt\"\n[sources.fields]\nusername = \"uid\"\nfull_name = \"cn\"\n");
    let r = env.run(&["check"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("sources[0].bind_password_file: cannot read") && r.stderr.contains("missing.txt"),
        "{}",
        r.stderr
    );

    let r = env.run(&["sync", "--no-such-flag"]);
    assert_eq!(r.code, 2, "usage errors exit 2");
    let r = env.command(&["users", "list"]).arg("--config").arg("/nonexistent/dirsync.toml").output().unwrap();
    assert_eq!(r.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&r.stderr).contains("/nonexistent/dirsync.toml: cannot read the config file"));
}

#[test]
fn init_writes_a_config_that_loads() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("dirsync.toml");
    let bin = env!("CARGO_BIN_EXE_dirsync");
    let run = |args: &[&str]| std::process::Command::new(bin).arg("--config").arg(&cfg).args(args).output().unwrap();
    assert_eq!(run(&["init"]).status.code(), Some(0));
    assert!(std::fs::read_to_string(&cfg).unwrap().contains("[[sources]]"));
    assert_eq!(run(&["init"]).status.code(), Some(2), "does not overwrite");
    std::fs::write(dir.path().join("secret.txt"), "pw\n").unwrap();
    // The example loads; its server is not there, so check fails with exit 1 (not a config error).
    let out = run(&["check"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("config") && stdout.contains(": ok"), "{stdout}");
    assert!(stdout.contains("source corp (ldap ldap://127.0.0.1:389 dc=example,dc=com): FAILED"), "{stdout}");
}

#[test]
fn check_counts_what_each_source_returns() {
    let slapd = Slapd::start();
    slapd.modify(&(person("a", "A A", "") + &person("b", "B B", "") + &group("g", &["uid=a"])));
    let env = Env::ldap(&slapd, "", "");
    let r = env.run(&["check"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("source corp (ldap ldap://127.0.0.1:") && r.stdout.contains("2 users, 1 groups"),
        "{}",
        r.stdout
    );
    assert!(!env.db().exists() || env.users().is_empty(), "check changes nothing");
}

#[test]
fn the_bundled_demo_syncs() {
    let dir = tempfile::tempdir().unwrap();
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for f in ["demo.toml", "demo.ldif"] {
        std::fs::copy(repo.join("examples").join(f), dir.path().join(f)).unwrap();
    }
    let bin = env!("CARGO_BIN_EXE_dirsync");
    let cfg = dir.path().join("demo.toml");
    let out = std::process::Command::new(bin).arg("-c").arg(&cfg).args(["sync", "--json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["created"], 15);
    let out = std::process::Command::new(bin)
        .arg("-c")
        .arg(&cfg)
        .args(["users", "list", "--json", "--group", "Students"])
        .output()
        .unwrap();
    let students: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let students = students.as_array().unwrap();
    assert_eq!(students.len(), 10, "Students holds two nested classes");
    assert!(students.iter().all(|s| s["fields"]["credit"] == "10.00"));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("entries ("), "no progress output when piped");

    // A broken export fails the run with the line number and changes nothing.
    let ldif = std::fs::read_to_string(dir.path().join("demo.ldif")).unwrap();
    let broken = ldif.replacen("uid: tlee", "uid:: !!not-base64", 1);
    std::fs::write(dir.path().join("demo.ldif"), broken).unwrap();
    let out = std::process::Command::new(bin).arg("-c").arg(&cfg).args(["sync", "--json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let msg = v["message"].as_str().unwrap();
    assert!(msg.contains("demo.ldif:") && msg.contains("bad base64"), "{msg}");
    let out = std::process::Command::new(bin).arg("-c").arg(&cfg).args(["users", "list", "--json"]).output().unwrap();
    let users: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(users.as_array().unwrap().iter().all(|u| u["status"] == "active"), "a failed source disabled users");
}

#[test]
fn every_example_config_loads() {
    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/examples");
    let programs = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/programs");
    for name in [
        "samba-winbind.toml",
        "samba-ad.toml",
        "azure-ad-ds.toml",
        "unix.toml",
        "program.toml",
        "entra.toml",
        "google.toml",
    ] {
        let dir = tempfile::tempdir().unwrap();
        // The files an example names, made here: a password, the programs
        // (under this folder instead of /opt/userdir); CAs are left out.
        std::fs::write(dir.path().join("bind-password.txt"), "x\n").unwrap();
        std::fs::write(dir.path().join("cards.csv"), "login,card\n").unwrap();
        std::fs::write(dir.path().join("graph.secret"), "x\n").unwrap();
        let key =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/cloud/test-key.pem")).unwrap();
        let sa = serde_json::json!({"client_email": "sa@p.iam.gserviceaccount.com", "private_key": key});
        std::fs::write(dir.path().join("sa.json"), sa.to_string()).unwrap();
        let userdir = dir.path().join("userdir");
        std::fs::create_dir(&userdir).unwrap();
        std::fs::copy(format!("{programs}/userdir.sh"), userdir.join("campus-users")).unwrap();
        std::fs::copy(format!("{programs}/auth.sh"), userdir.join("campus-auth")).unwrap();
        let text = std::fs::read_to_string(format!("{examples}/{name}")).unwrap();
        let text: String = text
            .lines()
            .filter(|l| !l.starts_with("ca_file"))
            .map(|l| l.replace("/opt/userdir", &userdir.display().to_string()) + "\n")
            .collect();
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        if let Err(e) = dirsync::config::Config::load(&path) {
            panic!("examples/{name} does not load: {e}");
        }
    }
}
