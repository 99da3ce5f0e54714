//! 389 Directory Server (Debian's 389-ds-base), started by
//! scripts/389ds-test-server.sh in a temp dir on a free port: full reads,
//! `nsAccountLock`, and RFC 4533 that dirsync must not trust (389 DS ties
//! cookies to filters, sends nsUniqueIds as sync UUIDs and says
//! refreshDeletes=FALSE after listing deletions): every run is a quiet full
//! read, and nobody is removed who is still there.

use std::path::PathBuf;
use std::process::Command;

use crate::harness::*;

const SUFFIX389: &str = "dc=example,dc=com";
const ROOT: &str = "cn=Directory Manager";

struct Ds389 {
    dir: tempfile::TempDir,
    base: PathBuf,
    port: u16,
}

impl Ds389 {
    fn start() -> Ds389 {
        let dir = tempfile::tempdir().unwrap();
        for attempt in 0..3 {
            let port = free_port();
            let base = dir.path().join(format!("ds{attempt}"));
            let out = Command::new("bash")
                .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/389ds-test-server.sh"))
                .env("BASE", &base)
                .env("PORT", port.to_string())
                .output()
                .expect("bash runs");
            if out.status.success() {
                return Ds389 { dir, base, port };
            }
            eprintln!("389 DS start attempt {attempt} failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        panic!("389 Directory Server did not start (the test command installs 389-ds-base)");
    }

    fn url(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.port)
    }

    fn modify(&self, ldif: &str) {
        ldapmodify(&self.url(), ROOT, "secret", ldif);
    }
}

impl Drop for Ds389 {
    fn drop(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(self.base.join("pid")) {
            let _ = Command::new("kill").arg(pid.trim()).status();
            for _ in 0..100 {
                if !Command::new("kill").args(["-0", pid.trim()]).status().is_ok_and(|s| s.success()) {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
        }
        let _ = &self.dir;
    }
}

fn user(uid: &str, extra: &str) -> String {
    format!("dn: uid={uid},ou=people,{SUFFIX389}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: User {uid}\nsn: {uid}\n{extra}\n")
}

fn status_of(env: &Env) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = env
        .users()
        .iter()
        .map(|u| (u["username"].as_str().unwrap().to_string(), u["status"].as_str().unwrap().to_string()))
        .collect();
    v.sort();
    v
}

#[test]
fn ds389_full_reads_lock_flags_and_no_removal_from_untrusted_sync_answers() {
    let ds = Ds389::start();
    let mut ldif = String::new();
    for i in 0..5 {
        ldif += &user(&format!("p{i}"), if i == 4 { "nsAccountLock: true\n" } else { "" });
    }
    ldif += &format!("dn: cn=Staff,ou=groups,{SUFFIX389}\nobjectClass: groupOfNames\ncn: Staff\nmember: uid=p0,ou=people,{SUFFIX389}\nmember: uid=p1,ou=people,{SUFFIX389}\n\n");
    ds.modify(&ldif);
    let env = Env::ldap_at(&ds.url(), "", "[safety]\nmax_delete_percent = 100\n");
    env.edit_config(|c| {
        c.replace("cn=admin,dc=example,dc=com", ROOT)
            .replace("email = \"mail\"\n", "")
            .replace("card_number = { attribute = \"employeeNumber\", on = [\"create\"] }\n", "")
    });
    let (code, out) = env.sync(&[]);
    assert_eq!(code, 0, "{out}");
    assert_eq!((count(&out, "created"), count(&out, "groups_created")), (4, 1), "the locked p4 is not imported: {out}");
    assert_eq!(env.user("p0")["groups"], serde_json::json!(["Staff"]));

    // Again, with changes: a quiet full read (no cookie warnings), exact results.
    ds.modify(&format!(
        "dn: uid=p1,ou=people,{SUFFIX389}\nchangetype: modify\nreplace: nsAccountLock\nnsAccountLock: true\n\ndn: uid=p2,ou=people,{SUFFIX389}\nchangetype: delete\n\ndn: uid=p3,ou=people,{SUFFIX389}\nchangetype: modify\nreplace: cn\ncn: Renamed Three\n"
    ));
    for round in 0..2 {
        let r = env.run(&["sync", "--json"]);
        assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
        let out = r.json();
        assert_eq!(out["mode"], "full", "round {round}: {out}");
        assert!(!r.stderr.contains("WARN") && !r.stderr.to_lowercase().contains("cookie"), "quiet: {}", r.stderr);
        if round == 0 {
            assert_eq!((count(&out, "disabled"), count(&out, "updated")), (2, 1), "{out}");
        } else {
            assert_eq!(out["plan"], serde_json::Value::Null, "{out}");
            assert_eq!(
                (count(&out, "disabled"), count(&out, "unchanged")),
                (0, 3),
                "nothing more (p1 is read, disabled): {out}"
            );
        }
    }
    let want: Vec<(String, String)> = [("p0", "active"), ("p1", "disabled"), ("p2", "disabled"), ("p3", "active")]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    assert_eq!(status_of(&env), want);
    assert_eq!(env.user("p3")["full_name"], "Renamed Three");
    // Unlocked in the directory: enabled again.
    ds.modify(&format!("dn: uid=p1,ou=people,{SUFFIX389}\nchangetype: modify\ndelete: nsAccountLock\n"));
    assert_eq!(env.sync(&[]).0, 0);
    assert_eq!(env.user("p1")["status"], "active");
}

#[test]
fn ds389_persistent_search_brings_changes_without_a_scheduled_run() {
    use crate::live::{runs, wait_state, wait_user, LIVE};
    use crate::serve::{server_section, Service};
    let ds = Ds389::start();
    let mut ldif = String::new();
    for i in 0..3 {
        ldif += &user(&format!("q{i}"), "");
    }
    ds.modify(&ldif);
    let env = Env::ldap_at(&ds.url(), LIVE, "[safety]\nmax_delete_percent = 100\n");
    env.edit_config(|c| {
        c.replace("cn=admin,dc=example,dc=com", ROOT)
            .replace("email = \"mail\"\n", "")
            .replace("card_number = { attribute = \"employeeNumber\", on = [\"create\"] }\n", "")
    });
    let server = server_section(&env, "");
    env.edit_config(|c| format!("{c}\n{server}"));
    let svc = Service::start(&env);
    let live = wait_state(&svc, "live", 30);
    assert_eq!(live["channel"], "persistent search", "{live}");
    wait_user(&svc, "q2", "synced", |u| u["status"] == "active");
    ds.modify(&user("q3", ""));
    wait_user(&svc, "q3", "created", |u| u["status"] == "active");
    ds.modify(&format!("dn: uid=q0,ou=people,{SUFFIX389}\nchangetype: modify\nreplace: cn\ncn: Renamed Zero\n"));
    wait_user(&svc, "q0", "updated", |u| u["full_name"] == "Renamed Zero");
    ds.modify(&format!(
        "dn: uid=q1,ou=people,{SUFFIX389}\nchangetype: modify\nreplace: nsAccountLock\nnsAccountLock: true\n"
    ));
    wait_user(&svc, "q1", "disabled (locked)", |u| u["status"] == "disabled");
    ds.modify(&format!("dn: uid=q2,ou=people,{SUFFIX389}\nchangetype: delete\n"));
    wait_user(&svc, "q2", "disabled (deleted)", |u| u["status"] == "disabled");
    ds.modify(&format!("dn: cn=Crew,ou=groups,{SUFFIX389}\nobjectClass: groupOfNames\ncn: Crew\nmember: uid=q3,ou=people,{SUFFIX389}\n"));
    wait_user(&svc, "q3", "in Crew", |u| u["groups"] == serde_json::json!(["Crew"]));
    ds.modify(&format!(
        "dn: cn=Crew,ou=groups,{SUFFIX389}\nchangetype: modify\nadd: member\nmember: uid=q0,ou=people,{SUFFIX389}\n"
    ));
    wait_user(&svc, "q0", "in Crew", |u| u["groups"] == serde_json::json!(["Crew"]));
    let all = runs(&svc);
    assert!(all.iter().all(|r| r["trigger"] == "live"), "{all:#?}");
    // After the first (full) read, each change is a partial run of the
    // entries the persistent search named.
    let partial = all.iter().filter(|r| r["mode"] == "live").count();
    assert!(partial >= 5, "{partial} live runs: {all:#?}");
    // The nightly full read finds nothing the live runs missed.
    let (code, out) = env.sync(&["--full"]);
    assert_eq!(code, 0, "{out}");
    for k in ["created", "updated", "renamed", "disabled", "deleted", "memberships_added", "memberships_removed"] {
        assert_eq!(count(&out, k), 0, "{k}: {out}");
    }
}
