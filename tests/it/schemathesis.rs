//! Schemathesis (PyPI; `scripts/test.sh` installs it in a virtualenv and
//! sets DIRSYNC_SCHEMATHESIS) against the real service on a real slapd,
//! from the service's own `/api/openapi.json`: no 5xx, no answer outside
//! its schema, no valid request refused, no invalid one accepted.

use std::process::Command;

use crate::harness::*;
use crate::serve::*;

#[test]
fn schemathesis_finds_no_server_error_and_no_answer_outside_the_schema() {
    let bin = std::env::var("DIRSYNC_SCHEMATHESIS").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/target/schemathesis-venv/bin/schemathesis").to_string()
    });
    assert!(std::path::Path::new(&bin).exists(), "{bin} is missing: scripts/test.sh installs schemathesis");
    let slapd = Slapd::start();
    school(&slapd);
    let env = serving(&slapd);
    let svc = Service::start(&env);
    svc.sync();
    // The change feed's long poll would make every generated `wait` a pause.
    // A push or a one-user sync asked while a run the fuzzer queued holds the
    // store's lease answers 503 `store_busy` by design (documented, with
    // Retry-After): allowed for those two operations, no other 5xx anywhere.
    let config = env.dir.path().join("schemathesis.toml");
    let busy = r#"checks.not_a_server_error.expected-statuses = ["2xx", "3xx", "4xx", "503"]"#;
    std::fs::write(
        &config,
        format!(
            "[[operations]]\ninclude-name = \"GET /api/changes\"\nparameters = {{ wait = 0 }}\n\n\
             [[operations]]\ninclude-name = \"POST /api/writeback/push\"\n{busy}\n\n\
             [[operations]]\ninclude-name = \"POST /api/users/{{username}}/sync\"\n{busy}\n"
        ),
    )
    .unwrap();
    let out = Command::new(&bin)
        .arg("--config-file")
        .arg(&config)
        .args(["run", &format!("{}/api/openapi.json", svc.base)])
        .args(["-H", &format!("Authorization: Bearer {ADMIN_TOKEN}")])
        .args([
            "--max-examples",
            "40",
            "--request-timeout",
            "10",
            "--phases",
            "examples,coverage,fuzzing",
            "--seed",
            "1",
        ])
        .env("NO_COLOR", "1")
        .output()
        .expect("schemathesis runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "schemathesis found failures:\n{text}");
    assert!(text.contains(" generated, ") && !text.contains("failed"), "cases were generated and none failed:\n{text}");
    assert!(!svc.log().contains("panicked"), "{}", svc.log());
    assert_eq!(svc.stop(15), 0);
}
