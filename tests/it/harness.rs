//! Test harness: real slapd servers on loopback (started by
//! scripts/slapd-test-server.sh in a temp dir, on free ports, stopped on
//! drop), dirsync config folders, the real binary, and a TCP proxy that cuts
//! connections to simulate a server dying mid-search.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

pub const SUFFIX: &str = "dc=example,dc=com";
pub const ADMIN: &str = "cn=admin,dc=example,dc=com";
pub const PASSWORD: &str = "secret";

/// Whether this run's end-to-end tests use PostgreSQL (`DIRSYNC_TEST_STORE=postgres`).
pub fn on_postgres() -> bool {
    std::env::var("DIRSYNC_TEST_STORE").is_ok_and(|v| v == "postgres")
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A running slapd.
pub struct Slapd {
    pub dir: TempDir,
    pub port: u16,
    pub tls_port: u16,
}

impl Slapd {
    pub fn start() -> Slapd {
        Slapd::start_with(None, "")
    }

    /// `data`: an LDIF bulk-loaded before start (must include the suffix);
    /// `extra`: more olc* lines for the database config.
    pub fn start_with(data: Option<&Path>, extra: &str) -> Slapd {
        Slapd::start_opts(data, extra, false)
    }

    /// A server without the syncprov module: no RFC 4533 at all.
    pub fn start_without_syncprov() -> Slapd {
        Slapd::start_opts(None, "", true)
    }

    fn start_opts(data: Option<&Path>, extra: &str, no_syncprov: bool) -> Slapd {
        let dir = tempfile::tempdir().unwrap();
        for attempt in 0..5 {
            let (port, tls_port) = (free_port(), free_port());
            let mut cmd = Command::new("bash");
            cmd.arg(repo().join("scripts/slapd-test-server.sh"))
                .env("BASE", dir.path().join(format!("slapd{attempt}")))
                .env("PORT", port.to_string())
                .env("TLSPORT", tls_port.to_string())
                .env("EXTRA_DB_CONFIG", extra);
            if no_syncprov {
                cmd.env("NO_SYNCPROV", "1");
            }
            if let Some(d) = data {
                cmd.env("DATA_LDIF", d);
            }
            let out = cmd.output().expect("bash runs");
            if out.status.success() {
                let s = Slapd { dir, port, tls_port };
                std::fs::write(s.dir.path().join("current"), format!("slapd{attempt}")).unwrap();
                return s;
            }
            eprintln!("slapd start attempt {attempt} failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        panic!("slapd did not start (is it installed? the test command installs slapd and ldap-utils)");
    }

    fn base(&self) -> PathBuf {
        let cur = std::fs::read_to_string(self.dir.path().join("current")).unwrap();
        self.dir.path().join(cur.trim())
    }

    pub fn url(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.port)
    }
    pub fn ldaps_url(&self) -> String {
        format!("ldaps://127.0.0.1:{}", self.tls_port)
    }
    pub fn ca(&self) -> PathBuf {
        self.base().join("tls/ca.pem")
    }

    /// Applies LDIF change records with ldapmodify as the admin (`-a`: plain records are adds).
    pub fn modify(&self, ldif: &str) {
        ldapmodify(&self.url(), ADMIN, PASSWORD, ldif);
    }

    /// Changes slapd's own configuration (cn=config), e.g. its ACLs.
    pub fn config_modify(&self, ldif: &str) {
        ldapmodify(&self.url(), "cn=admin,cn=config", PASSWORD, ldif);
    }

    /// One attribute's values on one entry (as the admin sees them).
    pub fn values(&self, dn: &str, attr: &str) -> Vec<String> {
        let out = Command::new("ldapsearch")
            .args([
                "-x",
                "-LLL",
                "-o",
                "ldif-wrap=no",
                "-H",
                &self.url(),
                "-D",
                ADMIN,
                "-w",
                PASSWORD,
                "-s",
                "base",
                "-b",
                dn,
                attr,
            ])
            .output()
            .expect("ldapsearch runs");
        let prefix = format!("{attr}: ");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.strip_prefix(&prefix).map(str::to_string))
            .collect()
    }

    pub fn stop(&self) {
        let pidfile = self.base().join("run/slapd.pid");
        if let Ok(pid) = std::fs::read_to_string(&pidfile) {
            let _ = Command::new("kill").arg(pid.trim()).status();
            let t0 = Instant::now();
            while pidfile.exists() && t0.elapsed() < Duration::from_secs(5) {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

impl Slapd {
    /// Starts the stopped server again on its ports, with its data.
    pub fn restart(&self) {
        let slapd = if Path::new("/usr/sbin/slapd").exists() { "/usr/sbin/slapd".into() } else { "slapd".to_string() };
        let urls = format!("ldap://127.0.0.1:{}/ ldaps://127.0.0.1:{}/", self.port, self.tls_port);
        let ok = Command::new(slapd).arg("-F").arg(self.base().join("conf")).args(["-h", &urls]).status().unwrap();
        assert!(ok.success(), "slapd restarts");
        let t0 = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(t0.elapsed() < Duration::from_secs(10), "slapd answers after a restart");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        self.stop();
    }
}

/// An inetOrgPerson entry under ou=people.
pub fn person(uid: &str, cn: &str, extra: &str) -> String {
    let sn = cn.split_whitespace().last().unwrap_or(cn);
    let extra = extra.trim_end();
    let extra = if extra.is_empty() { String::new() } else { format!("{extra}\n") };
    format!("dn: uid={uid},ou=people,{SUFFIX}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {cn}\nsn: {sn}\nmail: {uid}@example.com\n{extra}\n")
}

/// An LDIF user record under ou=people,dc=t with an entryUUID (for LDIF
/// sources); `extra` ends the record (give it its blank line).
pub fn ldif_user(uid: &str, id: &str, extra: &str) -> String {
    format!("dn: uid={uid},ou=people,dc=t\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {uid} name\nentryUUID: {id}\n{extra}")
}

/// A groupOfNames under ou=groups; members are "uid=x" (people) or "cn=y" (groups).
pub fn group(cn: &str, members: &[&str]) -> String {
    let mut s = format!("dn: cn={cn},ou=groups,{SUFFIX}\nobjectClass: groupOfNames\ncn: {cn}\n");
    for m in members {
        let ou = if m.starts_with("uid=") { "people" } else { "groups" };
        s.push_str(&format!("member: {m},ou={ou},{SUFFIX}\n"));
    }
    s.push('\n');
    s
}

/// A dirsync config folder and the real binary.
pub struct Env {
    pub dir: TempDir,
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}\nstderr:\n{}", self.stdout, self.stderr))
    }
}

pub const FIELDS: &str = r#"[sources.fields]
username = "uid"
full_name = "cn"
email = "mail"
department = "departmentNumber"
office = { template = "{l} {roomNumber}" }
card_number = { attribute = "employeeNumber", on = ["create"] }
extension = { attribute = "telephoneNumber", transform = "digits" }
"#;

impl Env {
    /// A config with one LDAP source on `slapd`. `source_extra` goes into the
    /// [[sources]] table, `rest` after the field mappings ([[rules]], [safety]).
    pub fn ldap(slapd: &Slapd, source_extra: &str, rest: &str) -> Env {
        Env::ldap_at(&slapd.url(), source_extra, rest)
    }

    pub fn ldap_at(url: &str, source_extra: &str, rest: &str) -> Env {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("secret.txt"), format!("{PASSWORD}\n")).unwrap();
        let page = if source_extra.contains("page_size") { "" } else { "page_size = 50\n" };
        let text = format!(
            "[store]\npath = \"dirsync.db\"\n\n[[sources]]\nname = \"corp\"\ntype = \"ldap\"\nurl = \"{url}\"\nbind_dn = \"{ADMIN}\"\nbind_password_file = \"secret.txt\"\nbase_dn = \"{SUFFIX}\"\n{page}timeout_secs = 10\n{source_extra}\n{FIELDS}\n{rest}\n"
        );
        let env = Env { dir };
        env.write_config(&text);
        env
    }

    /// Writes the config file. Under `DIRSYNC_TEST_STORE=postgres` (the
    /// test command's PostgreSQL leg) the SQLite store becomes a fresh
    /// database of this folder's own on the test server.
    pub fn write_config(&self, text: &str) {
        let text = match on_postgres() {
            true => text.replacen("[store]\npath = \"dirsync.db\"\n", &format!("[store]\n{}", self.pg_store()), 1),
            false => text.to_string(),
        };
        std::fs::write(self.config(), text).unwrap();
    }

    /// `[store]`'s keys for this folder's PostgreSQL database (made on first use).
    fn pg_store(&self) -> String {
        let marker = self.dir.path().join(".pg-url");
        if !marker.exists() {
            let cfg = dirsync::store::postgres::testing::fresh_database();
            let mut url = url::Url::parse(&cfg.url).unwrap();
            let password = url.password().unwrap_or_default().to_string();
            url.set_password(None).unwrap();
            std::fs::write(self.dir.path().join("pg.secret"), format!("{password}\n")).unwrap();
            std::fs::write(&marker, url.as_str()).unwrap();
        }
        let url = std::fs::read_to_string(&marker).unwrap();
        format!("url = \"{url}\"\npassword_file = \"pg.secret\"\n")
    }

    /// Whether the store exists: the SQLite file, or the schema in the
    /// folder's PostgreSQL database.
    pub fn store_exists(&self) -> bool {
        let cfg = dirsync::config::Config::load(&self.config()).unwrap();
        match cfg.store.sqlite_path() {
            Some(p) => p.exists(),
            None => {
                !matches!(dirsync::store::open_existing(&cfg.store), Err(dirsync::store::StoreError::NotCreated { .. }))
            }
        }
    }

    /// Rewrites the config file.
    pub fn edit_config(&self, f: impl FnOnce(String) -> String) {
        let text = std::fs::read_to_string(self.config()).unwrap();
        self.write_config(&f(text));
    }

    /// Points the LDAP source at another URL (a proxy, say).
    pub fn point_at(&self, from: &str, port: u16) {
        self.edit_config(|c| c.replace(from, &format!("ldap://127.0.0.1:{port}")));
    }

    pub fn config(&self) -> PathBuf {
        self.dir.path().join("dirsync.toml")
    }

    pub fn db(&self) -> PathBuf {
        self.dir.path().join("dirsync.db")
    }

    /// The store the binary writes (the config's), opened through the library's API.
    pub fn store(&self) -> std::sync::Arc<dyn dirsync::store::Store> {
        let cfg = dirsync::config::Config::load(&self.config()).unwrap();
        dirsync::store::open(&cfg.store).unwrap()
    }

    /// Rewrites every source's saved position with `f` (what a restored
    /// backup or another server would leave), keeping its fingerprint.
    pub fn rewrite_saved_state(&self, f: impl Fn(&str) -> String) {
        let cfg = dirsync::config::Config::load(&self.config()).unwrap();
        let store = self.store();
        for s in &cfg.sources {
            let Some(mut saved) = store.sync_state(&s.name).unwrap() else { continue };
            saved.state = saved.state.as_deref().map(&f);
            let now = dirsync::time::Timestamp::now();
            store.transaction(&mut |tx| tx.set_sync_state(&s.name, &saved, false, now)).unwrap();
        }
    }

    /// Every audit action in the store, with its count, in name order (the
    /// change feed is the store's whole audit trail in commit order).
    pub fn audit_actions(&self) -> Vec<(String, i64)> {
        let mut counts = std::collections::BTreeMap::new();
        for c in self.store().changes(0, 1_000_000).unwrap() {
            *counts.entry(c.record.action).or_insert(0) += 1;
        }
        counts.into_iter().collect()
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_dirsync"));
        cmd.arg("--config").arg(self.config()).args(args).env_remove("DIRSYNC_CONFIG").env("DIRSYNC_LOG", "warn");
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Run {
        let out: Output = self.command(args).output().expect("dirsync runs");
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// `sync --json` plus extra args; returns (exit code, JSON).
    pub fn sync(&self, extra: &[&str]) -> (i32, Value) {
        let mut args = vec!["sync", "--json"];
        args.extend_from_slice(extra);
        let r = self.run(&args);
        (r.code, r.json())
    }

    /// `dirsync auth USER` with `password` on stdin (and `args` before the
    /// user); returns (exit code, stdout, stderr).
    pub fn auth(&self, user: &str, password: &str, args: &[&str]) -> (i32, String, String) {
        let mut cmd = vec!["auth"];
        cmd.extend_from_slice(args);
        cmd.push(user);
        let mut child = self
            .command(&cmd)
            .env("DIRSYNC_LOG", "info")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("dirsync runs");
        child.stdin.take().unwrap().write_all(format!("{password}\n").as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
    }

    pub fn users(&self) -> Vec<Value> {
        let r = self.run(&["users", "list", "--json"]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        r.json().as_array().unwrap().clone()
    }

    pub fn user(&self, name: &str) -> Value {
        let r = self.run(&["users", "show", name, "--json"]);
        assert_eq!(r.code, 0, "users show {name}: {}", r.stderr);
        r.json()
    }

    pub fn runs(&self) -> Vec<Value> {
        let r = self.run(&["runs", "--json"]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        r.json().as_array().unwrap().clone()
    }
}

/// Counts in a sync JSON object.
pub fn count(v: &Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or_else(|| panic!("no count {key} in {v}"))
}

/// Usernames in `users list --json`.
pub fn usernames(users: &[Value]) -> Vec<String> {
    users.iter().map(|u| u["username"].as_str().unwrap().to_string()).collect()
}

/// A TCP proxy to `target` that, after forwarding `cut_after` bytes from the
/// server, closes the connection (a server dying mid-search) or, with
/// `stall`, keeps it open and silent (a server that stops answering).
pub struct CutProxy {
    pub port: u16,
    stop: Arc<AtomicBool>,
}

impl CutProxy {
    pub fn start(target: u16, cut_after: usize) -> CutProxy {
        CutProxy::with_mode(target, cut_after, false)
    }

    pub fn stalling(target: u16, cut_after: usize) -> CutProxy {
        CutProxy::with_mode(target, cut_after, true)
    }

    fn with_mode(target: u16, cut_after: usize, stall: bool) -> CutProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        std::thread::spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((client, _)) => {
                        client.set_nonblocking(false).unwrap();
                        let server = TcpStream::connect(("127.0.0.1", target)).unwrap();
                        let (mut c_read, mut s_write) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                        std::thread::spawn(move || {
                            let _ = std::io::copy(&mut c_read, &mut s_write);
                        });
                        let (mut s_read, mut c_write) = (server, client);
                        std::thread::spawn(move || {
                            let mut sent = 0;
                            let mut buf = [0u8; 4096];
                            while let Ok(n) = s_read.read(&mut buf) {
                                if n == 0 {
                                    break;
                                }
                                let n = n.min(cut_after - sent);
                                if c_write.write_all(&buf[..n]).is_err() {
                                    break;
                                }
                                sent += n;
                                if sent >= cut_after {
                                    if stall {
                                        std::thread::sleep(Duration::from_secs(30));
                                    }
                                    break;
                                }
                            }
                            let _ = c_write.shutdown(Shutdown::Both);
                            let _ = s_read.shutdown(Shutdown::Both);
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        CutProxy { port, stop }
    }
}

impl Drop for CutProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

// ---- Samba AD ------------------------------------------------------------

pub const AD_PASSWORD: &str = "Passw0rd!Test";
pub const AD_DOMAIN: &str = "DC=example,DC=com";
pub const AD_ADMIN: &str = "Administrator@example.com";

static SAMBA: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();

/// Starts the one Samba AD DC this test run shares (its ports are fixed), or
/// fails the calling test saying why. It stops when the test process exits.
pub fn samba() {
    let r = SAMBA.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("dirsync-samba-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let out = Command::new("bash")
            .arg(repo().join("scripts/samba-test-server.sh"))
            .env("D", &dir)
            .env("PW", AD_PASSWORD)
            .env("WATCH_PID", std::process::id().to_string())
            .output()
            .map_err(|e| format!("cannot run scripts/samba-test-server.sh: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
        }
    });
    if let Err(e) = r {
        panic!("Samba AD could not start, so this AD test cannot run: {e}");
    }
}

/// Applies LDIF records to Samba as Administrator (`-a`: plain records are adds).
pub fn ad_modify(ldif: &str) {
    ldapmodify("ldap://127.0.0.1:389", AD_ADMIN, AD_PASSWORD, ldif);
}

/// Runs ldapmodify with `ldif` on stdin (`-a`: plain records are adds).
pub fn ldapmodify(url: &str, bind: &str, password: &str, ldif: &str) {
    let mut child = Command::new("ldapmodify")
        .args(["-x", "-a", "-H", url, "-D", bind, "-w", password])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ldapmodify runs");
    child.stdin.take().unwrap().write_all(ldif.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "ldapmodify on {url} failed: {}\n{ldif}", String::from_utf8_lossy(&out.stderr));
}

/// Runs `run` on a listener on a free loopback port, on a thread with its
/// own runtime (the in-process fake servers); returns the port.
fn on_loopback<F, Fut>(run: F) -> u16
where
    F: FnOnce(tokio::net::TcpListener) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()>,
{
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async move { run(tokio::net::TcpListener::from_std(listener).unwrap()).await });
    });
    port
}

/// Serves each connection with `serve`; returns the port.
pub fn spawn_server<F, Fut>(serve: F) -> u16
where
    F: Fn(tokio::net::TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    on_loopback(move |listener| async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve(stream));
        }
    })
}

/// Serves an axum app (the in-process fakes of cloud APIs); returns the port.
pub fn spawn_app(app: axum::Router) -> u16 {
    on_loopback(|listener| async move { axum::serve(listener, app).await.unwrap() })
}

/// An OU of its own for one test, with users (sAMAccountName, cn,
/// userAccountControl: 544 enabled, 546 disabled) and groups (cn, member cns).
pub fn ad_ou(ou: &str, users: &[(&str, &str, u32)], groups: &[(&str, &[&str])]) -> String {
    let base = format!("OU={ou},{AD_DOMAIN}");
    let mut ldif = format!("dn: {base}\nobjectClass: organizationalUnit\nou: {ou}\n\n");
    for (sam, cn, uac) in users {
        ldif += &format!(
            "dn: CN={cn},{base}\nobjectClass: user\nsAMAccountName: {sam}\nuserPrincipalName: {sam}@example.com\nmail: {sam}@example.com\nuserAccountControl: {uac}\n\n"
        );
    }
    // Groups first without members (a group may list another), then members.
    for (cn, _) in groups {
        ldif += &format!("dn: CN={cn},{base}\nobjectClass: group\nsAMAccountName: {ou}-{cn}\n\n");
    }
    for (cn, members) in groups {
        if members.is_empty() {
            continue;
        }
        ldif += &format!("dn: CN={cn},{base}\nchangetype: modify\nadd: member\n");
        for m in *members {
            ldif += &format!("member: CN={m},{base}\n");
        }
        ldif += "\n";
    }
    ad_modify(&ldif);
    base
}

/// A config with one AD source reading `bases` (defaults for everything else).
pub fn ad_env(bases: &[&str], source_extra: &str, rest: &str) -> Env {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ad-secret.txt"), format!("{AD_PASSWORD}\n")).unwrap();
    let bases = bases.iter().map(|b| format!("\"{b}\"")).collect::<Vec<_>>().join(", ");
    let text = format!(
        "[store]\npath = \"dirsync.db\"\n\n[[sources]]\nname = \"ad\"\ntype = \"ad\"\nurl = \"ldap://127.0.0.1:389\"\nbind_dn = \"{AD_ADMIN}\"\nbind_password_file = \"ad-secret.txt\"\nbase_dns = [{bases}]\ntimeout_secs = 20\n{source_extra}\n{rest}\n"
    );
    let env = Env { dir };
    env.write_config(&text);
    env
}

/// A PostgreSQL cluster of a test's own (the shared test server is not
/// stopped or reconfigured by tests): `scripts/pg-test-server.sh` with the
/// given settings (`TLS`, `DURABLE`), stopped on drop.
pub struct PgCluster {
    pub base: TempDir,
    pub port: u16,
    settings: Vec<(&'static str, &'static str)>,
}

impl PgCluster {
    pub fn start(settings: &[(&'static str, &'static str)]) -> PgCluster {
        let base = tempfile::tempdir().unwrap();
        use std::os::unix::fs::PermissionsExt;
        // The server runs as `postgres` when the tests run as root.
        std::fs::set_permissions(base.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let pg = PgCluster { base, port: free_port(), settings: settings.to_vec() };
        pg.script("start");
        pg
    }

    /// `start`, `stop` (immediate: as a crash) or `resume`.
    pub fn script(&self, what: &str) {
        let out = Command::new("bash")
            .arg(repo().join("scripts/pg-test-server.sh"))
            .arg(what)
            .env("BASE", self.base.path().join("pg"))
            .env("PORT", self.port.to_string())
            .envs(self.settings.iter().copied())
            .output()
            .expect("bash runs");
        assert!(out.status.success(), "pg {what}: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// The admin URL (user postgres, password "secret") of database `db`.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres:secret@127.0.0.1:{}/{db}", self.port)
    }

    /// A new database; its admin URL.
    pub fn database(&self, name: &str) -> String {
        dirsync::store::postgres::testing::psql(&self.url("postgres"), &format!("CREATE DATABASE {name}"));
        self.url(name)
    }

    /// The test CA's certificate (with `TLS=1`).
    pub fn ca(&self) -> PathBuf {
        self.base.path().join("pg/ca.pem")
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(repo().join("scripts/pg-test-server.sh"))
            .arg("stop")
            .env("BASE", self.base.path().join("pg"))
            .status();
    }
}
