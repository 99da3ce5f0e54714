//! The program source (`type = "program"`): PaperCut-style programs in shell,
//! Python and C (built here with `cc`) run unchanged, the line forms, a
//! slow, crashing, noisy or garbage-printing program, `is-valid`,
//! just-in-time provisioning through `get-user-details`, the authentication
//! program, and `allowed_dirs`.

use std::path::{Path, PathBuf};

use crate::harness::*;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/programs");

/// A config folder with `program` copied into `userdir/` beside its data.
pub fn program_env(program: &str, users: &str, members: &str, extra: &str) -> Env {
    let env = Env { dir: tempfile::tempdir().unwrap() };
    let dir = env.dir.path().join("userdir");
    std::fs::create_dir(&dir).unwrap();
    let to = dir.join(program);
    std::fs::copy(Path::new(FIXTURES).join(program), &to).unwrap();
    std::fs::write(dir.join("users.tsv"), users).unwrap();
    std::fs::write(dir.join("members.tsv"), members).unwrap();
    env.write_config(&program_config(&to, extra));
    env
}

pub fn program_config(program: &Path, extra: &str) -> String {
    format!(
        "[store]\npath = \"dirsync.db\"\n\n[[sources]]\nname = \"campus\"\ntype = \"program\"\nprogram = \"{}\"\n{extra}\n",
        program.display()
    )
}

pub const USERS: &str = "jane\tJane Rodgers\tjaner@example.com\tSales\tDocklands\t5678\t\t05678\t\t\t1234\n\
ann\tAnn Short\tann@example.com\tLaw\tLevel 2\n\
tab\tTrailing Tab\ttab@example.com\t\t\t\t\t\t\t\t\t\n\
crlf\tWindows Line\tcrlf@example.com\r\n\
zoë\tZoë Ångström\tzoe@example.com\tPhysique\tBâtiment Ü\t9012\n";

pub const MEMBERS: &str = "Staff\tjane\nStaff\tann\nStudents\tzoë\nStudents\tcrlf\nEmpty Group\tnobody\n";

/// A core field (top level) or a custom one (under `fields`).
pub fn user_field(env: &Env, name: &str, field: &str) -> String {
    let u = env.user(name);
    u[field].as_str().or(u["fields"][field].as_str()).unwrap_or_default().to_string()
}

