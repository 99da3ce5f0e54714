//! The PostgreSQL store from the command line: `dirsync migrate`, a store
//! newer than the binary refused on both stores, `store copy` from SQLite
//! into PostgreSQL and back with the same users, runs and change feed, and
//! the database password kept out of every output.

use crate::harness::*;
use dirsync::store::postgres::testing::{fresh_database, psql};

fn ldif(users: &[&str]) -> String {
    users.iter().enumerate().map(|(i, u)| ldif_user(u, &format!("id{i}"), "")).collect::<Vec<_>>().join("\n")
}

const SOURCE: &str = "[[sources]]\nname = \"file\"\ntype = \"ldif\"\npath = \"d.ldif\"\n[sources.fields]\nusername = \"uid\"\nfull_name = \"cn\"\n";

/// A folder with an LDIF source and the store `store` (a `[store]` body).
fn env_with(store: &str) -> Env {
    let env = Env { dir: tempfile::tempdir().unwrap() };
    std::fs::write(env.dir.path().join("d.ldif"), ldif(&["amy", "bob", "cyd"])).unwrap();
    std::fs::write(env.dir.path().join("dirsync.toml"), format!("[store]\n{store}\n{SOURCE}")).unwrap();
    env
}

/// `[store]` keys for a fresh database, its password in a file.
fn pg_store(env_dir: &std::path::Path) -> (String, String) {
    let cfg = fresh_database();
    let mut url = url::Url::parse(&cfg.url).unwrap();
    let password = url.password().unwrap().to_string();
    url.set_password(None).unwrap();
    std::fs::write(env_dir.join("pg.secret"), format!("{password}\n")).unwrap();
    (format!("url = \"{url}\"\npassword_file = \"pg.secret\"\npool_size = 2"), cfg.url)
}

#[test]
fn migrate_brings_either_store_to_this_builds_schema_and_says_so() {
    let env = env_with("path = \"dirsync.db\"");
    let r = env.run(&["migrate"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("schema version 0 → "), "{}", r.stdout);
    assert!(env.run(&["migrate"]).stdout.contains("up to date"));
    let env = Env { dir: tempfile::tempdir().unwrap() };
    let (store, _) = pg_store(env.dir.path());
    std::fs::write(env.dir.path().join("d.ldif"), ldif(&["amy"])).unwrap();
    std::fs::write(env.config(), format!("[store]\n{store}\n{SOURCE}")).unwrap();
    let r = env.run(&["migrate"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("schema version 0 → ") && r.stdout.contains("postgres://"), "{}", r.stdout);
    assert!(env.run(&["migrate"]).stdout.contains("up to date"));
}

#[test]
fn a_store_newer_than_the_binary_is_refused_with_exit_2_on_both_stores() {
    let env = env_with("path = \"dirsync.db\"");
    assert_eq!(env.sync(&[]).0, 0);
    rusqlite::Connection::open(env.db()).unwrap().execute_batch("PRAGMA user_version = 99").unwrap();
    for args in [&["users", "list"][..], &["sync"], &["migrate"]] {
        let r = env.run(args);
        assert_eq!(r.code, 2, "{args:?}: {}", r.stderr);
        assert!(
            r.stderr.contains("schema version 99 is newer") && r.stderr.contains("upgrade dirsync"),
            "{}",
            r.stderr
        );
    }
    let env = Env { dir: tempfile::tempdir().unwrap() };
    let (store, admin_url) = pg_store(env.dir.path());
    std::fs::write(env.dir.path().join("d.ldif"), ldif(&["amy"])).unwrap();
    std::fs::write(env.config(), format!("[store]\n{store}\n{SOURCE}")).unwrap();
    assert_eq!(env.sync(&[]).0, 0);
    psql(&admin_url, "UPDATE dirsync_schema SET version = 99");
    for args in [&["users", "list"][..], &["sync"], &["migrate"]] {
        let r = env.run(args);
        assert_eq!(r.code, 2, "{args:?}: {}", r.stderr);
        assert!(r.stderr.contains("schema version 99 is newer"), "{}", r.stderr);
    }
}

#[test]
fn store_copy_moves_a_deployment_to_postgresql_with_its_history_and_never_shows_the_password() {
    let env = env_with("path = \"dirsync.db\"");
    assert_eq!(env.sync(&[]).0, 0);
    std::fs::write(env.dir.path().join("d.ldif"), ldif(&["amy", "bob", "cyd", "dan"])).unwrap();
    assert_eq!(env.sync(&[]).0, 0);
    let (users, runs, feed) = (env.users(), env.runs(), env.store().changes(0, 1000).unwrap().len());
    // The destination's config: its password comes from password_file.
    let (store, admin_url) = pg_store(env.dir.path());
    let password = url::Url::parse(&admin_url).unwrap().password().unwrap().to_string();
    let pg_toml = env.dir.path().join("pg.toml");
    std::fs::write(&pg_toml, format!("[store]\n{store}\n{SOURCE}")).unwrap();
    let to = store.split('"').nth(1).unwrap().to_string();
    let copy = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_dirsync"))
            .arg("--config")
            .arg(&pg_toml)
            .args(["store", "copy", "--from"])
            .arg(env.db())
            .args(["--to", &to])
            .output()
            .unwrap()
    };
    let out = copy();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("row counts match") && stdout.contains("audit"), "{stdout}");
    assert!(!stdout.contains(&password) && !stderr.contains(&password));
    // The same users, runs and change feed, read from PostgreSQL.
    let pg = Env { dir: tempfile::tempdir().unwrap() };
    std::fs::copy(env.dir.path().join("pg.secret"), pg.dir.path().join("pg.secret")).unwrap();
    std::fs::copy(env.dir.path().join("d.ldif"), pg.dir.path().join("d.ldif")).unwrap();
    std::fs::copy(&pg_toml, pg.config()).unwrap();
    assert_eq!(pg.users(), users);
    assert_eq!(pg.runs(), runs);
    assert_eq!(pg.store().changes(0, 1000).unwrap().len(), feed);
    // And it goes on from there: a sync finds nothing to change.
    let (code, out) = pg.sync(&[]);
    assert_eq!((code, count(&out, "created"), count(&out, "updated")), (0, 0, 0), "{out}");
    // A second copy into the now-filled store is refused, nothing lost.
    let again = copy();
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("empty store"));
    assert_eq!(pg.users(), users);
}

