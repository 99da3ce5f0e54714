//! CLI helpers: exit-code carrying failures, `init`, `check`, the progress bar.
//! Rendering of results lives in [`render`].

mod render;
pub mod store;
pub mod undo;

use std::io::IsTerminal;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use render::{
    print_backfill, print_groups, print_outcome, print_runs, print_user, print_users, print_writeback_status,
};

use dirsync::config::Config;

/// The example config `dirsync init` writes.
pub const EXAMPLE_CONFIG: &str = include_str!("../../examples/dirsync.example.toml");

/// An error with the exit code it maps to.
pub struct Failure {
    pub code: u8,
    pub message: String,
}

impl Failure {
    /// The run failed (source unreachable, bind refused, store error): exit 1.
    pub fn failed(message: impl Into<String>) -> Self {
        Failure { code: 1, message: message.into() }
    }
    /// Usage or config error: exit 2.
    pub fn config(message: impl Into<String>) -> Self {
        Failure { code: 2, message: message.into() }
    }
}

pub fn init(path: &Path, force: bool) -> Result<u8, Failure> {
    if path.exists() && !force {
        return Err(Failure::config(format!("{} exists already (use --force to overwrite it)", path.display())));
    }
    std::fs::write(path, EXAMPLE_CONFIG)
        .map_err(|e| Failure::failed(format!("cannot write {}: {e}", path.display())))?;
    println!("wrote {}; edit it, then run `dirsync check`", path.display());
    Ok(0)
}

/// Validates the config (already done by loading it), then reads each source.
pub async fn check(cfg: &Config) -> Result<u8, Failure> {
    println!(
        "config {}: ok ({} source(s), store {})",
        cfg.file.display(),
        cfg.sources.len(),
        dirsync::store::describe(&cfg.store)
    );
    let mut failed = 0;
    for s in &cfg.sources {
        let place = s.kind.place();
        if s.is_pushed() {
            println!("source {} (scim): {}", s.name, render::pushed_source_note(cfg));
            continue;
        }
        match dirsync::engine::sync::check_source(s).await {
            Ok((said, b)) => {
                if let Some(said) = said {
                    println!("source {}: the source says: {said}", s.name);
                }
                println!(
                    "source {} ({} {}): {} users, {} groups, {} skipped entries, {} warnings",
                    s.name,
                    s.kind.type_name(),
                    place,
                    b.users.len(),
                    b.groups.len(),
                    b.errors.len(),
                    b.warnings.len()
                );
                render::print_entry_notes(&b.errors, &b.warnings);
            }
            Err(e) => {
                failed += 1;
                println!("source {} ({} {}): FAILED: {}", s.name, s.kind.type_name(), place, e.message);
            }
        }
    }
    // The store: opened (which refuses what is not a store) and checked page by page.
    let place = dirsync::store::describe(&cfg.store);
    match dirsync::store::check(&cfg.store) {
        Ok(true) => println!("store {place}: ok (integrity checked)"),
        Ok(false) => println!("store {place}: not created yet (the first sync creates it)"),
        Err(e) => {
            failed += 1;
            println!("store: FAILED: {e}");
        }
    }
    Ok(if failed > 0 { 1 } else { 0 })
}

/// A progress line on stderr while entries are read, only on a terminal.
pub struct Progress {
    bar: Option<indicatif::ProgressBar>,
}

impl Progress {
    pub fn start(rt: &tokio::runtime::Runtime, read: Arc<AtomicU64>) -> Progress {
        if !std::io::stderr().is_terminal() {
            return Progress { bar: None };
        }
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_style(indicatif::ProgressStyle::with_template("{spinner} {msg}").expect("valid template"));
        let b = bar.clone();
        rt.spawn(async move {
            let t0 = Instant::now();
            loop {
                let n = read.load(Ordering::Relaxed);
                let rate = n as f64 / t0.elapsed().as_secs_f64().max(0.001);
                b.set_message(format!("read {n} entries ({rate:.0}/s)"));
                b.tick();
                if b.is_finished() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        Progress { bar: Some(bar) }
    }

    pub fn finish(self) {
        if let Some(b) = self.bar {
            b.finish_and_clear();
        }
    }
}

/// A password: on a terminal, asked for with `prompt` and read without
/// echo (`confirm`: asked twice, and both must agree); otherwise read from
/// stdin as scripts give it. At most 4 KiB; the line end is not part of it.
pub fn read_password(prompt: &str, confirm: bool) -> Result<String, Failure> {
    let failed = |e: std::io::Error| Failure::failed(format!("cannot read the password: {e}"));
    if !std::io::stdin().is_terminal() {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::Read::take(std::io::stdin(), 4096), &mut text).map_err(failed)?;
        return Ok(without_line_end(&text).to_string());
    }
    let first = hidden_line(prompt).map_err(failed)?;
    if confirm && hidden_line("again: ").map_err(failed)? != first {
        return Err(Failure::config("the two passwords differ; nothing was written"));
    }
    Ok(first)
}

fn without_line_end(text: &str) -> &str {
    text.strip_suffix('\n').map(|p| p.strip_suffix('\r').unwrap_or(p)).unwrap_or(text)
}

/// One line from the terminal with its echo off (restored after).
fn hidden_line(prompt: &str) -> std::io::Result<String> {
    use std::io::{BufRead, Write};
    use std::os::fd::AsRawFd;
    let fd = std::io::stdin().as_raw_fd();
    // SAFETY: termios is plain data; tcgetattr fills it for a valid descriptor.
    let mut term: libc::termios = unsafe { std::mem::zeroed() };
    if unsafe { libc::tcgetattr(fd, &mut term) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let saved = term;
    term.c_lflag &= !libc::ECHO;
    term.c_lflag |= libc::ECHONL;
    // SAFETY: the same descriptor, with settings read from it.
    unsafe { libc::tcsetattr(fd, libc::TCSANOW, &term) };
    eprint!("{prompt}");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    let read = std::io::Read::take(std::io::stdin().lock(), 4096).read_line(&mut line);
    // SAFETY: restores what was read above.
    unsafe { libc::tcsetattr(fd, libc::TCSANOW, &saved) };
    read.map(|_| without_line_end(&line).to_string())
}
