//! The Unix source: local accounts from passwd/group files, or anything
//! behind NSS (NIS, SSSD, winbind, LDAP) through `getent`. Users are the
//! accounts with `min_uid` ≤ uid ≤ `max_uid` and a login shell (unless
//! `include_nologin`); the full name is the first GECOS field; the primary
//! group counts as a membership. Groups are those with at least one synced
//! member. A malformed line is a skipped entry naming the file and line; a
//! file that cannot be read (or `getent` failing) fails the read.

pub mod config;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use async_trait::async_trait;

use config::Databases;
pub use config::UnixConfig;

use super::program::run::{output, Limits};
use super::{tabular, EntrySink, FetchCounts, Fetched, Source, SourceError};
use crate::model::EntryKind;

pub struct UnixSource {
    pub(crate) name: String,
    pub(crate) cfg: UnixConfig,
}

/// One passwd line, split.
#[derive(Debug, PartialEq, Eq)]
pub struct Account<'a> {
    pub name: &'a str,
    pub uid: u32,
    pub gid: u32,
    pub gecos: &'a str,
    pub home: &'a str,
    pub shell: &'a str,
}

/// Splits a passwd line (`name:x:uid:gid:gecos:home:shell`).
pub fn parse_passwd(line: &str) -> Result<Account<'_>, String> {
    let f: Vec<&str> = line.split(':').collect();
    if f.len() != 7 {
        return Err(format!("expected 7 fields separated by ':', found {}", f.len()));
    }
    if f[0].trim().is_empty() {
        return Err("the username (field 1) is empty".into());
    }
    let num = |i: usize, what: &str| {
        f[i].parse::<u32>().map_err(|_| format!("the {what} (field {}) is not a number: \"{}\"", i + 1, f[i]))
    };
    Ok(Account { name: f[0], uid: num(2, "uid")?, gid: num(3, "gid")?, gecos: f[4], home: f[5], shell: f[6] })
}

/// Splits a group line (`name:x:gid:member,member`).
pub fn parse_group(line: &str) -> Result<(&str, u32, Vec<&str>), String> {
    let f: Vec<&str> = line.split(':').collect();
    if f.len() != 4 {
        return Err(format!("expected 4 fields separated by ':', found {}", f.len()));
    }
    if f[0].trim().is_empty() {
        return Err("the group name (field 1) is empty".into());
    }
    let gid = f[2].parse::<u32>().map_err(|_| format!("the gid (field 3) is not a number: \"{}\"", f[2]))?;
    Ok((f[0], gid, f[3].split(',').map(str::trim).filter(|m| !m.is_empty()).collect()))
}

/// Lines worth reading: not empty, not comments, not NIS compat (`+`/`-`) lines.
fn content(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines().enumerate().map(|(i, l)| (i + 1, l.strip_suffix('\r').unwrap_or(l))).filter(|(_, l)| {
        let t = l.trim_start();
        !t.is_empty() && !t.starts_with('#') && !t.starts_with('+') && !t.starts_with('-')
    })
}

impl UnixSource {
    fn err(&self, m: impl Into<String>) -> SourceError {
        SourceError::new(&self.name, m.into())
    }

    /// The passwd and group databases as text, and the names they go by.
    async fn read(&self) -> Result<[(String, String); 2], SourceError> {
        match &self.cfg.databases {
            Databases::Files { passwd, group } => {
                let read = |p: &std::path::Path| {
                    std::fs::read(p)
                        .map(|b| String::from_utf8_lossy(&b).into_owned())
                        .map_err(|e| self.err(format!("cannot read {}: {e}", p.display())))
                };
                Ok([(read(passwd)?, passwd.display().to_string()), (read(group)?, group.display().to_string())])
            }
            Databases::Nss => {
                let getent = ["/usr/bin/getent", "/bin/getent"]
                    .into_iter()
                    .map(std::path::Path::new)
                    .find(|p| p.exists())
                    .ok_or_else(|| self.err("nss = true needs getent (libc-bin), which is not installed"))?;
                let limits = Limits { timeout: Duration::from_secs(300), max_output: 1 << 30 };
                let mut out = Vec::new();
                for db in ["passwd", "group"] {
                    let (lines, _) =
                        output(getent, &[db], None, limits, format!("getent {db}")).await.map_err(|m| self.err(m))?;
                    let text: String = lines.into_iter().map(|(_, l)| l + "\n").collect();
                    out.push((text, format!("getent {db}")));
                }
                let [p, g]: [(String, String); 2] = out.try_into().expect("two databases");
                Ok([p, g])
            }
        }
    }

