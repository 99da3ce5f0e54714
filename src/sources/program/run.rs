//! Running a directory program safely: the executable directly (never a
//! shell), arguments as a list, in its own process group (so a timeout kills
//! what it started too), stdin written and closed, stdout read line by line
//! as it arrives under a byte cap, stderr kept (capped) for the error, and a
//! deadline after which the whole group is killed. A non-zero exit or a
//! signal is an error naming the command; what was read is not to be used.
//! What a program leaves running when it ends is killed ([`super::reap`]).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdout, Command};
use tokio::time::Instant;

/// Longest stderr kept for messages.
const STDERR_CAP: usize = 16 * 1024;

/// Why a program run failed; `exited` when it ran to its end and exited
/// with a status of its own (not killed by a signal or the timeout)
/// non-zero (rather than not starting, being killed or timing out).
#[derive(Debug)]
pub struct RunError {
    pub message: String,
    pub exited: bool,
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<RunError> for String {
    fn from(e: RunError) -> String {
        e.message
    }
}

impl From<String> for RunError {
    fn from(message: String) -> RunError {
        RunError { message, exited: false }
    }
}

/// A program that exited 0: what it wrote on stderr (a warning to log) and
/// how many processes it left running (killed; the run is warned).
#[derive(Debug, Default)]
pub struct Done {
    pub stderr: String,
    pub leftover: usize,
}

/// How long a program may run and how much it may print.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub timeout: Duration,
    pub max_output: u64,
}

/// A running program whose stdout is read line by line.
pub struct Running {
    what: String,
    child: Child,
    out: BufReader<ChildStdout>,
    stderr: tokio::task::JoinHandle<Vec<u8>>,
    deadline: Instant,
    limits: Limits,
    read: u64,
    line: usize,
    buf: Vec<u8>,
    /// Whether stderr may be quoted in messages (not for the auth program,
    /// which may echo what it was given).
    quote_stderr: bool,
    /// The run's tag and process group, for what it leaves behind.
    tag: String,
    group: i32,
}

impl Running {
    /// Starts `program` with `args` (the first is PaperCut's unused `-`),
    /// writing `stdin` (then closing it). `what` names the call in messages.
    pub fn start(
        program: &Path,
        args: &[&str],
        stdin: Option<Vec<u8>>,
        limits: Limits,
        what: String,
    ) -> Result<Running, RunError> {
        let mut cmd = Command::new(program);
        cmd.args(args)
            .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .process_group(0);
        let tag = super::reap::new_tag();
        cmd.env(super::reap::TAG_VAR, &tag);
        if let Some(dir) = program.parent() {
            cmd.current_dir(dir);
        }
        let mut child = cmd.spawn().map_err(|e| format!("{what}: cannot run {}: {e}", program.display()))?;
        if let (Some(data), Some(mut pipe)) = (stdin, child.stdin.take()) {
            // A program that never reads its stdin must not block the write.
            tokio::spawn(async move {
                let _ = pipe.write_all(&data).await;
                let _ = pipe.shutdown().await;
            });
        }
        let mut err = child.stderr.take().expect("piped stderr");
        let stderr = tokio::spawn(async move {
            let mut kept = Vec::new();
            let mut chunk = [0u8; 4096];
            loop {
                match err.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) if kept.len() < STDERR_CAP => {
                        kept.extend_from_slice(&chunk[..n.min(STDERR_CAP - kept.len())])
                    }
                    Ok(_) => {} // drained, not kept
                }
            }
            kept
        });
        let out = BufReader::with_capacity(1 << 16, child.stdout.take().expect("piped stdout"));
        let group = child.id().map_or(0, |p| p as i32);
        Ok(Running {
            tag,
            group,
            what,
            child,
            out,
            stderr,
            deadline: Instant::now() + limits.timeout,
            limits,
            read: 0,
            line: 0,
            buf: Vec::new(),
            quote_stderr: true,
        })
    }

    /// Never quote this program's stderr (it was given a password).
    pub fn quiet(mut self) -> Running {
        self.quote_stderr = false;
        self
    }

    /// The next line of stdout (without its `\n` or `\r\n`) and its number,
    /// or `None` at the end.
    pub async fn next_line(&mut self) -> Result<Option<(usize, &[u8])>, RunError> {
        self.buf.clear();
        let limit = self.limits.max_output.saturating_sub(self.read) + 1;
        let mut take = (&mut self.out).take(limit);
        let n = match tokio::time::timeout_at(self.deadline, take.read_until(b'\n', &mut self.buf)).await {
            Err(_) => return Err(self.kill(format!("did not finish within {} s (killed)", secs(self.limits))).await),
            Ok(Err(e)) => return Err(self.kill(format!("reading its output failed: {e}")).await),
            Ok(Ok(n)) => n,
        };
        self.read += n as u64;
        if self.read > self.limits.max_output {
            let cap = self.limits.max_output;
            return Err(self.kill(format!("printed more than {cap} bytes (max_output_mib; killed)")).await);
        }
        if n == 0 {
            return Ok(None);
        }
        self.line += 1;
        let mut line = &self.buf[..];
        if let Some(l) = line.strip_suffix(b"\n") {
            line = l;
        }
        if let Some(l) = line.strip_suffix(b"\r") {
            line = l;
        }
        Ok(Some((self.line, line)))
    }

    /// Waits for the program to end (within the deadline), then kills what
    /// it left running. `Ok`: exit 0, with what it printed on stderr and
    /// left behind; `Err`: a non-zero exit, a signal or a timeout, with
    /// stderr in the message.
    pub async fn finish(mut self) -> Result<Done, RunError> {
        // Whatever is left on stdout is drained (and still capped).
        while self.next_line().await?.is_some() {}
        let status = match tokio::time::timeout_at(self.deadline, self.child.wait()).await {
            Err(_) => return Err(self.kill(format!("did not finish within {} s (killed)", secs(self.limits))).await),
            Ok(Err(e)) => return Err(format!("{}: waiting for it failed: {e}", self.what).into()),
            Ok(Ok(s)) => s,
        };
        let stderr = self.stderr_text().await;
        let leftover = self.sweep().await;
        if status.success() {
            return Ok(Done { stderr, leftover });
        }
        use std::os::unix::process::ExitStatusExt;
        // Only an exit status is the program's answer (PaperCut's programs
        // exit non-zero for a user they do not know); a signal is a failure.
        let (how, exited) = match (status.code(), status.signal()) {
            (Some(c), _) => (format!("exited with status {c}"), true),
            (None, Some(sig)) => (format!("was killed by signal {sig}"), false),
            _ => ("failed".to_string(), false),
        };
        Err(RunError { message: self.message(how, &stderr), exited })
    }

    /// Kills the program and everything in its process group.
    async fn kill(&mut self, why: String) -> RunError {
        if let Some(pid) = self.child.id() {
            // SAFETY: kill(2) with a negative pid signals the process group
            // the child leads (`process_group(0)`); no memory is involved.
            unsafe {
                libc::kill(-(pid as i32), libc::SIGKILL);
            }
        }
        let _ = self.child.kill().await;
        self.sweep().await;
        let stderr = self.stderr_text().await;
        self.message(why, &stderr).into()
    }

    /// Kills and reaps whatever of this run is still running ([`super::reap`]).
    async fn sweep(&self) -> usize {
        let (group, tag) = (self.group, self.tag.clone());
        tokio::task::spawn_blocking(move || super::reap::sweep(group, &tag)).await.unwrap_or(0)
    }

    async fn stderr_text(&mut self) -> String {
        let kept = match tokio::time::timeout(Duration::from_secs(1), &mut self.stderr).await {
            Ok(Ok(v)) => v,
            _ => Vec::new(),
        };
        String::from_utf8_lossy(&kept).trim().to_string()
    }

    fn message(&self, how: String, stderr: &str) -> String {
        match (self.quote_stderr, stderr.is_empty()) {
            (true, false) => format!("{} {how}: {}", self.what, one_line(stderr)),
            _ => format!("{} {how}", self.what),
        }
    }
}

