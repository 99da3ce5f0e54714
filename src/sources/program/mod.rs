//! The program source: PaperCut's custom user directory interface, so that
//! programs written for PaperCut run unchanged. A full read is
//! `PROGRAM - all-users` (user lines streamed into the mapping as they are
//! printed), `PROGRAM - all-groups`, then `PROGRAM - group-member-names
//! GROUP` for each group, a bounded number at once. `get-user-details` serves
//! just-in-time provisioning, `is-valid` the checks, and the authentication
//! program ([`auth`]) password checks. Running them safely is [`run`]'s.
//!
//! A user line is up to 11 tab-separated columns ([`config::COLUMNS`]); a
//! line with more, or with an empty username, or not UTF-8, is a skipped
//! entry naming the program's command and line number. A program that fails
//! (non-zero exit, killed, timed out, too much output) fails the read, so the
//! run removes nobody.

pub mod auth;
pub mod config;
pub mod reap;
pub mod run;

use async_trait::async_trait;
use futures_util::stream::{self, StreamExt, TryStreamExt};
use tracing::warn;

pub use config::ProgramConfig;
use run::{output, Limits, Running};

use super::{tabular, Batcher, EntrySink, FetchCounts, Fetched, Source, SourceError};
use crate::config::SourceConfig;
use crate::model::{Delta, EntryKind, RawEntry};

pub struct ProgramSource {
    name: String,
    cfg: ProgramConfig,
    /// Warnings for the run (a command that left processes running).
    warnings: std::sync::Mutex<Vec<String>>,
}

impl ProgramSource {
    pub fn new(cfg: &SourceConfig, p: &ProgramConfig) -> Self {
        ProgramSource { name: cfg.name.clone(), cfg: p.clone(), warnings: Default::default() }
    }

    fn err(&self, m: impl Into<String>) -> SourceError {
        SourceError::new(&self.name, m.into())
    }

    /// A program that succeeded but wrote to stderr: logged, not an error.
    /// Logs what a command that succeeded wrote on stderr, and warns the
    /// run when it left processes running (they were killed).
    fn after(&self, what: &str, done: &run::Done) {
        if !done.stderr.is_empty() {
            warn!(source = %self.name, command = %what, "the program succeeded but wrote to stderr: {}", done.stderr);
        }
        if done.leftover > 0 {
            let m = format!(
                "{what} left {} process(es) running after it ended (in its process group or in a session of its own); they were killed",
                done.leftover
            );
            warn!(source = %self.name, "{m}");
            self.warnings.lock().expect("warnings lock").push(m);
        }
    }

    /// The warnings gathered so far, for the run.
    fn take_warnings(&self) -> Vec<String> {
        std::mem::take(&mut *self.warnings.lock().expect("warnings lock"))
    }

    /// `program COMMAND` for messages.
    fn what(&self, cmd: &str) -> String {
        let prog = self.cfg.program.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
        format!("{prog} {cmd}")
    }

    /// Runs a short command to the end; its stdout lines.
    async fn lines(&self, args: &[&str], stdin: Option<Vec<u8>>, limits: Limits) -> Result<Vec<String>, SourceError> {
        let what = self.what(&args[1..].join(" "));
        let (lines, done) =
            output(&self.cfg.program, args, stdin, limits, what.clone()).await.map_err(|m| self.err(m))?;
        self.after(&what, &done);
        Ok(lines.into_iter().map(|(_, l)| l).collect())
    }

    /// Streams the user lines of `all-users` (or `get-user-details`) into `b`.
    async fn users(
        &self,
        args: &[&str],
        stdin: Option<Vec<u8>>,
        limits: Limits,
        b: &mut Batcher,
    ) -> Result<u64, SourceError> {
        let what = self.what(args[1]);
        let mut r = Running::start(&self.cfg.program, args, stdin, limits, what.clone()).map_err(|m| self.err(m))?;
        let mut n = 0;
        while let Some((line_no, line)) = r.next_line().await.map_err(|m| self.err(m))? {
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let entry = user_entry(line, &format!("{what} line {line_no}"));
            n += 1;
            b.push(EntryKind::User, entry).await.map_err(|m| self.err(m))?;
        }
        let done = r.finish().await.map_err(|m| self.err(m))?;
        self.after(&what, &done);
        Ok(n)
    }