#[test]
fn a_password_inside_a_url_is_never_echoed() {
    let env = env_with("url = \"postgres://dirsync:s3cr3t-in-url@127.0.0.1:1/nodb\"");
    for args in [&["users", "list"][..], &["sync"], &["migrate"], &["check"]] {
        let r = env.run(args);
        assert_ne!(r.code, 0, "{args:?}");
        assert!(!r.stdout.contains("s3cr3t") && !r.stderr.contains("s3cr3t"), "{args:?}: {}{}", r.stdout, r.stderr);
        let said = format!("{}{}", r.stdout, r.stderr);
        assert!(
            said.contains("postgres://dirsync@127.0.0.1:1/nodb") && said.contains("cannot reach"),
            "{args:?}: {said}"
        );
    }
    let r = env.run(&["store", "copy", "--from", "x.db", "--to", "postgres://u:s3cr3t-in-url@127.0.0.1:1/d"]);
    assert!(!r.stderr.contains("s3cr3t"), "{}", r.stderr);
}

#[test]
fn store_config_mistakes_name_the_key() {
    for (store, key, says) in [
        ("url = \"mysql://h/d\"", "store.url", "PostgreSQL URL"),
        ("url = \"postgres://h/d\"\npath = \"x.db\"", "store.path", "not both"),
        ("url = \"postgres://h/d\"\npool_size = 0", "store.pool_size", "from 2 to 1000"),
        ("url = \"postgres://h/d\"\npool_size = 1", "store.pool_size", "write session holds one"),
        ("url = \"postgres://h/d?sslmode=require\"", "store.ca_file", "asks for TLS"),
        ("url = \"postgres://h/d\"\nca_file = \"nope.pem\"", "store.ca_file", "not a readable file"),
        ("path = \"x.db\"\npool_size = 3", "store.pool_size", "is not used by a SQLite store"),
        ("url = \"postgres://h/d\"\npassword = \"lit3ral\"\npassword_file = \"f\"", "store.password", ""),
    ] {
        let env = env_with(store);
        let r = env.run(&["check"]);
        assert_eq!(r.code, 2, "{store}: {}", r.stderr);
        assert!(r.stderr.contains(key) && r.stderr.contains(says), "{store}: {}", r.stderr);
        assert!(!r.stderr.contains("lit3ral"), "{}", r.stderr);
    }
}

#[test]
fn tls_with_ca_file_verifies_the_server_and_refuses_another_ca() {
    let pg = PgCluster::start(&[("TLS", "1")]);
    let env = env_with("path = \"unused.db\"");
    std::fs::write(env.dir.path().join("pg.secret"), "secret\n").unwrap();
    std::fs::copy(pg.ca(), env.dir.path().join("ca.pem")).unwrap();
    let store = format!(
        "url = \"postgres://postgres@localhost:{}/postgres\"\npassword_file = \"pg.secret\"\nca_file = \"ca.pem\"",
        pg.port
    );
    std::fs::write(env.config(), format!("[store]\n{store}\n{SOURCE}")).unwrap();
    let (code, out) = env.sync(&[]);
    assert_eq!((code, count(&out, "created")), (0, 3), "{out}");
    // The server takes TLS connections only: without ca_file dirsync does
    // not encrypt and is refused.
    std::fs::write(env.config(), format!("[store]\n{}\n{SOURCE}", store.replace("ca_file = \"ca.pem\"", ""))).unwrap();
    let r = env.run(&["users", "list"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("no encryption") || r.stderr.contains("pg_hba"), "{}", r.stderr);
    // Another CA (a certificate the server's is not signed by) is refused.
    let other = env.dir.path().join("other.pem");
    let made = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"])
        .args(["-subj", "/CN=another CA", "-keyout"])
        .arg(env.dir.path().join("other.key"))
        .arg("-out")
        .arg(&other)
        .output()
        .unwrap();
    assert!(made.status.success());
    std::fs::write(env.config(), format!("[store]\n{}\n{SOURCE}", store.replace("ca.pem", "other.pem"))).unwrap();
    let r = env.run(&["users", "list"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("cannot reach the database") || r.stderr.contains("certificate"), "{}", r.stderr);
}
