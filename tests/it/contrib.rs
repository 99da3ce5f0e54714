//! `contrib/dirsync.service` is a valid systemd unit: `systemd-analyze
//! verify` accepts it without a warning (with ExecStart pointed at the test
//! binary, which must exist for the check).

use std::process::Command;

fn verify(unit: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dirsync.service");
    std::fs::write(&path, unit).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze runs (scripts/test.sh installs systemd)");
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn the_systemd_unit_verifies_without_a_warning() {
    let unit = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/contrib/dirsync.service")).unwrap();
    assert!(unit.contains("ExecStart=/usr/local/bin/dirsync --config /etc/dirsync/dirsync.toml serve"));
    assert!(unit.contains("ProtectSystem=strict") && unit.contains("DynamicUser=yes"));
    let unit = unit.replace("/usr/local/bin/dirsync", env!("CARGO_BIN_EXE_dirsync"));
    let (ok, stderr) = verify(&unit);
    assert!(ok && stderr.trim().is_empty(), "systemd-analyze verify: {stderr}");
    // The check can fail: a misspelt key is reported.
    let (_, stderr) = verify(&unit.replace("ProtectHome=yes", "ProtectHoem=yes"));
    assert!(stderr.contains("ProtectHoem"), "{stderr}");
}

#[test]
fn the_unit_allows_far_more_files_than_the_connection_cap() {
    let unit = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/contrib/dirsync.service")).unwrap();
    let n: usize =
        unit.lines().find_map(|l| l.strip_prefix("LimitNOFILE=")).expect("LimitNOFILE is set").parse().unwrap();
    let cap = dirsync::config::ServerConfig::default().max_connections;
    assert!(n >= 4 * cap, "LimitNOFILE={n} for max_connections={cap}");
}