fn secs(l: Limits) -> u64 {
    l.timeout.as_secs()
}

/// Stderr on one line, at most 500 characters, control characters shown as spaces.
fn one_line(s: &str) -> String {
    let t: String = s.chars().map(|c| if c.is_control() { ' ' } else { c }).take(500).collect();
    t.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Runs a program to the end and returns its stdout lines (for the short
/// calls: `is-valid`, `all-groups`, `group-member-names`, authentication).
pub async fn output(
    program: &Path,
    args: &[&str],
    stdin: Option<Vec<u8>>,
    limits: Limits,
    what: String,
) -> Result<(Vec<(usize, String)>, Done), RunError> {
    let mut r = Running::start(program, args, stdin, limits, what)?;
    let mut lines = Vec::new();
    while let Some((n, l)) = r.next_line().await? {
        lines.push((n, String::from_utf8_lossy(l).into_owned()));
    }
    let done = r.finish().await?;
    Ok((lines, done))
}

/// A program path as the config gave it, checked: absolute, a regular file,
/// executable, and (with `allowed_dirs`) inside one of them once symbolic
/// links are resolved.
pub fn check_program(p: &str, allowed: &[PathBuf]) -> Result<PathBuf, String> {
    use std::os::unix::fs::PermissionsExt;
    let path = PathBuf::from(p);
    if !path.is_absolute() {
        return Err(format!("expected an absolute path (the program is run directly, not found on PATH), got \"{p}\""));
    }
    let meta = std::fs::metadata(&path).map_err(|e| format!("{p}: {e}"))?;
    if !meta.is_file() {
        return Err(format!("{p} is not a file"));
    }
    if meta.permissions().mode() & 0o111 == 0 {
        return Err(format!("{p} is not executable (chmod +x)"));
    }
    if !allowed.is_empty() {
        let real = std::fs::canonicalize(&path).map_err(|e| format!("{p}: {e}"))?;
        let inside = allowed.iter().any(|d| std::fs::canonicalize(d).is_ok_and(|d| real.starts_with(d)));
        if !inside {
            return Err(format!(
                "{p} is outside allowed_dirs ({}); refusing to run it",
                allowed.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", ")
            ));
        }
    }
    Ok(path)
}
