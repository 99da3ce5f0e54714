//! What a directory program leaves behind. Every run is tagged (an
//! environment variable its descendants inherit) and leads its own process
//! group; when the command ends, whatever is left of it is killed: members
//! of its group (`sleep 300 &`), and — dirsync being a child subreaper
//! ([`become_subreaper`]) — descendants that left the group with `setsid`
//! and were handed to dirsync when their parent ended. Both are reaped, and
//! the caller reports that the program left something running.
//!
//! A descendant that also clears its environment and escapes the group is
//! not recognised; it is still handed to dirsync, never to init.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The environment variable that tags one run's processes.
pub const TAG_VAR: &str = "DIRSYNC_PROGRAM_RUN";

/// A tag for one run, unique in this process.
pub fn new_tag() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!("{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

/// Makes this process the child subreaper of everything it starts (Linux
/// `PR_SET_CHILD_SUBREAPER`): orphaned descendants come to it, not to init,
/// so [`sweep`] can find them. The binary calls it at start; a library user
/// that wants the same must reap orphans it did not start itself.
pub fn become_subreaper() -> bool {
    // SAFETY: prctl with PR_SET_CHILD_SUBREAPER takes plain integers.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0 }
}

/// Kills and reaps what is left of the run led by `group` and tagged `tag`;
/// returns how many processes were found.
pub fn sweep(group: i32, tag: &str) -> usize {
    let mut found = 0;
    // SAFETY: kill(2) with a negative pid signals a process group; 0 asks only whether it exists.
    if group > 0 && unsafe { libc::kill(-group, 0) } == 0 {
        unsafe { libc::kill(-group, libc::SIGKILL) };
    }
    // Killing one may hand its own children over: a few rounds.
    for _ in 0..16 {
        let left = leftovers(group, tag);
        if left.is_empty() {
            break;
        }
        for pid in left {
            found += 1;
            // SAFETY: a child of this process (its parent is us), killed and then waited for.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            reap(pid);
        }
    }
    found
}

/// This process's children that belong to the run: in its group (zombies
/// included) or carrying its tag.
fn leftovers(group: i32, tag: &str) -> Vec<i32> {
    let me = std::process::id() as i32;
    let want = format!("{TAG_VAR}={tag}");
    candidates()
        .into_iter()
        .filter(|&pid| {
            let Some((ppid, pgrp)) = parent_and_group(pid) else { return false };
            ppid == me
                && (pgrp == group
                    || std::fs::read(format!("/proc/{pid}/environ"))
                        .is_ok_and(|env| env.split(|b| *b == 0).any(|v| v == want.as_bytes())))
        })
        .collect()
}

/// This process's children, as its threads list them
/// (`/proc/self/task/*/children`: a look at a handful of files after every
/// command, not at every process of the machine); every process when the
/// kernel does not offer those lists.
fn candidates() -> Vec<i32> {
    let numbers = |text: &str| text.split_whitespace().filter_map(|p| p.parse().ok()).collect::<Vec<i32>>();
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        let lists: Vec<String> =
            tasks.filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("children")).ok()).collect();
        if !lists.is_empty() {
            return lists.iter().flat_map(|l| numbers(l)).collect();
        }
    }
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok()).collect()
}

/// A process's parent and process group, from `/proc/PID/stat` (after the
/// command name, which may hold spaces and parentheses).
fn parent_and_group(pid: i32) -> Option<(i32, i32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut f = rest.split_whitespace().skip(1); // the state
    Some((f.next()?.parse().ok()?, f.next()?.parse().ok()?))
}

/// Waits for a killed child (briefly: SIGKILL cannot be ignored).
fn reap(pid: i32) {
    for _ in 0..200 {
        // SAFETY: waitpid on our own child with WNOHANG; no memory is passed.
        let r = unsafe { libc::waitpid(pid, std::ptr::null_mut(), libc::WNOHANG) };
        if r != 0 {
            return; // reaped, or not ours to wait for
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stat_line_is_read_after_a_command_name_with_spaces_and_parentheses() {
        let me = std::process::id() as i32;
        let (ppid, pgrp) = parent_and_group(me).expect("our own stat");
        // SAFETY: plain getters.
        assert_eq!((ppid, pgrp), unsafe { (libc::getppid(), libc::getpgrp()) });
    }

    #[test]
    fn tags_are_unique() {
        assert_ne!(new_tag(), new_tag());
    }
}
