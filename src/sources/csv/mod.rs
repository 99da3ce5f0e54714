//! The CSV source: an HR export or a one-off import. A header row names the
//! columns (matched without regard to case); RFC 4180 quoting (delimiters,
//! quotes and newlines inside quoted fields) is the `csv` crate's; UTF-8 with
//! or without a byte order mark. Each row is a user whose identity is its
//! `id_column` (default: the username's column); memberships come from a
//! `groups` column split on `groups_separator`, or from a second file of
//! `group,username` rows. A row that cannot be used (wrong number of
//! columns, no identity, not UTF-8) is a skipped entry naming the file and
//! line. A missing or unreadable file fails the read; an empty one is an
//! empty source.

pub mod config;

use std::collections::BTreeMap;
use std::path::Path;

use async_trait::async_trait;

pub use config::CsvConfig;

use super::{tabular, EntrySink, FetchCounts, Fetched, Source, SourceError};
use crate::config::{FieldSource, SourceConfig};
use crate::model::{EntryKind, RawEntry};

pub struct CsvSource {
    name: String,
    cfg: CsvConfig,
    /// The username's column, when it is mapped from one (the default identity).
    username_column: Option<String>,
    /// Every column `[sources.fields]` reads.
    mapped: Vec<String>,
}

impl CsvSource {
    pub fn new(cfg: &SourceConfig, c: &CsvConfig) -> Self {
        let username_column = cfg.fields.iter().find(|f| &*f.name == "username").and_then(|f| match &f.source {
            FieldSource::Attribute(a) => Some(a.clone()),
            _ => None,
        });
        let mapped = cfg.fields.iter().flat_map(|f| f.attributes()).collect();
        CsvSource { name: cfg.name.clone(), cfg: c.clone(), username_column, mapped }
    }
}

/// Opens a configured file: a regular file in the folder its path names
/// (a symbolic link may point within that folder, never out of it: a link
/// to a token or a password file elsewhere is refused before it is read).
pub fn open_in_place(path: &Path) -> Result<std::fs::File, String> {
    let no = |why: String| format!("cannot read {}: {why}", path.display());
    let real = path.canonicalize().map_err(|e| no(e.to_string()))?;
    let folder = path.parent().map(|d| if d.as_os_str().is_empty() { Path::new(".") } else { d });
    let base = folder.map(Path::canonicalize).transpose().map_err(|e| no(e.to_string()))?;
    if base.is_some_and(|b| !real.starts_with(b)) {
        return Err(no(format!(
            "it is a link to a file outside {} (link the folder instead, or give the file's own path)",
            folder.unwrap_or(Path::new("/")).display()
        )));
    }
    let file = std::fs::File::open(&real).map_err(|e| no(e.to_string()))?;
    if !file.metadata().map_err(|e| no(e.to_string()))?.is_file() {
        return Err(no("not a regular file".into()));
    }
    Ok(file)
}

/// How a header is described in an error: its column names when it parses
/// into at least two plausible ones, never the line itself (the file may
/// not be the CSV it should be, but a token or a password file).
pub fn header_words(header: &[String]) -> String {
    let plausible = |h: &String| {
        let longest_word = h.split(|c: char| !c.is_alphanumeric()).map(|w| w.chars().count()).max().unwrap_or(0);
        (1..=40).contains(&h.chars().count())
            && h.chars().any(char::is_alphabetic)
            && h.chars().all(|c| c.is_alphanumeric() || " _-./#()".contains(c))
            && longest_word <= 20
    };
    if header.len() >= 2 && header.iter().all(plausible) {
        format!("its header has: {}", header.join(", "))
    } else {
        "its first line does not read as a header of column names".into()
    }
}