    /// `get-user-details`: only a line for the user asked for counts (a
    /// program answering with someone else, or with several lines, creates
    /// nobody else).
    async fn user_details(&self, stdin: Vec<u8>, username: &str, b: &mut Batcher) -> Result<u64, SourceError> {
        let what = self.what("get-user-details");
        let r =
            output(&self.cfg.program, &["-", "get-user-details"], Some(stdin), self.cfg.user_limits(), what.clone());
        let (lines, done) = match r.await {
            Ok(done) => done,
            // PaperCut's samples exit non-zero for a user they do not know.
            Err(m) if m.exited => {
                tracing::info!(source = %self.name, asked = %username, "get-user-details: {m}; taken as an unknown user");
                return Ok(0);
            }
            Err(m) => return Err(self.err(m)),
        };
        self.after(&what, &done);
        let key = crate::model::name_key(username);
        let mut n = 0;
        for (line_no, line) in lines {
            let first = line.split('\t').next().unwrap_or_default().trim();
            if crate::model::name_key(first) != key {
                warn!(source = %self.name, asked = %username, "get-user-details answered a line for another user; ignored");
                continue;
            }
            n += 1;
            b.push(EntryKind::User, user_entry(line.as_bytes(), &format!("{what} line {line_no}")))
                .await
                .map_err(|m| self.err(m))?;
            break;
        }
        Ok(n)
    }

    /// The members of each group, `concurrency` calls at once, in order.
    async fn members(&self, groups: &[String]) -> Result<Vec<Vec<String>>, SourceError> {
        stream::iter(groups.iter().cloned())
            .map(|g: String| async move {
                let lines = self.lines(&["-", "group-member-names", &g], None, self.cfg.limits()).await?;
                Ok::<_, SourceError>(
                    lines.into_iter().map(|l| l.trim().to_string()).filter(|l| !l.is_empty()).collect(),
                )
            })
            .buffered(self.cfg.concurrency)
            .try_collect()
            .await
    }

    async fn group_names(&self) -> Result<Vec<String>, SourceError> {
        let mut names: Vec<String> = self
            .lines(&["-", "all-groups"], None, self.cfg.limits())
            .await?
            .into_iter()
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .collect();
        let mut seen = std::collections::HashSet::new();
        names.retain(|n| seen.insert(n.clone()));
        Ok(names)
    }

    async fn push_groups(
        &self,
        b: &mut Batcher,
        groups: Vec<String>,
        members: Vec<Vec<String>>,
    ) -> Result<u64, SourceError> {
        let n = groups.len() as u64;
        for (g, m) in groups.into_iter().zip(members) {
            let origin = self.what(&format!("group-member-names {g}"));
            b.push(EntryKind::Group, tabular::group(&g, m, Vec::new(), origin)).await.map_err(|m| self.err(m))?;
        }
        Ok(n)
    }
}

/// One user line as an entry: its columns by name, or (more than 11
/// columns, no username, not UTF-8) an entry the mapping skips with the reason.
pub fn user_entry(line: &[u8], origin: &str) -> RawEntry {
    let bad = |reason: String, username: Option<&str>| {
        tabular::skipped(EntryKind::User, username, origin.to_string(), reason)
    };
    let Ok(text) = std::str::from_utf8(line) else {
        return bad("the line is not valid UTF-8".into(), None);
    };
    let mut cols: Vec<&str> = text.split('\t').collect();
    // Trailing empty columns (a trailing tab) are fine.
    while cols.len() > config::COLUMNS.len() && cols.last().is_some_and(|c| c.trim().is_empty()) {
        cols.pop();
    }
    let username = cols[0].trim();
    if cols.len() > config::COLUMNS.len() {
        return bad(
            format!("the line has {} columns; expected at most {}", cols.len(), config::COLUMNS.len()),
            Some(username),
        );
    }
    if username.is_empty() {
        return bad("the line has an empty username (first column)".into(), None);
    }
    let columns = config::COLUMNS.iter().copied().zip(cols.iter().map(|c| c.trim()));
    tabular::user(username, origin.to_string(), columns, Vec::new())
}

#[async_trait]
impl Source for ProgramSource {
    fn name(&self) -> &str {
        &self.name
    }

    async fn fetch(&self, sink: EntrySink, _since: Option<&str>) -> Result<Fetched, SourceError> {
        let mut b = sink.batcher();
        let users = self.users(&["-", "all-users"], None, self.cfg.limits(), &mut b).await?;
        let groups = self.group_names().await?;
        let members = self.members(&groups).await?;
        let groups = self.push_groups(&mut b, groups, members).await?;
        b.flush().await.map_err(|m| self.err(m))?;
        Ok(Fetched { counts: FetchCounts { users, groups }, warnings: self.take_warnings(), ..Fetched::default() })
    }

