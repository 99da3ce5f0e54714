//! Test support: a PostgreSQL server for tests, and a fresh database on it
//! per store. The server is the one `DIRSYNC_TEST_PG` names (an admin URL,
//! as `scripts/test.sh` exports), or one this process starts with
//! `scripts/pg-test-server.sh` in a temp folder on a free loopback port and
//! stops when it exits.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use super::PgConfig;

/// The admin URL of the test server (started on first use).
pub fn server_url() -> String {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| std::env::var("DIRSYNC_TEST_PG").unwrap_or_else(|_| start_own())).clone()
}

static OWN: OnceLock<std::path::PathBuf> = OnceLock::new();

fn start_own() -> String {
    let base = std::env::temp_dir().join(format!("dirsync-pg-{}", std::process::id()));
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/pg-test-server.sh");
    let out = std::process::Command::new("bash")
        .arg(script)
        .arg("start")
        .env("BASE", &base)
        .env("PORT", port.to_string())
        .output()
        .expect("bash runs");
    assert!(
        out.status.success(),
        "PostgreSQL did not start (the test command installs postgresql): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    OWN.set(base).expect("started once");
    extern "C" fn stop() {
        if let Some(base) = OWN.get() {
            let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/pg-test-server.sh");
            let _ = std::process::Command::new("bash").arg(script).arg("stop").env("BASE", base).status();
            let _ = std::fs::remove_dir_all(base);
        }
    }
    // SAFETY: `stop` is an `extern "C" fn()` that does not unwind.
    unsafe { libc::atexit(stop) };
    format!("postgres://postgres:secret@127.0.0.1:{port}/postgres")
}

/// A new, empty database on the test server, and a config for it.
pub fn fresh_database() -> PgConfig {
    static N: AtomicUsize = AtomicUsize::new(0);
    let admin = server_url();
    let name = format!("t{}_{}_{}", std::process::id(), N.fetch_add(1, Ordering::SeqCst), nanos());
    psql(&admin, &format!("CREATE DATABASE {name}"));
    let mut url = url::Url::parse(&admin).unwrap();
    url.set_path(&name);
    PgConfig { url: url.to_string(), password: None, ca_file: None, pool_size: 4 }
}

fn nanos() -> u32 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos()
}

/// Runs one SQL statement as the admin (with `psql`).
pub fn psql(url: &str, sql: &str) -> String {
    let out = std::process::Command::new("psql")
        .args(["-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", url, "-c", sql])
        .output()
        .expect("psql runs");
    assert!(out.status.success(), "psql {sql:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}
