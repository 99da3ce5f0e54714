//! The CSV kind's part of a `[[sources]]` table (`type = "csv"`): the file,
//! its delimiter, the identity column, and where group memberships come
//! from (a column of the people file, or a second file of `group,username`
//! rows). When the file exists at load, `[sources.fields]` is checked
//! against its header; it is checked again at every read.

use std::any::Any;
use std::path::PathBuf;

use crate::config::{ConfigError, DirectoryQuery, Section, SourceConfig};
use crate::kind::{Kind, Registration};
use crate::sources::{tabular, Source};

/// `type = "csv"`.
pub const REGISTRATION: Registration = Registration {
    types: &["csv"],
    keys: &["path", "delimiter", "id_column", "groups_column", "groups_separator", "memberships_path"],
    parse,
};

#[derive(Debug, Clone)]
pub struct CsvConfig {
    pub path: PathBuf,
    pub delimiter: u8,
    /// `None`: the column the username is mapped from.
    pub id_column: Option<String>,
    /// Lower-case; `None` when not given (then `groups`, if the file has it).
    pub groups_column: Option<String>,
    pub groups_separator: char,
    pub memberships_path: Option<PathBuf>,
    /// The header's column names (lower-case) when the file was readable at
    /// load, to check field names against.
    pub header: Option<Vec<String>>,
    pub query: DirectoryQuery,
}

impl Kind for CsvConfig {
    fn type_name(&self) -> &'static str {
        "csv"
    }

    fn place(&self) -> String {
        self.path.display().to_string()
    }

    fn query(&self) -> &DirectoryQuery {
        &self.query
    }

    fn check_field_source(&self, name: &str) -> Result<(), String> {
        match &self.header {
            Some(h) if !h.iter().any(|c| c == name) => {
                Err(format!("{} has no column \"{name}\" ({})", self.path.display(), super::header_words(h)))
            }
            _ => Ok(()),
        }
    }

    fn open(&self, cfg: &SourceConfig) -> Box<dyn Source> {
        Box::new(super::CsvSource::new(cfg, self))
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

fn parse(_type_name: &str, s: &mut Section<'_>) -> Result<Box<dyn Kind>, ConfigError> {
    let p = s.string("path")?.ok_or_else(|| s.err("path", "missing (expected the CSV file's path)"))?;
    let path = s.resolve(&p);
    let delimiter = match s.string("delimiter")?.as_deref() {
        None => b',',
        Some("\\t") | Some("\t") => b'\t',
        Some(d) if d.len() == 1 && d != "\"" && d != "\n" && d != "\r" => d.as_bytes()[0],
        Some(d) => {
            return Err(s.err(
                "delimiter",
                format!("expected one ASCII character such as \",\", \";\" or \"\\t\", got \"{}\"", d.escape_default()),
            ))
        }
    };
    let lower = |v: Option<String>| v.map(|c| c.trim().to_lowercase());
    let id_column = lower(s.string("id_column")?);
    let groups_column = lower(s.string("groups_column")?);
    let groups_separator = match s.string("groups_separator")? {
        None => ';',
        Some(g) if g.chars().count() == 1 => g.chars().next().expect("one character"),
        Some(g) => return Err(s.err("groups_separator", format!("expected one character, got \"{g}\""))),
    };
    let memberships_path = s.string("memberships_path")?.map(|m| s.resolve(&m));
    // A file that is there is checked now: no link out of its folder.
    for (key, p) in [("path", Some(&path)), ("memberships_path", memberships_path.as_ref())] {
        if let Some(p) = p.filter(|p| p.exists()) {
            super::open_in_place(p).map_err(|m| s.err(key, m))?;
        }
    }
    let header = super::read_header(&path, delimiter).ok().flatten();
    if let (Some(h), Some(c)) = (&header, &id_column) {
        if !h.contains(c) {
            return Err(
                s.err("id_column", format!("{} has no column \"{c}\" ({})", path.display(), super::header_words(h)))
            );
        }
    }
    Ok(Box::new(CsvConfig {
        path,
        delimiter,
        id_column,
        groups_column,
        groups_separator,
        memberships_path,
        header,
        query: tabular::query(),
    }))
}
