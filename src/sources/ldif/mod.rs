//! The LDIF source: reads an RFC 2849 file (an export such as `slapcat` or
//! `ldapsearch -LLL` writes) so admins can import a directory offline. Entries
//! are selected with the same `user_filter`/`group_filter` a server would
//! apply. A syntax error fails the source with the file and line: a file that
//! cannot be read whole must not remove anybody. The parser ([`reader`]) is
//! bounded and linear; [`writer`] writes entries back (round-trip tested).

pub mod config;
pub mod reader;
pub mod writer;

use std::path::PathBuf;

use async_trait::async_trait;

pub use reader::Reader;

use super::{EntrySink, FetchCounts, Fetched, Source, SourceError};
pub use config::LdifConfig;

use crate::config::SourceConfig;
use crate::filter::Filter;
use crate::model::{normalize_dn, EntryKind};

pub struct LdifSource {
    name: String,
    path: PathBuf,
    base_dn: Option<String>,
    user_filter: Filter,
    group_filter: Option<Filter>,
    /// Exports of 389 DS carry nsAccountLock: read as LDAP's.
    interpret: super::Interpret,
}

impl LdifSource {
    pub fn new(cfg: &SourceConfig, l: &LdifConfig) -> Self {
        LdifSource {
            name: cfg.name.clone(),
            path: l.path.clone(),
            base_dn: l.base_dn.as_deref().map(normalize_dn),
            // Validated at config load.
            user_filter: Filter::parse(&l.query.user_filter).expect("validated filter"),
            group_filter: l.query.group_filter.as_deref().map(|f| Filter::parse(f).expect("validated filter")),
            interpret: super::ldap::facts::interpreter(false, &l.query.id_attribute),
        }
    }

    fn in_scope(&self, dn: &str) -> bool {
        match &self.base_dn {
            None => true,
            Some(base) => {
                let dn = normalize_dn(dn);
                dn == *base || dn.ends_with(&format!(",{base}"))
            }
        }
    }
}

#[async_trait]
impl Source for LdifSource {
    fn name(&self) -> &str {
        &self.name
    }

    async fn fetch(&self, sink: EntrySink, _since: Option<&str>) -> Result<Fetched, SourceError> {
        let file = std::fs::File::open(&self.path)
            .map_err(|e| SourceError::new(&self.name, format!("cannot open {}: {e}", self.path.display())))?;
        let sink = sink.interpreted(self.interpret.clone());
        let mut batcher = sink.batcher();
        let mut counts = FetchCounts::default();
        // `file://` values may name regular files beside the LDIF file only.
        let dir = self.path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
        let mut reader = Reader::new(std::io::BufReader::with_capacity(1 << 16, file)).with_files_under(dir);
        loop {
            let entry = match reader.next_record() {
                Ok(Some(e)) => e,
                Ok(None) => break,
                Err(msg) => {
                    return Err(SourceError::new(
                        &self.name,
                        format!("{}:{}: {msg}", self.path.display(), reader.error_line()),
                    ))
                }
            };
            if !self.in_scope(&entry.dn) {
                continue;
            }
            let kind = if self.group_filter.as_ref().is_some_and(|f| f.matches(&entry)) {
                counts.groups += 1;
                EntryKind::Group
            } else if self.user_filter.matches(&entry) {
                counts.users += 1;
                EntryKind::User
            } else {
                continue;
            };
            batcher.push(kind, entry).await.map_err(|m| SourceError::new(&self.name, m))?;
        }
        batcher.flush().await.map_err(|m| SourceError::new(&self.name, m))?;
        Ok(Fetched { counts, delta: None, next_state: None, ..Fetched::default() })
    }
}