/// The header of a CSV file, lower-case and trimmed (a BOM removed);
/// `Ok(None)` for an empty file.
pub fn read_header(path: &Path, delimiter: u8) -> Result<Option<Vec<String>>, String> {
    let file = open_in_place(path)?;
    let mut r = csv::ReaderBuilder::new().delimiter(delimiter).has_headers(false).flexible(true).from_reader(file);
    let mut rec = csv::ByteRecord::new();
    match r.read_byte_record(&mut rec) {
        Ok(false) => Ok(None),
        Ok(true) => Ok(Some(header_names(&rec))),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

fn header_names(rec: &csv::ByteRecord) -> Vec<String> {
    rec.iter()
        .enumerate()
        .map(|(i, f)| {
            let f = if i == 0 { f.strip_prefix(b"\xef\xbb\xbf").unwrap_or(f) } else { f };
            String::from_utf8_lossy(f).trim().to_lowercase()
        })
        .collect()
}

/// What reading the files produced.
struct Read {
    entries: Vec<(EntryKind, RawEntry)>,
    counts: FetchCounts,
    /// Group name → member usernames, from the groups column.
    groups: BTreeMap<String, Vec<String>>,
}

impl Read {
    /// The groups, as entries after the users.
    fn push_groups(&mut self, groups: BTreeMap<String, Vec<String>>) {
        for (g, members) in groups {
            self.counts.groups += 1;
            let origin = format!("group {g}");
            self.entries.push((EntryKind::Group, tabular::group(&g, members, Vec::new(), origin)));
        }
    }
}

/// Reads CSV text as the source would (the fuzz target's entry point): the
/// user entries and the groups, or the error that would fail the read.
pub fn entries_of(text: &[u8], cfg: &CsvConfig, username_column: &str) -> Result<Vec<(EntryKind, RawEntry)>, String> {
    let mut out = read_rows(text, cfg, Some(username_column), &[username_column.to_string()])?;
    let groups = std::mem::take(&mut out.groups);
    out.push_groups(groups);
    Ok(out.entries)
}

fn read_files(cfg: &CsvConfig, username_column: Option<&str>, mapped: &[String]) -> Result<Read, String> {
    let file = open_in_place(&cfg.path)?;
    let mut out = read_rows(std::io::BufReader::with_capacity(1 << 16, file), cfg, username_column, mapped)?;
    let mut groups = std::mem::take(&mut out.groups);
    if let Some(m) = &cfg.memberships_path {
        read_memberships(m, &mut groups)?;
    }
    out.push_groups(groups);
    Ok(out)
}

/// The people file's rows as user entries, and the groups its groups column names.
fn read_rows(
    input: impl std::io::Read,
    cfg: &CsvConfig,
    username_column: Option<&str>,
    mapped: &[String],
) -> Result<Read, String> {
    let shown = cfg.path.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
    let mut r = csv::ReaderBuilder::new().delimiter(cfg.delimiter).has_headers(false).flexible(true).from_reader(input);
    let mut rec = csv::ByteRecord::new();
    let mut out = Read { entries: Vec::new(), counts: FetchCounts::default(), groups: BTreeMap::new() };
    let header = match r.read_byte_record(&mut rec) {
        Ok(false) => return Ok(out), // an empty file: an empty source
        Ok(true) => header_names(&rec),
        Err(e) => return Err(format!("{}: the header: {e}", cfg.path.display())),
    };
    let col = |c: &str| header.iter().position(|h| h == c);
    for m in mapped {
        if col(m).is_none() {
            return Err(format!("{} has no column \"{m}\" ({})", cfg.path.display(), header_words(&header)));
        }
    }
    let id_name = cfg.id_column.as_deref().or(username_column).ok_or_else(|| {
        "the username is not mapped from one column: set id_column to the column that identifies a row".to_string()
    })?;
    let id_col =
        col(id_name).ok_or_else(|| format!("{} has no column \"{id_name}\" (id_column)", cfg.path.display()))?;
    let groups_col = match &cfg.groups_column {
        Some(g) => Some(col(g).ok_or_else(|| format!("{} has no column \"{g}\" (groups_column)", cfg.path.display()))?),
        None => col("groups"),
    };
    let username_col = username_column.and_then(col);
    let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
    loop {
        let line = r.position().line() + 1;
        let origin = format!("{shown}:{line}");
        match r.read_byte_record(&mut rec) {
            Ok(false) => break,
            Err(e) => {
                // A broken row: skipped; the reader goes on with the next one.
                out.entries.push((EntryKind::User, skipped(None, origin, format!("unreadable row: {e}"))));
                out.counts.users += 1;
                continue;
            }
            Ok(true) => {}
        }
        if rec.iter().all(|f| f.iter().all(u8::is_ascii_whitespace)) {
            continue; // a blank line
        }
        let line = rec.position().map_or(line, |p| p.line());
        let origin = format!("{shown}:{line}");
        out.counts.users += 1;
        let text: Result<Vec<&str>, usize> =
            rec.iter().enumerate().map(|(i, f)| std::str::from_utf8(f).map(str::trim).map_err(|_| i)).collect();
        let entry = match text {
            Err(i) => skipped(
                None,
                origin,
                format!("column \"{}\" is not valid UTF-8", header.get(i).map_or("?", |h| h.as_str())),
            ),
            Ok(v) if v.len() != header.len() => {
                let who = username_col.and_then(|c| v.get(c).copied());
                skipped(who, origin, format!("the row has {} columns; the header has {}", v.len(), header.len()))
            }
            Ok(v) if v[id_col].is_empty() => {
                let who = username_col.map(|c| v[c]);
                skipped(who, origin, format!("the id column \"{id_name}\" is empty"))
            }
            Ok(v) => {
                if let (Some(gc), Some(u)) = (groups_col, username_col) {
                    for g in v[gc].split(cfg.groups_separator).map(str::trim).filter(|g| !g.is_empty()) {
                        groups.entry(g.to_string()).or_default().push(v[u].to_string());
                    }
                }
                tabular::user(v[id_col], origin, header.iter().map(String::as_str).zip(v.iter().copied()), Vec::new())
            }
        };
        out.entries.push((EntryKind::User, entry));
    }
    out.groups = groups;
    Ok(out)
}

/// `group,username` rows (a `group,username` header is allowed).
fn read_memberships(path: &Path, groups: &mut BTreeMap<String, Vec<String>>) -> Result<(), String> {
    let mut text = Vec::new();
    std::io::Read::read_to_end(&mut open_in_place(path)?, &mut text)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    // Commas, or tabs when the first line has a tab and no comma.
    let first_line = text.split(|&b| b == b'\n').next().unwrap_or_default();
    let delimiter = if first_line.contains(&b'\t') && !first_line.contains(&b',') { b'\t' } else { b',' };
    let mut r = csv::ReaderBuilder::new().delimiter(delimiter).has_headers(false).flexible(true).from_reader(&text[..]);
    let mut first = true;
    for rec in r.records() {
        let rec = rec.map_err(|e| format!("{}: {e}", path.display()))?;
        let line = rec.position().map_or(0, |p| p.line());
        let f: Vec<&str> = rec.iter().map(str::trim).collect();
        let is_header = first
            && f.len() == 2
            && f[0].trim_start_matches('\u{feff}').eq_ignore_ascii_case("group")
            && f[1].eq_ignore_ascii_case("username");
        first = false;
        if is_header || f.iter().all(|x| x.is_empty()) {
            continue;
        }
        if f.len() != 2 || f[0].is_empty() || f[1].is_empty() {
            // A membership cannot be skipped like a user: a missing one would remove it.
            return Err(format!("{}:{line}: expected group{}username", path.display(), delimiter as char));
        }
        groups.entry(f[0].trim_start_matches('\u{feff}').to_string()).or_default().push(f[1].to_string());
    }
    Ok(())
}

/// A row the mapping skips with `reason`; `username`, when known, still
/// protects the user it names.
fn skipped(username: Option<&str>, origin: String, reason: String) -> RawEntry {
    tabular::skipped(EntryKind::User, username, origin, reason)
}

#[async_trait]
impl Source for CsvSource {
    fn name(&self) -> &str {
        &self.name
    }

    async fn fetch(&self, sink: EntrySink, _since: Option<&str>) -> Result<Fetched, SourceError> {
        let (cfg, uc, mapped) = (self.cfg.clone(), self.username_column.clone(), self.mapped.clone());
        let read = tokio::task::spawn_blocking(move || read_files(&cfg, uc.as_deref(), &mapped))
            .await
            .map_err(|e| SourceError::new(&self.name, format!("reading stopped: {e}")))?
            .map_err(|m| SourceError::new(&self.name, m))?;
        let mut b = sink.batcher();
        for (kind, e) in read.entries {
            b.push(kind, e).await.map_err(|m| SourceError::new(&self.name, m))?;
        }
        b.flush().await.map_err(|m| SourceError::new(&self.name, m))?;
        Ok(Fetched { counts: read.counts, delta: None, next_state: None, ..Fetched::default() })
    }
}

#[cfg(test)]
mod tests {
    use super::header_words;

    fn words(h: &[&str]) -> String {
        header_words(&h.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn a_header_is_listed_only_when_it_reads_as_column_names() {
        assert_eq!(words(&["login", "full name", "e-mail"]), "its header has: login, full name, e-mail");
        for secret in [
            &["s3cr3t-t0ken-value"][..],
            &["akiaiosfodnn7example1", "wjalrxutnfemi/k7mdeng/bpxrficyexamplekey"],
            &["password=hunter2", "user=x"],
            &["root:$6$abc:19000:0"],
        ] {
            let w = words(secret);
            assert!(!secret.iter().any(|s| w.contains(s)), "{w}");
        }
    }
}