    fn in_scope(&self, a: &Account) -> bool {
        let nologin = a.shell.ends_with("/nologin") || a.shell.ends_with("/false");
        (self.cfg.min_uid..=self.cfg.max_uid).contains(&a.uid) && (self.cfg.include_nologin || !nologin)
    }
}

#[async_trait]
impl Source for UnixSource {
    fn name(&self) -> &str {
        &self.name
    }

    async fn fetch(&self, sink: EntrySink, _since: Option<&str>) -> Result<Fetched, SourceError> {
        let [(passwd, pname), (group, gname)] = self.read().await?;
        let mut b = sink.batcher();
        let mut counts = FetchCounts::default();
        // Synced users' names, and the members of each gid by primary group.
        let mut synced = BTreeSet::new();
        let mut primary: BTreeMap<u32, Vec<String>> = BTreeMap::new();
        for (n, line) in content(&passwd) {
            let origin = format!("{pname}:{n}");
            let entry = match parse_passwd(line) {
                Err(reason) => tabular::skipped(EntryKind::User, line.split(':').next(), origin, reason),
                Ok(a) if !self.in_scope(&a) => continue,
                Ok(a) => {
                    let id = if self.cfg.id_is_username { a.name.to_string() } else { a.uid.to_string() };
                    let g: Vec<&str> = a.gecos.split(',').map(str::trim).collect();
                    let part = |i: usize| g.get(i).copied().unwrap_or("");
                    let (uid, gid) = (a.uid.to_string(), a.gid.to_string());
                    let columns = [
                        ("username", a.name),
                        ("uid", uid.as_str()),
                        ("gid", gid.as_str()),
                        ("gecos", a.gecos),
                        ("full_name", part(0)),
                        ("office", part(1)),
                        ("work_phone", part(2)),
                        ("home_phone", part(3)),
                        ("other", part(4)),
                        ("home_directory", a.home),
                        ("shell", a.shell),
                    ];
                    synced.insert(a.name.to_string());
                    primary.entry(a.gid).or_default().push(a.name.to_string());
                    tabular::user(&id, origin, columns, vec![format!("gid:{}", a.gid)])
                }
            };
            counts.users += 1;
            b.push(EntryKind::User, entry).await.map_err(|m| self.err(m))?;
        }
        for (n, line) in content(&group) {
            let origin = format!("{gname}:{n}");
            let entry = match parse_group(line) {
                Err(reason) => tabular::skipped(EntryKind::Group, line.split(':').next(), origin, reason),
                Ok((name, gid, members)) => {
                    let has_synced = members.iter().any(|m| synced.contains(*m)) || primary.contains_key(&gid);
                    if !has_synced {
                        continue;
                    }
                    let members = members.into_iter().map(str::to_string).collect::<Vec<_>>();
                    tabular::group(name, members, vec![format!("gid:{gid}")], origin)
                }
            };
            counts.groups += 1;
            b.push(EntryKind::Group, entry).await.map_err(|m| self.err(m))?;
        }
        b.flush().await.map_err(|m| self.err(m))?;
        Ok(Fetched { counts, delta: None, next_state: None, ..Fetched::default() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwd_and_group_lines_split_and_malformed_ones_say_why() {
        let a = parse_passwd("ada:x:1001:1001:Ada Lovelace,,,:/home/ada:/bin/bash").unwrap();
        assert_eq!((a.name, a.uid, a.gid, a.gecos), ("ada", 1001, 1001, "Ada Lovelace,,,"));
        assert!(parse_passwd("ada:x:1001:1001:/home/ada:/bin/bash").unwrap_err().contains("found 6"));
        assert!(parse_passwd("ada:x:10o1:1001::/home/ada:/bin/bash")
            .unwrap_err()
            .contains("uid (field 3) is not a number"));
        assert!(parse_passwd(":x:1001:1001::/:/bin/sh").unwrap_err().contains("username"));
        assert_eq!(parse_group("staff:x:50:ada, bob,").unwrap(), ("staff", 50, vec!["ada", "bob"]));
        assert!(parse_group("staff:x:fifty:").unwrap_err().contains("gid"));
        let lines: Vec<usize> = content("# c\n\n+::::::\nada:x\r\n").map(|(n, _)| n).collect();
        assert_eq!(lines, [4]);
    }
}
