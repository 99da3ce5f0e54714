//! The README's quick start, run as written: its two shell blocks, in order,
//! in one shell, from a copy of the repository's `examples/` with the built
//! binary where the block looks for it. Only the service's port is changed
//! (8080 may be taken here): a free one instead.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::page::Browser;

/// The shell blocks under `## Quick start`, in order.
fn quick_start_blocks() -> Vec<String> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = readme.find("## Quick start").expect("a quick start");
    let end = start + readme[start..].find("\n## Usage").expect("then usage");
    let section = &readme[start..end];
    section.split("```sh\n").skip(1).map(|b| b.split("```").next().unwrap().to_string()).collect()
}

fn bash(dir: &std::path::Path, script: &str) -> std::process::Output {
    Command::new("bash").args(["-euo", "pipefail", "-c", script]).current_dir(dir).output().unwrap()
}

#[test]
fn the_readme_quick_start_runs_as_written() {
    let blocks = quick_start_blocks();
    assert_eq!(blocks.len(), 2, "{blocks:?}");
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("examples")).unwrap();
    for f in ["demo.toml", "demo.ldif"] {
        std::fs::copy(repo.join("examples").join(f), dir.path().join("examples").join(f)).unwrap();
    }
    std::fs::create_dir_all(dir.path().join("target/release")).unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_dirsync"), dir.path().join("target/release/dirsync")).unwrap();

    // The first block, and the service block's set-up lines, in one shell.
    let lines: Vec<&str> = blocks[1].lines().filter(|l| !l.trim().is_empty()).collect();
    let (setup, serve) = lines.split_at(lines.len() - 1);
    assert!(serve[0].contains("dirsync serve"), "{serve:?}");
    let out = bash(dir.path(), &format!("{}\n{}\n", blocks[0], setup.join("\n")));
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("source school (ldif"), "check read the source: {text}");
    assert!(text.contains("plan:") && text.contains("+ create"), "the dry run shows its plan: {text}");
    assert!(text.contains("CHANGES:"), "runs: {text}");
    let examples = dir.path().join("examples");
    assert!(examples.join("demo.db").exists() && examples.join("admin.hash").exists());

    // The service, on a free port instead of 8080.
    let config = std::fs::read_to_string(examples.join("my.toml")).unwrap();
    std::fs::write(examples.join("my.toml"), config.replace("[server]\n", "[server]\nlisten = \"127.0.0.1:0\"\n"))
        .unwrap();
    let command = serve[0].split('#').next().unwrap().trim();
    let mut child = Command::new("bash")
        .args([
            "-c",
            &format!("export PATH=\"{}:$PATH\"; exec env {command}", dir.path().join("target/release").display()),
        ])
        .current_dir(&examples)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(addr) = line.split("listening on ").nth(1) {
                let _ = tx.send(addr.trim().to_string());
            }
        }
    });
    let base = rx.recv_timeout(Duration::from_secs(20)).expect("the service says where it listens");
    let mut b = Browser::new(&base);
    let form = b.get("/login");
    assert!(
        form.body.contains("signs in as <strong>admin</strong>"),
        "the sign-in page names the local account: {}",
        form.body
    );
    let signed = b.sign_in("admin", "choose-a-long-password");
    assert_eq!(signed.status, 303, "{}", signed.body);
    let page = b.get("/ui/users");
    // A user's page shows every mapped field, labelled apart from its value.
    let one = b.get("/ui/users/mhopper");
    // The sync's page lists who it changed, by kind.
    let run = b.get("/ui/runs/1");
    let _ = child.kill();
    let _ = child.wait();
    assert!(page.status == 200 && page.body.contains("Users"), "{}", page.body);
    assert!(one.body.contains("<dt>Department</dt><dd>Science</dd>"), "{}", one.body);
    assert!(one.body.contains("<dt>Card number</dt><dd>1001</dd>"), "{}", one.body);
    assert!(run.body.contains("<h2>Changes</h2>") && run.body.contains("<h3>create ("), "{}", run.body);
    assert!(run.body.contains("<td>mhopper</td>"), "{}", run.body);
}