    /// `get-user-details` with the username on stdin; then `is-user-in-group`
    /// for each group, and the members of the groups that answer yes.
    async fn fetch_user(&self, sink: EntrySink, username: &str) -> Result<Fetched, SourceError> {
        // One line on stdin is the username: a line break would ask for
        // another user, so such a name is not known here.
        if username.trim().is_empty() || username.chars().any(char::is_control) {
            return Ok(Fetched { delta: Some(Delta::default()), ..Fetched::default() });
        }
        let mut b = sink.batcher();
        let stdin = format!("{username}\n").into_bytes();
        let users = self.user_details(stdin, username, &mut b).await?;
        let mut in_groups = Vec::new();
        if users > 0 {
            let groups = self.group_names().await?;
            let user = username.to_string();
            let answers: Vec<bool> = stream::iter(groups.iter().cloned())
                .map(|g: String| {
                    let user = user.clone();
                    async move {
                        let args: [&str; 4] = match self.cfg.group_first {
                            true => ["-", "is-user-in-group", &g, &user],
                            false => ["-", "is-user-in-group", &user, &g],
                        };
                        let lines = self.lines(&args, None, self.cfg.user_limits()).await?;
                        Ok::<_, SourceError>(lines.first().is_some_and(|l| l.trim().eq_ignore_ascii_case("y")))
                    }
                })
                .buffered(self.cfg.concurrency)
                .try_collect()
                .await?;
            in_groups = groups.into_iter().zip(answers).filter(|(_, yes)| *yes).map(|(g, _)| g).collect();
        }
        let members = self.members(&in_groups).await?;
        let groups = self.push_groups(&mut b, in_groups, members).await?;
        b.flush().await.map_err(|m| self.err(m))?;
        let warnings = self.take_warnings();
        Ok(Fetched {
            counts: FetchCounts { users, groups },
            delta: Some(Delta::default()),
            warnings,
            ..Fetched::default()
        })
    }

    async fn probe(&self) -> Result<Option<String>, SourceError> {
        let lines = self.lines(&["-", "is-valid"], None, self.cfg.user_limits()).await?;
        let info = lines.get(1).map(|l| l.trim().to_string()).filter(|l| !l.is_empty());
        match lines.first().map(|l| l.trim()) {
            Some(y) if y.eq_ignore_ascii_case("y") => Ok(info),
            _ => Err(self.err(format!(
                "{} says the directory is not usable{}",
                self.what("is-valid"),
                info.map(|i| format!(": {i}")).unwrap_or_default()
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::AttrValue;

    fn cols(e: &RawEntry) -> Vec<(String, String)> {
        e.attrs
            .iter()
            .map(|(k, v)| match &v[0] {
                AttrValue::Text(t) => (k.clone(), t.clone()),
                AttrValue::Binary(_) => (k.clone(), "?".into()),
            })
            .collect()
    }

    #[test]
    fn long_short_trailing_tab_and_crlf_forms_read_the_same_columns() {
        let long = user_entry(b"jane\tJane Rodgers\tjaner@example.com\tSales\tDocklands\t5678\t\t05678\t\t\t1234", "p");
        assert_eq!(long.facts.id, Some(Ok("jane".into())));
        assert!(cols(&long).contains(&("card_number2".into(), "05678".into())));
        assert!(cols(&long).contains(&("pin".into(), "1234".into())));
        let short = user_entry(b"jane\tJane Rodgers\tjaner@example.com\tSales\tDocklands\t", "p");
        assert_eq!(cols(&short).len(), 5);
        let trailing = user_entry("zoë\tZoë Ÿ\t\t\t\t\t\t\t\t\t\t\t".as_bytes(), "p");
        assert_eq!(trailing.facts.id, Some(Ok("zoë".into())), "a trailing tab past 11 columns is fine");
    }

    #[test]
    fn a_line_with_twelve_columns_or_no_username_is_a_skipped_entry_naming_its_line() {
        let e = user_entry(b"amy\ta\tb\tc\td\te\tf\tg\th\ti\tj\tk", "users line 7");
        assert_eq!(e.facts.id, Some(Err("the line has 12 columns; expected at most 11".into())));
        assert_eq!(e.facts.origin.as_deref(), Some("users line 7"));
        assert_eq!(cols(&e), vec![("username".into(), "amy".into())], "the username still protects the user");
        let e = user_entry(b"\tNo Name", "x");
        assert!(matches!(e.facts.id, Some(Err(ref m)) if m.contains("empty username")));
        let e = user_entry(b"\xff\xfe", "x");
        assert!(matches!(e.facts.id, Some(Err(ref m)) if m.contains("UTF-8")));
    }
}