#[test]
fn a_shell_program_syncs_long_short_trailing_tab_crlf_and_utf8_lines() {
    let env = program_env("userdir.sh", USERS, MEMBERS, "");
    let (code, out) = env.sync(&[]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(count(&out, "created"), 5, "{out}");
    assert_eq!(out["sources"][0]["name"], "campus");
    assert_eq!(out["sources"][0]["status"], "ok");
    let users = usernames(&env.users());
    assert_eq!(users, ["ann", "crlf", "jane", "tab", "zoë"]);
    assert_eq!(user_field(&env, "jane", "card_number2"), "05678");
    assert_eq!(user_field(&env, "zoë", "office"), "Bâtiment Ü");
    assert_eq!(user_field(&env, "crlf", "email"), "crlf@example.com", "no \\r left on the last column");
    assert_eq!(user_field(&env, "ann", "full_name"), "Ann Short");
    let jane = env.user("jane");
    assert!(jane["fields"].get("pin").is_none(), "the PIN is not mapped by default: {jane}");
    let groups = |u: &str| {
        env.user(u)["groups"].as_array().unwrap().iter().map(|g| g.as_str().unwrap().to_string()).collect::<Vec<_>>()
    };
    assert_eq!(groups("zoë"), ["Students"]);
    assert_eq!(groups("jane"), ["Staff"]);
    // Nothing changed: a second run changes nothing.
    let (code, out) = env.sync(&[]);
    assert_eq!((code, count(&out, "created"), count(&out, "updated")), (0, 0, 0), "{out}");
    assert_eq!(count(&out, "unchanged"), 5);
}

#[test]
fn a_python_program_runs_unchanged_and_check_reports_is_valid() {
    let env = program_env("userdir.py", "", "", "");
    let (code, out) = env.sync(&[]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(usernames(&env.users()), ["alan", "grace", "émilie"]);
    let r = env.run(&["check"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("the source says: the Python sample"), "{}", r.stdout);
    assert!(r.stdout.contains("3 users, 2 groups"), "{}", r.stdout);
}

#[test]
fn check_fails_when_the_program_says_it_is_not_valid() {
    let env = program_env("userdir.sh", USERS, MEMBERS, "");
    std::fs::remove_file(env.dir.path().join("userdir/users.tsv")).unwrap();
    let r = env.run(&["check"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(
        r.stdout.contains("userdir.sh is-valid says the directory is not usable: users.tsv is missing"),
        "{}",
        r.stdout
    );
}

/// Builds the C sample with `cc`.
fn compiled(dir: &Path) -> PathBuf {
    let out = dir.join("userdir");
    let st = std::process::Command::new("cc")
        .args(["-O2", "-o"])
        .arg(&out)
        .arg(Path::new(FIXTURES).join("userdir.c"))
        .status()
        .expect("cc runs");
    assert!(st.success());
    out
}

#[test]
fn a_compiled_program_printing_100000_users_and_1000_groups_syncs_them_all() {
    let env = Env { dir: tempfile::tempdir().unwrap() };
    let prog = compiled(env.dir.path());
    env.write_config(&program_config(&prog, ""));
    let (code, out) = env.sync(&[]);
    assert_eq!(code, 0, "{}", out["message"]);
    assert_eq!(count(&out, "created"), 100_000);
    assert_eq!(count(&out, "groups_created"), 1_000);
    assert_eq!(count(&out, "memberships_added"), 100_000);
    assert_eq!(user_field(&env, "u099999", "card_number"), "10099999");
}

fn marker(env: &Env, name: &str) {
    std::fs::write(env.dir.path().join("userdir").join(name), "").unwrap();
}

fn active(env: &Env) -> usize {
    env.users().iter().filter(|u| u["status"] == "active").count()
}

#[test]
fn a_slow_program_is_killed_at_the_timeout_and_removes_nobody() {
    let env = program_env("userdir.sh", USERS, MEMBERS, "timeout_secs = 2");
    assert_eq!(env.sync(&[]).0, 0);
    marker(&env, "slow");
    let t0 = std::time::Instant::now();
    let (code, out) = env.sync(&[]);
    assert!(t0.elapsed().as_secs() < 20, "the sleep it started was killed too");
    assert_eq!((code, out["status"].as_str()), (1, Some("failed")), "{out}");
    let msg = out["message"].as_str().unwrap();
    assert!(msg.contains("userdir.sh all-users did not finish within 2 s (killed)"), "{msg}");
    assert_eq!(active(&env), 5, "nobody removed");
}

#[test]
fn a_program_that_crashes_half_way_fails_the_run_with_its_stderr_and_removes_nobody() {
    let env = program_env("userdir.sh", USERS, MEMBERS, "");
    assert_eq!(env.sync(&[]).0, 0);
    marker(&env, "crash");
    let (code, out) = env.sync(&[]);
    assert_eq!(code, 1, "{out}");
    let msg = out["message"].as_str().unwrap();
    assert!(msg.contains("exited with status 3: userdir: lost the connection to the HR database"), "{msg}");
    assert_eq!(out["sources"][0]["status"], "failed");
    assert_eq!(active(&env), 5, "nobody removed");
}

#[test]
fn garbage_lines_are_skipped_with_their_line_numbers_and_the_rest_syncs() {
    let env = program_env("userdir.sh", USERS, MEMBERS, "");
    marker(&env, "garbage");
    let (code, out) = env.sync(&[]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(count(&out, "created"), 5, "{out}");
    let errors = out["errors"].to_string();
    assert!(errors.contains("userdir.sh all-users line 1") && errors.contains("not valid UTF-8"), "{errors}");
    assert!(errors.contains("line 4") && errors.contains("13 columns; expected at most 11"), "{errors}");
    assert!(errors.contains("line 5") && errors.contains("empty username"), "{errors}");
}

#[test]
fn a_program_that_writes_to_stderr_and_exits_0_succeeds() {
    let env = program_env("userdir.sh", USERS, MEMBERS, "");
    marker(&env, "stderr");
    let (code, out) = env.sync(&[]);
    assert_eq!((code, count(&out, "created")), (0, 5), "{out}");
}

#[test]
fn a_program_that_prints_nothing_is_an_empty_source_and_the_guard_holds() {
    let env = program_env("userdir.sh", USERS, MEMBERS, "");
    assert_eq!(env.sync(&[]).0, 0);
    std::fs::write(env.dir.path().join("userdir/users.tsv"), "").unwrap();
    let (code, out) = env.sync(&["--force"]);
    assert_eq!((code, out["status"].as_str()), (3, Some("blocked")), "{out}");
    assert!(out["message"].as_str().unwrap().contains("returned no users"), "{out}");
    assert_eq!(active(&env), 5);
}

#[test]
fn a_program_outside_allowed_dirs_is_refused_at_load() {
    let env = program_env("userdir.sh", USERS, MEMBERS, "");
    let elsewhere = tempfile::tempdir().unwrap();
    env.edit_config(|c| format!("{c}allowed_dirs = [\"{}\"]\n", elsewhere.path().display()));
    let r = env.run(&["check"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("sources[0].program:") && r.stderr.contains("is outside allowed_dirs"), "{}", r.stderr);
    // Inside the allowed folder (through a symbolic link too) it runs.
    let inside = env.dir.path().join("userdir");
    env.edit_config(|c| c.replace(&elsewhere.path().display().to_string(), &inside.display().to_string()));
    assert_eq!(env.run(&["check"]).code, 0);
    let link = env.dir.path().join("link.sh");
    std::os::unix::fs::symlink(inside.join("userdir.sh"), &link).unwrap();
    env.edit_config(|c| c.replace(&inside.join("userdir.sh").display().to_string(), &link.display().to_string()));
    let r = env.run(&["check"]);
    assert!(r.code != 2 && !r.stderr.contains("outside"), "a link to a program inside is inside: {}", r.stderr);
    // A relative path is refused: nothing is looked up on PATH.
    env.edit_config(|c| c.replace(&link.display().to_string(), "userdir.sh"));
    let r = env.run(&["check"]);
    assert!(r.code == 2 && r.stderr.contains("expected an absolute path"), "{}", r.stderr);
}

/// The program source with the authentication program beside it, knowing
/// jane's password; its folder (where `calls.log` is written).
pub fn with_auth_program(env: &Env) -> PathBuf {
    let dir = env.dir.path().join("userdir");
    std::fs::copy(Path::new(FIXTURES).join("auth.sh"), dir.join("auth.sh")).unwrap();
    std::fs::write(dir.join("passwords.tsv"), "jane\tc0rrect horse\n").unwrap();
    env.edit_config(|c| {
        c.replace(
            "type = \"program\"\n",
            &format!("type = \"program\"\nauth_program = \"{}\"\n", dir.join("auth.sh").display()),
        )
    });
    dir
}

#[test]
fn the_auth_program_accepts_the_right_password_only_and_sees_it_on_stdin_only() {
    let env = program_env("userdir.sh", USERS, MEMBERS, "");
    let dir = with_auth_program(&env);
    assert_eq!(env.sync(&[]).0, 0);
    let (code, out, err) = env.auth("jane", "c0rrect horse", &[]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, _, err) = env.auth("jane", "Tr0ub4dor&3x", &[]);
    assert_eq!(code, 1, "{err}");
    assert!(!err.contains("Tr0ub4dor"), "the password is in no log: {err}");
    let (code, _, _) = env.auth("jane", "", &[]);
    assert_eq!(code, 1, "an empty password is refused");
    let (code, _, err) = env.auth("ann", "c0rrect horse", &[]);
    assert_eq!(code, 1, "another user's password: {err}");
    let calls = std::fs::read_to_string(dir.join("calls.log")).unwrap();
    assert!(calls.lines().count() >= 2, "{calls}");
    assert!(calls.lines().all(|l| l == "args=0 password_in_env=0"), "{calls}");
}

#[test]
fn just_in_time_provisioning_reads_one_user_with_get_user_details_and_its_groups() {
    let env = program_env("userdir.sh", USERS, MEMBERS, "");
    let cfg = dirsync::config::Config::load(&env.config()).unwrap();
    let store = dirsync::store::sqlite::SqliteStore::open(&env.db()).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let opts = dirsync::engine::sync::SyncOptions { user: Some("zoë".into()), ..Default::default() };
    let out = rt.block_on(dirsync::engine::sync::run(&cfg, &store, &opts, Default::default())).unwrap();
    assert_eq!((out.status.as_str(), out.mode.as_str(), out.counts.created), ("ok", "single", 1), "{out:?}");
    drop(store);
    assert_eq!(usernames(&env.users()), ["zoë"]);
    let groups = env.user("zoë")["groups"].to_string();
    assert!(groups.contains("Students") && !groups.contains("Staff"), "{groups}");
    let opts = dirsync::engine::sync::SyncOptions { user: Some("nobody".into()), ..Default::default() };
    let store = dirsync::store::sqlite::SqliteStore::open(&env.db()).unwrap();
    let out = rt.block_on(dirsync::engine::sync::run(&cfg, &store, &opts, Default::default())).unwrap();
    assert_eq!(
        (out.status.as_str(), out.counts.created),
        ("ok", 0),
        "an unknown user (exit 1) is not an outage: {out:?}"
    );
    // A line break would ask the program for a second user on its stdin.
    let opts = dirsync::engine::sync::SyncOptions { user: Some("jane\nnobody".into()), ..Default::default() };
    let out = rt.block_on(dirsync::engine::sync::run(&cfg, &store, &opts, Default::default())).unwrap();
    assert_eq!(out.counts.created, 0, "{out:?}");
    drop(store);
    assert_eq!(usernames(&env.users()), ["zoë"], "jane was not created by a crafted name");
}

#[test]
fn a_program_printing_more_than_max_output_is_killed_and_removes_nobody() {
    let env = Env { dir: tempfile::tempdir().unwrap() };
    let prog = compiled(env.dir.path());
    env.write_config(&program_config(&prog, ""));
    let small =
        env.command(&["sync", "--json"]).env("USERDIR_USERS", "100").env("USERDIR_GROUPS", "2").output().unwrap();
    assert_eq!(small.status.code(), Some(0));
    // 100,000 lines are about 8 MiB: over a 1 MiB cap.
    env.edit_config(|c| c + "max_output_mib = 1\n");
    let (code, out) = env.sync(&[]);
    assert_eq!(code, 1, "{out}");
    let msg = out["message"].as_str().unwrap();
    assert!(msg.contains("userdir all-users printed more than 1048576 bytes (max_output_mib; killed)"), "{msg}");
    assert_eq!(env.users().iter().filter(|u| u["status"] == "active").count(), 100, "nobody removed");
}

#[test]
fn a_program_that_times_out_or_is_killed_during_a_lookup_is_a_503_naming_it_not_an_unknown_user() {
    let env = program_env("userdir.sh", USERS, MEMBERS, "user_timeout_secs = 1");
    let server = crate::serve::server_section(&env, "");
    env.edit_config(|c| format!("{c}\n{server}"));
    let svc = crate::serve::Service::start(&env);
    for m in ["slow-details", "killed-details"] {
        marker(&env, m);
        let t0 = std::time::Instant::now();
        let (s, _, v) = svc.call("POST", "/api/users/jane/sync", Some(crate::serve::WRITER), None);
        assert!(t0.elapsed().as_secs() < 8, "{m}: answered after the 1 s timeout: {:?}", t0.elapsed());
        assert_eq!((s, v["error"].as_str()), (503, Some("directory_unavailable")), "{m}: {v}");
        assert!(v["message"].as_str().unwrap().contains("campus"), "names the source: {v}");
        std::fs::remove_file(env.dir.path().join("userdir").join(m)).unwrap();
    }
    // Its own non-zero exit is its answer: an unknown user.
    let (s, _, v) = svc.call("POST", "/api/users/nobody/sync", Some(crate::serve::WRITER), None);
    assert_eq!(s, 404, "{v}");
    assert_eq!(svc.stop(10), 0);
}

/// Processes whose command line is `sleep SECS`.
fn sleeping(secs: &str) -> Vec<String> {
    let want = format!("sleep\0{secs}\0");
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| std::fs::read(e.path().join("cmdline")).is_ok_and(|c| c == want.as_bytes()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn children_a_program_leaves_running_are_killed_even_in_a_session_of_their_own() {
    let env = program_env("userdir.sh", USERS, MEMBERS, "");
    marker(&env, "leave-children");
    let (code, out) = env.sync(&[]);
    assert_eq!(code, 0, "{out}");
    assert!(sleeping("3011").is_empty(), "the child in its process group survived");
    assert!(sleeping("3012").is_empty(), "the child that called setsid survived");
    let warnings = out["warnings"].to_string();
    assert!(warnings.contains("userdir.sh all-users left") && warnings.contains("killed"), "{warnings}");
    assert_eq!(count(&out, "created"), 5, "the read itself is complete: {out}");
}
